//! The registry's model: registered instances of services, their health, and what a heartbeat
//! or a registration may say.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Result};
use crate::core::ids::{ConfigId, Environment, InstanceId, ServiceName};

/// An instance's health as last reported by a heartbeat or found by a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = InstanceStatus)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passing,
    Warning,
    Critical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// An operator took the instance out of service (it stays registered and keeps heartbeating).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    pub reason: Option<String>,
    pub by: String,
    pub since: DateTime<Utc>,
}

/// One registered instance of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub service_name: ServiceName,
    pub instance_id: InstanceId,
    pub service_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    pub weight: u32,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub ttl_secs: u32,
    pub deregister_after_secs: u32,
    pub status: Status,
    /// What the last heartbeat or health check said (a check's error, a heartbeat's `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    /// No heartbeat for `ttlSecs`: out of discovery; heartbeats get 404 until it registers again.
    #[serde(default)]
    pub expired: bool,
    /// Config id → the checksum the instance last said it applied.
    #[serde(default)]
    pub applied: BTreeMap<ConfigId, String>,
    /// What the instance last measured of itself (deployment gates judge it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<InstanceMetrics>,
    pub registered_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Counts the instance's recorded changes (registration, status, expiry, maintenance).
    #[serde(default)]
    pub version: u64,
}

impl Instance {
    /// Serves traffic: registered, not expired, not in maintenance, not critical.
    pub fn healthy(&self) -> bool {
        !self.expired && self.maintenance.is_none() && self.status != Status::Critical
    }

    /// `service/instance`: the subject of its change events and audit records.
    pub fn subject(&self) -> String {
        subject(&self.service_name, &self.instance_id)
    }

    /// When it expires without another heartbeat.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.last_heartbeat + chrono::Duration::seconds(i64::from(self.ttl_secs))
    }

    /// When it is removed without another heartbeat.
    pub fn removed_at(&self) -> DateTime<Utc> {
        self.last_heartbeat + chrono::Duration::seconds(i64::from(self.deregister_after_secs))
    }
}

pub fn subject(service: &ServiceName, id: &InstanceId) -> String {
    format!("{service}/{id}")
}

/// The limits a registration is checked against.
pub const DEFAULT_WEIGHT: u32 = 100;
pub const MAX_WEIGHT: u32 = 1000;
pub const DEFAULT_TTL_SECS: u32 = 30;
pub const DEFAULT_DEREGISTER_AFTER_SECS: u32 = 300;
/// A day: longer makes a dead instance linger for no one's benefit.
pub const MAX_TTL_SECS: u32 = 86_400;
pub const MAX_DEREGISTER_AFTER_SECS: u32 = 7 * 86_400;
const MAX_URL_BYTES: usize = 2048;
const MAX_METADATA_ENTRIES: usize = 64;
const MAX_METADATA_KEY_BYTES: usize = 128;
const MAX_METADATA_VALUE_BYTES: usize = 1024;
const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_OUTPUT_BYTES: usize = 4096;
pub const MAX_APPLIED_ENTRIES: usize = 256;

/// A registration as received.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registration {
    pub service_name: String,
    pub service_url: String,
    #[serde(default)]
    pub health_check_url: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub ttl_secs: Option<u32>,
    #[serde(default)]
    pub deregister_after_secs: Option<u32>,
}

/// A registration whose every field is checked.
#[derive(Debug, Clone)]
pub struct CheckedRegistration {
    pub service_name: ServiceName,
    pub instance_id: Option<InstanceId>,
    pub service_url: String,
    pub health_check_url: Option<String>,
    pub environment: Option<Environment>,
    pub weight: u32,
    pub metadata: BTreeMap<String, String>,
    pub ttl_secs: u32,
    pub deregister_after_secs: u32,
}

impl Registration {
    pub fn check(self) -> Result<CheckedRegistration> {
        let service_name = ServiceName::parse_field(&self.service_name, "/serviceName")?;
        let instance_id = self
            .instance_id
            .as_deref()
            .map(|id| InstanceId::parse_field(id, "/instanceId"))
            .transpose()?;
        let service_url = check_url(&self.service_url, "/serviceUrl")?;
        let health_check_url = self
            .health_check_url
            .as_deref()
            .map(|url| check_url(url, "/healthCheckUrl"))
            .transpose()?;
        let environment = self
            .environment
            .as_deref()
            .map(|e| Environment::parse_field(e, "/environment"))
            .transpose()?;
        let weight = self.weight.unwrap_or(DEFAULT_WEIGHT);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(Error::invalid(
                "/weight",
                format!("weight must be between 1 and {MAX_WEIGHT}"),
            ));
        }
        let metadata = self.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        let ttl_secs = self.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
        if !(1..=MAX_TTL_SECS).contains(&ttl_secs) {
            return Err(Error::invalid(
                "/ttlSecs",
                format!("ttlSecs must be between 1 and {MAX_TTL_SECS}"),
            ));
        }
        let deregister_after_secs = self
            .deregister_after_secs
            .unwrap_or(DEFAULT_DEREGISTER_AFTER_SECS.max(ttl_secs));
        if deregister_after_secs < ttl_secs || deregister_after_secs > MAX_DEREGISTER_AFTER_SECS {
            return Err(Error::invalid(
                "/deregisterAfterSecs",
                format!(
                    "deregisterAfterSecs must be between ttlSecs ({ttl_secs}) and {MAX_DEREGISTER_AFTER_SECS}"
                ),
            ));
        }
        Ok(CheckedRegistration {
            service_name,
            instance_id,
            service_url,
            health_check_url,
            environment,
            weight,
            metadata,
            ttl_secs,
            deregister_after_secs,
        })
    }
}

/// An absolute `http` or `https` URL with a host, at most 2 KiB.
fn check_url(raw: &str, field: &str) -> Result<String> {
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(
            field,
            "URL must not contain spaces or control characters",
        ));
    }
    if raw.len() > MAX_URL_BYTES {
        return Err(Error::invalid(
            field,
            format!("URL must be at most {MAX_URL_BYTES} bytes"),
        ));
    }
    let url = reqwest::Url::parse(raw)
        .map_err(|error| Error::invalid(field, format!("not an absolute URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(
            field,
            "URL must be http:// or https:// with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            field,
            "URL must not carry credentials (the registry shows it to every reader)",
        ));
    }
    Ok(raw.to_owned())
}

fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid(
            "/metadata",
            format!("at most {MAX_METADATA_ENTRIES} metadata entries"),
        ));
    }
    let total: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            "/metadata",
            format!("metadata must be at most {MAX_METADATA_BYTES} bytes in all"),
        ));
    }
    for (key, value) in metadata {
        let pointer = format!("/metadata/{}", key.replace('~', "~0").replace('/', "~1"));
        if key.is_empty() || key.len() > MAX_METADATA_KEY_BYTES || key.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                pointer,
                format!("metadata keys must be 1 to {MAX_METADATA_KEY_BYTES} printable bytes"),
            ));
        }
        if value.len() > MAX_METADATA_VALUE_BYTES {
            return Err(Error::invalid(
                pointer,
                format!("metadata values must be at most {MAX_METADATA_VALUE_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// What an instance measured of itself, as its last heartbeat that carried any said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceMetrics {
    /// The share of its requests that failed, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Its 99th-percentile latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
}

/// A heartbeat's optional body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Heartbeat {
    #[serde(default)]
    pub status: Option<Status>,
    /// Config id → the checksum of the version the instance runs.
    #[serde(default)]
    pub applied: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub output: Option<String>,
    /// The share of requests that failed lately, 0 to 1.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// The 99th-percentile latency lately, in milliseconds.
    #[serde(default)]
    pub latency_p99_ms: Option<f64>,
}

/// A heartbeat whose every field is checked.
#[derive(Debug, Clone, Default)]
pub struct CheckedHeartbeat {
    pub status: Option<Status>,
    pub applied: Option<BTreeMap<ConfigId, String>>,
    pub output: Option<String>,
    /// Replaces the instance's metrics when either was reported.
    pub metrics: Option<InstanceMetrics>,
}

impl Heartbeat {
    pub fn check(self) -> Result<CheckedHeartbeat> {
        if self
            .output
            .as_ref()
            .is_some_and(|o| o.len() > MAX_OUTPUT_BYTES)
        {
            return Err(Error::invalid(
                "/output",
                format!("output must be at most {MAX_OUTPUT_BYTES} bytes"),
            ));
        }
        // Shown to every reader, CLIs and logs included: no terminal escapes.
        if let Some(output) = &self.output
            && output
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Error::invalid(
                "/output",
                "output must not contain control characters other than newline and tab",
            ));
        }
        let applied = match self.applied {
            None => None,
            Some(applied) if applied.len() > MAX_APPLIED_ENTRIES => {
                return Err(Error::invalid(
                    "/applied",
                    format!("at most {MAX_APPLIED_ENTRIES} configs"),
                ));
            }
            Some(applied) => Some(
                applied
                    .into_iter()
                    .map(|(id, checksum)| {
                        let pointer = format!("/applied/{id}");
                        let id = ConfigId::parse(&id).map_err(|_| {
                            Error::invalid(
                                &pointer,
                                "config id must match [a-z0-9][a-z0-9._-]{0,127}",
                            )
                        })?;
                        crate::core::checksum::check_reported(&checksum, &pointer)?;
                        Ok((id, checksum))
                    })
                    .collect::<Result<BTreeMap<_, _>>>()?,
            ),
        };
        if let Some(rate) = self.error_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(Error::invalid(
                "/errorRate",
                "errorRate must be between 0 and 1",
            ));
        }
        if let Some(p99) = self.latency_p99_ms
            && !(p99.is_finite() && p99 >= 0.0)
        {
            return Err(Error::invalid(
                "/latencyP99Ms",
                "latencyP99Ms must be a number of milliseconds, at least 0",
            ));
        }
        let metrics = (self.error_rate.is_some() || self.latency_p99_ms.is_some()).then_some(
            InstanceMetrics {
                error_rate: self.error_rate,
                latency_p99_ms: self.latency_p99_ms,
            },
        );
        Ok(CheckedHeartbeat {
            status: self.status,
            applied,
            output: self.output,
            metrics,
        })
    }
}

/// A service's instances counted by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    pub service_name: String,
    pub instances: u32,
    pub healthy: u32,
    pub passing: u32,
    pub warning: u32,
    pub critical: u32,
    pub maintenance: u32,
    pub expired: u32,
}

impl ServiceSummary {
    pub fn of<'a>(name: &ServiceName, instances: impl IntoIterator<Item = &'a Instance>) -> Self {
        let mut summary = ServiceSummary {
            service_name: name.to_string(),
            ..ServiceSummary::default()
        };
        for instance in instances {
            summary.instances += 1;
            summary.healthy += u32::from(instance.healthy());
            if instance.expired {
                summary.expired += 1;
            } else if instance.maintenance.is_some() {
                summary.maintenance += 1;
            }
            match instance.status {
                Status::Passing => summary.passing += 1,
                Status::Warning => summary.warning += 1,
                Status::Critical => summary.critical += 1,
            }
        }
        summary
    }
}

/// Discovery's answer: the healthy instances, or every instance when too few are healthy.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    pub service_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Fewer than the protection threshold's share were healthy: every instance (of the
    /// environment) is returned, unhealthy ones included.
    pub protection_active: bool,
    pub healthy: u32,
    pub total: u32,
    pub instances: Vec<Instance>,
}

/// The result of one active health check.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub instance_id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// No `healthCheckUrl`: nothing was checked, the status is unchanged.
    pub checked: bool,
}
