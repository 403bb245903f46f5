//! Metrics and traces for every gRPC call: a tower layer outermost in the gRPC stack, so
//! refused calls are counted too. A call is counted when its answer ends (its status is in
//! the trailers, or in the headers of a trailers-only answer), or when the client goes away
//! first (`CANCELLED`); the latency histogram thus measures a stream's whole life. The same
//! span marks the call in flight on its connection, which is therefore not idle (and never
//! gives way to a new connection) while the call lasts. Being outermost, it also sees the
//! statuses tonic makes itself, and gives a request message over the limit this server's
//! answer (`error::too_large_as_resource_exhausted`) before the call is counted.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use http_body::Frame;
use prost::Message;
use tonic::body::Body;
use tracing::Instrument;

use super::layer::{Answer, AroundCall, CallLayer, InnerService};
use crate::connections::{ConnectionInfo, InFlight};

/// The layer that counts and traces every call.
pub fn layer() -> CallLayer<Observe> {
    CallLayer(Observe)
}

#[derive(Clone, Copy)]
pub struct Observe;

impl AroundCall for Observe {
    fn around<S: InnerService>(&self, inner: &mut S, request: Request<Body>) -> Answer<S::Error> {
        let start = Instant::now();
        let method = method_label(request.uri().path());
        let span = crate::telemetry::server_span(request.headers(), || {
            tracing::info_span!(
                "grpc",
                otel.name = &*method,
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.method = &*method,
                rpc.grpc.status_code = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            )
        });
        let in_flight = request
            .extensions()
            .get::<ConnectionInfo>()
            .map(ConnectionInfo::call);
        let future = inner.call(request);
        Box::pin(async move {
            // Made before the answer: a call the client cancels first is counted when this
            // future is dropped.
            let mut call = Call {
                method,
                start,
                code: None,
                span: span.clone(),
                _in_flight: in_flight,
            };
            let response = match &span {
                Some(span) => future.instrument(span.clone()).await?,
                None => future.await?,
            };
            let (mut parts, body) = response.into_parts();
            super::error::too_large_as_resource_exhausted(&mut parts.headers);
            call.code = status_code(&parts.headers);
            Ok(Response::from_parts(
                parts,
                Body::new(Observed {
                    inner: body,
                    call: Some(call),
                }),
            ))
        })
    }
}

/// The method a call's metrics and span name: its path when a service here has it, else
/// `unknown` (a path is the client's text, and no request value is ever a label).
fn method_label(path: &str) -> Arc<str> {
    static KNOWN: OnceLock<HashMap<String, Arc<str>>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let sets = [
            super::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let files = sets.into_iter().flat_map(|set| {
            prost_types::FileDescriptorSet::decode(set)
                .map(|set| set.file)
                .unwrap_or_default()
        });
        let mut known = HashMap::new();
        for file in files {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    known.insert(path.clone(), Arc::from(path));
                }
            }
        }
        known
    });
    static UNKNOWN: OnceLock<Arc<str>> = OnceLock::new();
    known
        .get(path)
        .cloned()
        .unwrap_or_else(|| UNKNOWN.get_or_init(|| Arc::from("unknown")).clone())
}

/// The `grpc-status` a header map carries.
fn status_code(headers: &HeaderMap) -> Option<u16> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// One call, recorded once when its answer ends or is dropped.
struct Call {
    method: Arc<str>,
    start: Instant,
    code: Option<u16>,
    span: Option<tracing::Span>,
    /// Ends the call on its connection when the call is recorded.
    _in_flight: Option<InFlight>,
}

impl Drop for Call {
    fn drop(&mut self) {
        // No status: the client went away before the answer ended.
        let code = self.code.unwrap_or(1);
        record_call(&self.method, code, self.start.elapsed().as_secs_f64());
        if let Some(span) = &self.span {
            span.record("rpc.grpc.status_code", i64::from(code));
            if is_server_error(code) {
                span.record("otel.status_code", "ERROR");
            }
        }
    }
}

/// Codes that say the server failed (OpenTelemetry's rule for gRPC server spans).
fn is_server_error(code: u16) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn code_name(code: u16) -> &'static str {
    CODE_NAMES
        .get(usize::from(code))
        .copied()
        .unwrap_or("UNKNOWN")
}

fn record_call(method: &str, code: u16, seconds: f64) {
    crate::telemetry::collector::count_and_time(
        (
            "summit_grpc_requests_total",
            "summit_grpc_request_duration_seconds",
        ),
        method,
        u32::from(code),
        || {
            vec![
                ("method", method.to_owned()),
                ("code", code_name(code).to_owned()),
            ]
        },
        seconds,
    );
}

/// The answer's body, watched for the trailers that carry the status.
struct Observed {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let mut polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &mut polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_mut() {
                    super::error::too_large_as_resource_exhausted(trailers);
                    if let Some(call) = self.call.as_mut() {
                        call.code = status_code(trailers).or(call.code);
                        // Recorded now: the trailers end the answer.
                        self.call = None;
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.as_mut() {
                    call.code.get_or_insert(0);
                }
                self.call = None;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
