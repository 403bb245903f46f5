//! Unary calls (and the start of a stream) end with DEADLINE_EXCEEDED after the server's request
//! timeout, or the client's `grpc-timeout` when that is shorter. Inside the metrics layer, so a
//! call that runs out is counted with its code (tonic's own timeout sits outside every layer and
//! answers CANCELLED, which reads as the client's doing).

use std::time::Duration;

use axum::http::{HeaderMap, Request};
use tonic::body::Body;

use super::layer::{Answer, AroundCall, CallLayer, InnerService};

/// The layer that ends a call at the server's `timeout` or the client's shorter one.
pub fn layer(timeout: Duration) -> CallLayer<Deadline> {
    CallLayer(Deadline { timeout })
}

#[derive(Clone, Copy)]
pub struct Deadline {
    timeout: Duration,
}

impl AroundCall for Deadline {
    fn around<S: InnerService>(&self, inner: &mut S, request: Request<Body>) -> Answer<S::Error> {
        let limit = client_timeout(request.headers()).map_or(self.timeout, |t| t.min(self.timeout));
        let future = inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, future).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "no answer within {} ms",
                    limit.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// The client's `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`); a
/// malformed one is ignored (the server's timeout still applies).
fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_as_the_protocol_spells_them() {
        for (text, expected) in [
            ("1S", Some(Duration::from_secs(1))),
            ("250m", Some(Duration::from_millis(250))),
            ("2H", Some(Duration::from_secs(7200))),
            ("99999999n", Some(Duration::from_nanos(99_999_999))),
            ("123456789S", None),
            ("S", None),
            ("-1S", None),
            ("10x", None),
            ("", None),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-timeout", text.parse().unwrap());
            assert_eq!(client_timeout(&headers), expected, "{text}");
        }
    }
}
