//! Applied state and drift: is each instance running a currently valid view of its config?

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::effective::valid_checksums;
use super::error::Result;
use super::model::{AppliedState, ConfigVersion};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    InSync,
    Drifted,
    Stale,
}

impl DriftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::InSync => "in_sync",
            DriftStatus::Drifted => "drifted",
            DriftStatus::Stale => "stale",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDrift {
    pub instance_id: String,
    pub environment: String,
    pub version: u64,
    pub checksum: String,
    pub reported_at: DateTime<Utc>,
    pub status: DriftStatus,
    /// Checksum of the control view for the instance's environment.
    pub expected_checksum: String,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftSummary {
    pub in_sync: usize,
    pub drifted: usize,
    pub stale: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDrift {
    pub config_id: String,
    pub version: u64,
    pub summary: DriftSummary,
    pub instances: Vec<InstanceDrift>,
}

/// Each report judged against the version its instance should run: `expected` says which
/// (the latest, or where deployments are required the one served to that instance).
pub fn assess(
    current: &ConfigVersion,
    reports: Vec<AppliedState>,
    stale_after: Duration,
    now: DateTime<Utc>,
    expected: &dyn Fn(&AppliedState) -> Arc<ConfigVersion>,
) -> Result<ConfigDrift> {
    let mut summary = DriftSummary::default();
    let instances = reports
        .into_iter()
        .map(|report| {
            let should_run = expected(&report);
            let valid = valid_checksums(&should_run, &report.environment, now)?;
            let status = if now - report.reported_at > stale_after {
                summary.stale += 1;
                DriftStatus::Stale
            } else if valid.contains(&report.checksum.as_str()) {
                summary.in_sync += 1;
                DriftStatus::InSync
            } else {
                summary.drifted += 1;
                DriftStatus::Drifted
            };
            // The control view's checksum comes first among the valid ones.
            let expected_checksum = valid[0].to_owned();
            Ok(InstanceDrift {
                instance_id: report.instance_id,
                environment: report.environment,
                version: report.version,
                checksum: report.checksum,
                reported_at: report.reported_at,
                status,
                expected_checksum,
            })
        })
        .collect::<Result<_>>()?;
    Ok(ConfigDrift {
        config_id: current.id.to_string(),
        version: current.version,
        summary,
        instances,
    })
}
