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
            // The answer's body is not kept: the registry shows `output` to every reader, and a
            // health-check URL may point anywhere its registrant chose.
            Ok(response) => (
                Status::Critical,
                Some(format!("HTTP {}", response.status())),
            ),
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
