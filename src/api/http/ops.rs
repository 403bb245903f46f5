//! Probes and Prometheus metrics.

use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::extract::{MatchedPath, State};
use axum::http::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::{Layer, Service};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::openapi as doc;
use crate::core::error::Error;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(openapi_document))
}

const METHODS: [&str; 5] = ["OTHER", "GET", "PUT", "POST", "DELETE"];

fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::POST => "POST",
        axum::http::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

fn record_request(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    // Both keys are bounded: route templates, and (method, status).
    let method_index = METHODS.iter().position(|m| *m == method).unwrap_or(0) as u32;
    crate::telemetry::collector::count_and_time(
        (
            "summit_http_requests_total",
            "summit_http_request_duration_seconds",
        ),
        route,
        method_index << 16 | u32::from(status),
        || {
            vec![
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ]
        },
        elapsed.as_secs_f64(),
    );
}

/// Counts requests and their latency by method, route template and status, and logs each at
/// debug level. A plain tower layer rather than `from_fn` or tower-http's `TraceLayer`: it runs
/// on every request, including the hot read path, and this way costs no allocation and no span.
#[derive(Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;
    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Track<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        let span = crate::telemetry::server_span(request.headers(), || {
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!(
                "request",
                otel.name = format!("{method} {route}"),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                http.request.method = method,
                http.route = route,
                http.response.status_code = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            )
        });
        // The handler runs inside the request span: its spans and log lines belong to it.
        let inner = match &span {
            Some(span) => span.in_scope(|| self.inner.call(request)),
            None => self.inner.call(request),
        };
        TrackFuture {
            start: Instant::now(),
            method,
            route,
            span,
            inner,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        method: &'static str,
        route: Option<MatchedPath>,
        span: Option<tracing::Span>,
    }
}

impl<F, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
            let status = response.status().as_u16();
            let elapsed = this.start.elapsed();
            record_request(route, this.method, status, elapsed);
            if let Some(span) = this.span.as_ref() {
                span.record("http.response.status_code", i64::from(status));
                if status >= 500 {
                    span.record("otel.status_code", "ERROR");
                }
            }
            tracing::debug!(
                method = *this.method,
                route,
                status,
                micros = elapsed.as_micros() as u64,
                "request"
            );
        }
        Poll::Ready(result)
    }
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    operation_id = "health",
    summary = "Health: the server and its store",
    responses(
        (status = 200, description = "Healthy", body = doc::schemas::Health),
        (status = 503, description = "The store does not answer (`status: degraded`)", body = doc::schemas::Health)
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    let store = state.service.ready().await;
    let status = if store.is_ok() { "ok" } else { "degraded" };
    let code = if store.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let revision = state.service.latest_revision().await.ok();
    (code, Json(json!({"status": status, "store": store.is_ok(), "revision": revision, "version": env!("CARGO_PKG_VERSION")}))).into_response()
}

#[utoipa::path(
    get,
    path = "/live",
    tag = "ops",
    operation_id = "live",
    summary = "Liveness",
    responses(
        (status = 200, description = "The process answers", body = doc::schemas::ProbeStatus)
    )
)]
async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    operation_id = "ready",
    summary = "Readiness: the store answers and the server is not shutting down",
    responses(
        (status = 200, description = "Ready", body = doc::schemas::ProbeStatus),
        (status = 503, response = doc::Unavailable)
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return ApiError(Error::Unavailable {
            reason: "shutting down".into(),
        })
        .into_response();
    }
    match state.service.ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => ApiError(error).into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)
    )
)]
async fn metrics(State(state): State<AppState>) -> Response {
    state.collector.collect().await;
    let body = state.metrics.render();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The OpenAPI document of this API (`docs/openapi.json` holds the same bytes).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "ops",
    operation_id = "openapi",
    summary = "This API's OpenAPI 3.1 document",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)
    )
)]
async fn openapi_document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        super::openapi::json(),
    )
        .into_response()
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    super::error::transport_problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found("route", uri.path()))
}
