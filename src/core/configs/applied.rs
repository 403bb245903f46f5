//! What instances report they applied, and drift against what they should run.

use super::{ConfigService, now};
use crate::core::access::{Caller, Permission};
use crate::core::ports::Documents;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::core::drift::{ConfigDrift, DriftSummary, assess};
use crate::core::effective::valid_checksums;
use crate::core::error::{Error, Result};
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::{AppliedState, ConfigVersion};

/// How many versions before the live one a checksum-only report is looked up in.
const APPLIED_LOOKBACK: u32 = 20;

/// An instance's report, as received.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppliedReport {
    pub environment: String,
    pub instance_id: String,
    pub version: u64,
    pub checksum: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    pub summary: DriftSummary,
    pub configs: Vec<ConfigDrift>,
}

impl ConfigService {
    /// The version a reporting instance should run: the latest, or where deployments are
    /// required the one served to it.
    fn expected_of<'a>(
        &'a self,
        latest: &'a Arc<ConfigVersion>,
    ) -> impl Fn(&AppliedState) -> Arc<ConfigVersion> + 'a {
        move |report| {
            // A registry heartbeat reports as `service/instance`; deployments target instances.
            let instance = report
                .instance_id
                .rsplit_once('/')
                .map_or(report.instance_id.as_str(), |(_, id)| id);
            self.serving
                .served(latest, Some(&report.environment), Some(instance))
        }
    }

    pub async fn record_applied(
        &self,
        caller: &Caller,
        id: &ConfigId,
        report: AppliedReport,
    ) -> Result<ConfigDrift> {
        caller.require_on(Permission::ReportApplied, id.as_str())?;
        Environment::parse_field(&report.environment, "/environment")?;
        caller.require_environment(&report.environment)?;
        if report.instance_id.is_empty()
            || report.instance_id.len() > 256
            || report.instance_id.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "/instanceId",
                "instanceId must be 1 to 256 printable characters",
            ));
        }
        crate::core::checksum::check_reported(&report.checksum, "/checksum")?;
        if report.version == 0 || report.version > i64::MAX as u64 {
            return Err(Error::invalid(
                "/version",
                "version must be between 1 and 9223372036854775807",
            ));
        }
        let current = self.live_version(id).await?;
        let state = AppliedState {
            config_id: id.clone(),
            environment: report.environment,
            instance_id: report.instance_id,
            version: report.version,
            checksum: report.checksum,
            reported_at: now(),
        };
        self.store.record_applied(state.clone()).await?;
        let expected = self.expected_of(&current);
        assess(
            &current,
            vec![state],
            self.settings.stale_after,
            Utc::now(),
            &expected,
        )
    }

    /// Whether `caller` may report applied state of config `id` in `environment`, and the config
    /// exists (checked before a registry heartbeat writes anything).
    pub async fn check_applied_report(
        &self,
        caller: &Caller,
        id: &ConfigId,
        environment: &Environment,
    ) -> Result<()> {
        caller.require_on(Permission::ReportApplied, id.as_str())?;
        caller.require_environment(environment.as_str())?;
        let live = match self.cache.cached_head(id) {
            Some(head) => !head.deleted,
            None => self.live_version(id).await.is_ok(),
        };
        if !live {
            return Err(Error::not_found("config", id.as_str()));
        }
        Ok(())
    }

    /// An instance's report of the view it runs, by its checksum alone (a registry heartbeat's
    /// `applied` map): the version is the newest of the last few whose views in `environment`
    /// include the checksum, 0 when none does (the instance then shows as drifted).
    pub async fn record_applied_checksum(
        &self,
        caller: &Caller,
        id: &ConfigId,
        environment: &Environment,
        instance_id: &str,
        checksum: &str,
        at: chrono::DateTime<Utc>,
    ) -> Result<()> {
        caller.require_on(Permission::ReportApplied, id.as_str())?;
        caller.require_environment(environment.as_str())?;
        let current = self.live_version(id).await?;
        let mut version = 0;
        if valid_checksums(&current, environment.as_str(), at)?.contains(&checksum) {
            version = current.version;
        } else {
            for older in self
                .store
                .configs()
                .versions(id, Some(current.version), APPLIED_LOOKBACK)
                .await?
            {
                if valid_checksums(&older, environment.as_str(), at)?.contains(&checksum) {
                    version = older.version;
                    break;
                }
            }
        }
        self.store
            .record_applied(AppliedState {
                config_id: id.clone(),
                environment: environment.to_string(),
                instance_id: instance_id.to_owned(),
                version,
                checksum: checksum.to_owned(),
                reported_at: at,
            })
            .await
    }

    pub async fn drift(
        &self,
        caller: &Caller,
        id: &ConfigId,
        environment: Option<&Environment>,
    ) -> Result<ConfigDrift> {
        caller.require_on(Permission::Read, id.as_str())?;
        // An environment-scoped reader names an environment it may read: without one the
        // answer lists every environment's instances.
        caller.require_readable_environment(environment.map(Environment::as_str))?;
        let current = self.live_version(id).await?;
        let reports = self
            .store
            .applied(Some(id))
            .await?
            .into_iter()
            .filter(|r| environment.is_none_or(|e| r.environment == e.as_str()))
            .collect();
        let expected = self.expected_of(&current);
        assess(
            &current,
            reports,
            self.settings.stale_after,
            Utc::now(),
            &expected,
        )
    }

    pub async fn drift_report(&self, caller: &Caller) -> Result<DriftReport> {
        caller.require(Permission::Read)?;
        caller.require_unscoped_ids()?;
        caller.require_readable_environment(None)?;
        let mut by_config: BTreeMap<ConfigId, Vec<AppliedState>> = BTreeMap::new();
        for report in self.store.applied(None).await? {
            by_config
                .entry(report.config_id.clone())
                .or_default()
                .push(report);
        }
        let mut summary = DriftSummary::default();
        let mut configs = Vec::new();
        for (id, reports) in by_config {
            let Some(head) = self.store.configs().head(&id).await?.filter(|h| !h.deleted) else {
                continue;
            };
            let expected = self.expected_of(&head.latest);
            let drift = assess(
                &head.latest,
                reports,
                self.settings.stale_after,
                Utc::now(),
                &expected,
            )?;
            summary.in_sync += drift.summary.in_sync;
            summary.drifted += drift.summary.drifted;
            summary.stale += drift.summary.stale;
            configs.push(drift);
        }
        Ok(DriftReport { summary, configs })
    }
}
