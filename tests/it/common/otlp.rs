//! Rotel (an OpenTelemetry collector, shipped by the `rotel` wheel) as a child process that
//! receives OTLP/gRPC on a free loopback port and prints every span it gets to its log
//! (`--debug-log traces --debug-log-verbosity detailed`); and a reader of that log.
//!
//! `.ci/run` links the wheel's `rotel-agent` into the tools venv's `bin`, where `tool` looks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::secret_servers::{ChildServer, STARTUP, free_port, start, tool};

/// A running receiver; its OTLP/gRPC endpoint is `ChildServer::base`.
pub async fn rotel() -> Option<ChildServer> {
    let rotel = tool("rotel-agent")?;
    let (grpc, http) = (free_port(), free_port());
    let server = start(rotel, "Rotel", grpc, |command| {
        command.args([
            "start",
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log-verbosity",
            "detailed",
        ]);
    });
    let deadline = Instant::now() + STARTUP;
    while tokio::net::TcpStream::connect(("127.0.0.1", grpc))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "Rotel did not listen in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(server)
}

/// One span as the receiver printed it.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub trace_id: String,
    /// Empty for a root span.
    pub parent_id: String,
    pub id: String,
    pub name: String,
    pub kind: String,
    pub attributes: BTreeMap<String, String>,
}

/// Every span in the receiver's log so far.
pub fn spans(receiver: &ChildServer) -> Vec<Span> {
    let log = std::fs::read_to_string(receiver.dir.path().join("server.log")).unwrap_or_default();
    let mut spans = Vec::new();
    let mut current: Option<Span> = None;
    let mut in_attributes = false;
    for line in log.lines() {
        let line = line.trim();
        if line.starts_with("Span #") {
            spans.extend(current.take());
            current = Some(Span::default());
            in_attributes = false;
            continue;
        }
        let Some(span) = current.as_mut() else {
            continue;
        };
        if line.starts_with("ResourceSpans #") || line.starts_with("ScopeSpans #") {
            spans.extend(current.take());
            continue;
        }
        if line == "Attributes:" {
            in_attributes = true;
            continue;
        }
        if in_attributes && let Some(attribute) = line.strip_prefix("-> ") {
            if let Some((key, value)) = attribute.split_once(": ") {
                span.attributes.insert(key.to_owned(), value.to_owned());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim().to_owned();
            match key.trim() {
                "Trace ID" => span.trace_id = value,
                "Parent ID" => span.parent_id = value,
                "ID" => span.id = value,
                "Name" => span.name = value,
                "Kind" => span.kind = value,
                _ => {}
            }
        }
    }
    spans.extend(current);
    spans
}

/// The spans of `trace_id`, once `wanted` names are all among them or `timeout` passes.
pub async fn trace(
    receiver: &ChildServer,
    trace_id: &str,
    wanted: &[&str],
    timeout: Duration,
) -> Vec<Span> {
    let deadline = Instant::now() + timeout;
    loop {
        let found: Vec<Span> = spans(receiver)
            .into_iter()
            .filter(|span| span.trace_id == trace_id)
            .collect();
        let complete = wanted
            .iter()
            .all(|name| found.iter().any(|span| span.name == *name));
        if complete || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
