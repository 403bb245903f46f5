//! Deployments as the SQL backends store them: the deployment and each log entry as JSON, the
//! columns listings filter and order by beside them; releases as plain columns.

use chrono::{DateTime, Utc};

use crate::core::deployments::model::{Deployment, LogEntry, Release};
use crate::core::error::{Error, Result};
use crate::core::ids::{ConfigId, Environment};

pub(crate) fn decode_deployment(document: &str) -> Result<Deployment> {
    serde_json::from_str(document)
        .map_err(|error| Error::internal(format!("unreadable deployment: {error}")))
}

pub(crate) fn decode_entry(entry: &str) -> Result<LogEntry> {
    serde_json::from_str(entry)
        .map_err(|error| Error::internal(format!("unreadable deployment log entry: {error}")))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(Error::internal)
}

/// Microseconds since the epoch: how listings order deployments and releases keep their time.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored release's columns, decoded by both SQL backends.
#[derive(sqlx::FromRow)]
pub(crate) struct ReleaseRow {
    config_id: String,
    environment: String,
    version: i64,
    deployment_id: Option<String>,
    released_us: i64,
}

impl ReleaseRow {
    pub(crate) fn decode(self) -> Result<Release> {
        Ok(Release {
            config_id: ConfigId::parse(&self.config_id)?,
            environment: Environment::parse(&self.environment)?,
            version: super::to_u64(self.version),
            deployment_id: self.deployment_id,
            released_at: DateTime::from_timestamp_micros(self.released_us)
                .ok_or_else(|| Error::internal("release time out of range"))?,
        })
    }
}
