//! Logging and tracing set-up.
//!
//! Logs: human-readable or JSON lines, filtered by `SUMMIT_LOG`. Traces: OpenTelemetry spans
//! exported over OTLP/gRPC when `SUMMIT_OTLP_ENDPOINT` is set; without it no exporter, no
//! OpenTelemetry layer, and the request spans are not created at all.
//!
//! Spans are ordinary `tracing` spans. The request span (REST request, gRPC call) is INFO, so
//! JSON log lines written inside a request carry its `trace_id`; the spans under it (core
//! operation, store commit and queries, secret resolution, outbound deliveries) are DEBUG: the
//! OpenTelemetry layer takes them, the log filter (INFO by default) does not.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Link, SpanKind, TraceContextExt, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LogFormat, Settings};

pub mod collector;

/// Whether spans are exported; read on every request to decide whether to make a span.
static TRACING: AtomicBool = AtomicBool::new(false);

/// True when traces are exported (`SUMMIT_OTLP_ENDPOINT` set and the exporter started).
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// What has to be flushed at exit.
#[must_use = "call shutdown() at exit, or spans still queued are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter. The batch exporter runs on a
    /// thread of its own but its gRPC channel runs on this runtime, so the blocking shutdown
    /// runs on a blocking thread: called on a runtime thread (a single-threaded runtime above
    /// all) it would wait for the channel that thread is meant to drive.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        TRACING.store(false, Ordering::Relaxed);
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("trace exporter flushed and stopped"),
            Ok(Err(error)) => tracing::warn!(%error, "the trace exporter did not stop cleanly"),
            Err(error) => tracing::warn!(%error, "the trace exporter's shutdown panicked"),
        }
    }
}

/// Installs the global subscriber: the log layer and, when an OTLP endpoint is set, the
/// OpenTelemetry layer. Must run inside the Tokio runtime (the exporter's channel lives on it).
pub fn init(settings: &Settings) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stdout().is_terminal();
    let logs = match settings.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            // The request span's fields, trace_id among them, on every line written in it.
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(settings, endpoint)?),
        None => None,
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("summit-config"))
            .with_threads(false)
            // Only this crate's spans: the exporter's own HTTP/2 client would otherwise trace
            // its exports, and those exports again.
            .with_filter(Targets::new().with_target("summit_config", LevelFilter::DEBUG))
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    if installed.is_err() {
        // Already initialised (tests start several apps in one process).
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Ok(Telemetry { provider: None });
    }
    if let Some(endpoint) = &settings.otlp_endpoint {
        TRACING.store(true, Ordering::Relaxed);
        tracing::info!(
            endpoint,
            service = settings.otlp_service_name,
            sample_ratio = settings.otlp_sample_ratio,
            "exporting traces over OTLP/gRPC"
        );
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(settings: &Settings, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .context("SUMMIT_OTLP_ENDPOINT: building the OTLP exporter")?;
    let resource = Resource::builder()
        .with_service_name(settings.otlp_service_name.clone())
        .with_attributes(resource_attributes(&settings.otlp_resource_attributes)?)
        .with_attribute(KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION").to_owned(),
        ))
        .build();
    // A caller's decision (the sampled flag of its traceparent) is followed; a trace that
    // starts here is kept with the configured probability.
    let sampler = EdgeRoots(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        settings.otlp_sample_ratio,
    ))));
    // The batch processor runs on its own thread and queues up to 2,048 spans; past that it
    // drops spans and says so in the log (the SDK's internal logs), never silently.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// Traces start only at the edges: a request or call (server), or an outbound delivery
/// (client, producer). Internal spans with no parent — the cache's loading, the background
/// loops' queries — are not exported on their own; under an edge span they are.
#[derive(Debug, Clone)]
struct EdgeRoots(Sampler);

impl ShouldSample for EdgeRoots {
    fn should_sample(
        &self,
        parent: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let root = !parent.is_some_and(|context| context.has_active_span());
        if root && *kind == SpanKind::Internal {
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            };
        }
        self.0
            .should_sample(parent, trace_id, name, kind, attributes, links)
    }
}

/// `key=value,key=value` → attributes.
fn resource_attributes(text: &str) -> anyhow::Result<Vec<KeyValue>> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').with_context(|| {
                format!("SUMMIT_OTLP_RESOURCE_ATTRIBUTES '{pair}': expected key=value")
            })?;
            let key = key.trim();
            anyhow::ensure!(
                !key.is_empty(),
                "SUMMIT_OTLP_RESOURCE_ATTRIBUTES '{pair}': empty key"
            );
            Ok(KeyValue::new(key.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

struct HeaderReader<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

struct HeaderWriter<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// A server span for one REST request or gRPC call, made by `make` (which declares the fields
/// `otel.kind = "server"` and `trace_id`): continues the caller's trace when its `traceparent`
/// (W3C Trace Context) says so, and records the trace id for the log lines written in it.
/// `None`, and `make` not called, when tracing is off.
pub fn server_span(
    headers: &axum::http::HeaderMap,
    make: impl FnOnce() -> tracing::Span,
) -> Option<tracing::Span> {
    if !tracing_enabled() {
        return None;
    }
    let span = make();
    let parent = TraceContextPropagator::new().extract(&HeaderReader(headers));
    let _ = span.set_parent(parent);
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
    Some(span)
}

/// Writes the current span's context into an outbound request's headers (`traceparent`), so
/// the receiver can continue the trace. Nothing when tracing is off.
pub fn inject_context(headers: &mut reqwest::header::HeaderMap) {
    if !tracing_enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderWriter(headers));
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use opentelemetry::trace::{Tracer, TracerProvider as _};

    use super::*;

    fn settings(endpoint: &str) -> Settings {
        crate::settings::Cli::parse_from([
            "summit-config",
            "--otlp-endpoint",
            endpoint,
            "--otlp-resource-attributes",
            "deployment.environment=test, team=config",
        ])
        .into_settings()
    }

    /// The pitfall: the exporter's channel runs on the runtime while shutdown blocks; on a
    /// single-threaded runtime a blocking shutdown on the runtime's thread would wait forever.
    #[tokio::test(flavor = "current_thread")]
    async fn shutdown_on_a_single_threaded_runtime_returns() {
        // Nothing listens there: the export fails at once, and is logged.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = settings(&format!("http://127.0.0.1:{port}"));
        let provider =
            tracer_provider(&settings, settings.otlp_endpoint.as_deref().unwrap()).unwrap();
        provider.tracer("test").in_span("work", |_| {});
        let telemetry = Telemetry {
            provider: Some(provider),
        };
        tokio::time::timeout(Duration::from_secs(30), telemetry.shutdown())
            .await
            .expect("shutdown returns on a single-threaded runtime");
    }

    #[test]
    fn resource_attributes_are_key_value_pairs() {
        let attributes = resource_attributes("a=1, b = two ,").unwrap();
        assert_eq!(
            attributes,
            vec![KeyValue::new("a", "1"), KeyValue::new("b", "two")]
        );
        let error = resource_attributes("novalue").unwrap_err().to_string();
        assert!(error.contains("SUMMIT_OTLP_RESOURCE_ATTRIBUTES"), "{error}");
        assert!(resource_attributes("=x").is_err());
    }

    #[test]
    fn the_sample_ratio_is_between_zero_and_one() {
        let parse = |ratio: &str| {
            crate::settings::Cli::try_parse_from(["summit-config", "--otlp-sample-ratio", ratio])
        };
        assert!(parse("0.25").is_ok());
        assert!(parse("1.5").is_err());
        assert!(parse("half").is_err());
    }
}
