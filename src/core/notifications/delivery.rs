//! One attempt of one delivery: a signed POST of the event, a 2xx within the timeout is
//! success. The answer's body is read (to keep the connection) up to a bound and dropped.

use std::time::{Duration, Instant};

use reqwest::Url;

use super::model::Delivery;
use super::signing::signature_header;
use super::targets::Targets;
use crate::core::service::now;

/// The most of an answer's body read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of an error kept in the delivery log.
const MAX_ERROR_CHARS: usize = 300;

/// Where a webhook's deliveries go and the secrets (opened) that sign them.
#[derive(PartialEq)]
pub struct Target {
    pub url: String,
    pub secrets: Vec<Vec<u8>>,
    /// Why nothing can be sent to it (a secret no key opens), if so.
    pub unusable: Option<String>,
}

/// What an attempt came to.
pub struct Outcome {
    pub status: Option<u16>,
    /// `None` on success.
    pub error: Option<String>,
    pub latency: Duration,
}

impl Outcome {
    /// An attempt that could not be made.
    pub fn failed(error: String) -> Outcome {
        Outcome {
            status: None,
            error: Some(truncate(error)),
            latency: Duration::ZERO,
        }
    }
}

#[tracing::instrument(
    level = "debug",
    name = "webhook.deliver",
    skip_all,
    fields(
        otel.kind = "client",
        webhook = %delivery.webhook_id,
        revision = delivery.revision,
        attempt = delivery.attempts + 1,
        http.response.status_code = tracing::field::Empty,
    )
)]
pub async fn send(
    client: &reqwest::Client,
    targets: &Targets,
    target: &Target,
    delivery: &Delivery,
    body: &str,
) -> Outcome {
    let started = Instant::now();
    let result = attempt(client, targets, target, delivery, body).await;
    let latency = started.elapsed();
    if let Ok(status) = result {
        tracing::Span::current().record("http.response.status_code", i64::from(status));
    }
    match result {
        Ok(status) if (200..300).contains(&status) => Outcome {
            status: Some(status),
            error: None,
            latency,
        },
        Ok(status) => Outcome {
            status: Some(status),
            error: Some(format!("answered {status}")),
            latency,
        },
        Err(error) => Outcome {
            status: None,
            error: Some(truncate(error)),
            latency,
        },
    }
}

async fn attempt(
    client: &reqwest::Client,
    targets: &Targets,
    target: &Target,
    delivery: &Delivery,
    body: &str,
) -> Result<u16, String> {
    if let Some(why) = &target.unusable {
        return Err(why.clone());
    }
    let url = Url::parse(&target.url).map_err(|e| format!("bad URL: {e}"))?;
    // Names are checked where they resolve; an address in the URL is checked here.
    if let Some(host) = url.host_str() {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse()
            && !targets.allows(bare, ip)
        {
            return Err(format!("{ip} is not an allowed target"));
        }
    }
    let id = format!("evt_{}", delivery.revision);
    let timestamp = now().timestamp();
    let signature = signature_header(&target.secrets, &id, timestamp, body);
    // The receiver may continue the trace (W3C traceparent) when traces are exported.
    let mut trace_headers = reqwest::header::HeaderMap::new();
    crate::telemetry::inject_context(&mut trace_headers);
    let mut answer = client
        .post(url)
        .headers(trace_headers)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map_err(describe)?;
    let status = answer.status().as_u16();
    let mut read = 0;
    while read <= MAX_ANSWER_BYTES {
        match answer.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) => break,
            Err(error) => return Err(describe(error)),
        }
    }
    Ok(status)
}

/// The error and its causes, without the URL (it may carry credentials).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(mut text: String) -> String {
    if let Some((at, _)) = text.char_indices().nth(MAX_ERROR_CHARS) {
        text.truncate(at);
        text.push('…');
    }
    text
}
