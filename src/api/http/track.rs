//! What every request leaves behind: its count and latency by method, route template and
//! status, a debug log line, the server span when traces are exported, and a problem answer
//! instead of a dropped connection when a handler panics. The router's routes get it as
//! `TrackLayer`; the effective read, served ahead of the router, calls the same functions.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, Method, Request};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::error::ApiError;
use crate::core::error::Error;

const METHODS: [&str; 5] = ["OTHER", "GET", "PUT", "POST", "DELETE"];

pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// The request's server span, continuing the caller's trace; `None` unless traces are exported.
pub(crate) fn request_span(
    method: &'static str,
    route: &str,
    headers: &HeaderMap,
) -> Option<tracing::Span> {
    crate::telemetry::server_span(headers, || {
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
    })
}

/// Counts and times an answered request, completes its span and logs it at debug level.
pub(crate) fn finish(
    route: &str,
    method: &'static str,
    status: u16,
    elapsed: Duration,
    span: Option<&tracing::Span>,
) {
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
    if let Some(span) = span {
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    }
    tracing::debug!(
        method,
        route,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
}

/// The answer to a request whose handler panicked: a 500 problem document (the panic's message
/// stays in the log).
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "a request handler panicked");
    ApiError(Error::internal("the request's handler failed")).into_response()
}

/// Counts requests and their latency by method, route template and status, and logs each at
/// debug level. A plain tower layer rather than `from_fn` or tower-http's `TraceLayer`: it runs
/// on every request and this way costs no allocation and, unless traces are exported, no span.
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
        let span = request_span(
            method,
            route.as_ref().map_or("unmatched", MatchedPath::as_str),
            request.headers(),
        );
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
            finish(
                route,
                this.method,
                response.status().as_u16(),
                this.start.elapsed(),
                this.span.as_ref(),
            );
        }
        Poll::Ready(result)
    }
}
