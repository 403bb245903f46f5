//! Probes and Prometheus metrics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, State};
use axum::http::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tower::{Layer, Service};

use super::AppState;
use super::error::ApiError;
use crate::core::error::Error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// The process-wide Prometheus recorder (metrics are global to the process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program).
            let _ = metrics::set_global_recorder(recorder);
            // Histogram samples are buffered until upkeep folds them into buckets; without it
            // memory would grow between scrapes.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning the metrics upkeep thread");
            handle
        })
        .clone()
}

fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::POST => "POST",
        axum::http::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Metric handles by route template, then (method, status): registered once per worker
/// thread, so recording a request allocates nothing and takes no shared lock. Both keys are
/// bounded (route templates, status codes).
type RouteHandles = HashMap<String, Vec<(&'static str, u16, Counter, Histogram)>>;

thread_local! {
    static ROUTE_HANDLES: RefCell<RouteHandles> = RefCell::new(HashMap::new());
}

fn record_request(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    ROUTE_HANDLES.with_borrow_mut(|handles| {
        let per_route = match handles.get_mut(route) {
            Some(per_route) => per_route,
            None => handles.entry(route.to_owned()).or_default(),
        };
        let position = per_route
            .iter()
            .position(|(m, s, ..)| *m == method && *s == status);
        let index = position.unwrap_or_else(|| {
            let labels = [
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ];
            per_route.push((
                method,
                status,
                metrics::counter!("summit_http_requests_total", &labels),
                metrics::histogram!("summit_http_request_duration_seconds", &labels),
            ));
            per_route.len() - 1
        });
        let (.., counter, histogram) = &per_route[index];
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    });
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
        TrackFuture {
            start: Instant::now(),
            method: method_label(request.method()),
            route: request.extensions().get::<MatchedPath>().cloned(),
            inner: self.inner.call(request),
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
    }
}

impl<F, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
            let status = response.status().as_u16();
            let elapsed = this.start.elapsed();
            record_request(route, this.method, status, elapsed);
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

async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

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

async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(revision) = state.service.latest_revision().await {
        metrics::gauge!("summit_revision").set(revision as f64);
    }
    let body = state.metrics.render();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
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
