//! Active health checks: the server calls an instance's `healthCheckUrl` (GET, no redirects,
//! no proxy from the environment) and counts a 2xx answer within the timeout as passing,
//! anything else as critical.

use std::time::Duration;

use super::model::{Instance, Status};

#[derive(Clone)]
pub struct HealthChecker {
    client: reqwest::Client,
    timeout: Duration,
}

/// At most this much of a failing answer's body is kept as the check's output.
const MAX_OUTPUT: usize = 256;

impl HealthChecker {
    pub fn new(timeout: Duration) -> HealthChecker {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!(
                "summit-config/",
                env!("CARGO_PKG_VERSION"),
                " health-check"
            ))
            .build()
            .expect("a TLS backend is compiled in");
        HealthChecker { client, timeout }
    }

    /// The instance's status by its health check, and what explains it; `None` when it has no
    /// `healthCheckUrl`.
    pub async fn check(&self, instance: &Instance) -> Option<(Status, Option<String>)> {
        let url = instance.health_check_url.as_deref()?;
        let answer = self.client.get(url).send().await;
        Some(match answer {
            Ok(response) if response.status().is_success() => (Status::Passing, None),
            Ok(mut response) => {
                let status = response.status();
                // Only the first chunk: a check never reads a large body.
                let body = response.chunk().await.ok().flatten().unwrap_or_default();
                let mut output = format!("HTTP {status}");
                if !body.is_empty() {
                    output.push_str(": ");
                    output.push_str(&String::from_utf8_lossy(
                        &body[..body.len().min(MAX_OUTPUT)],
                    ));
                }
                (Status::Critical, Some(output))
            }
            Err(error) if error.is_timeout() => (
                Status::Critical,
                Some(format!("no answer within {} ms", self.timeout.as_millis())),
            ),
            Err(error) if error.is_connect() => (
                Status::Critical,
                Some("connection refused or unreachable".into()),
            ),
            Err(_) => (Status::Critical, Some("the request failed".into())),
        })
    }
}
