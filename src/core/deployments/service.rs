//! `DeploymentService`: deployments for both transports — start one (`start`), read them and
//! their logs, operators' actions — and the engine's tick (`engine`), which the duties-lease
//! holder runs. Here: the reads, the actions and the recording every transition shares.

mod engine;
mod start;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::model::{Deployment, LogEntry, State, StrategyRef};
use super::serving::Serving;
use super::transitions::{Action, Move, act};
use crate::core::access::{Caller, Permission};
use crate::core::configs::{ConfigService, now, page_limit};
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::ids::{ConfigId, Environment, Touched};
use crate::core::model::{AuditDraft, ConfigVersion, Metadata, Page};
use crate::core::ports::deployments::deployment_active;
use crate::core::ports::{DeploymentQuery, DeploymentWrite, Documents, Store};
use crate::core::validation::check_metadata;

/// The most instances one deployment is for.
pub const MAX_INSTANCES: usize = 10_000;

/// A page cursor: the `createdAt` (microseconds since the epoch) of a page's last deployment.
pub fn page_cursor(cursor: u64) -> Result<DateTime<Utc>> {
    i64::try_from(cursor)
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| Error::invalid("cursor", "not a cursor this server gave"))
}

/// What one environment that requires deployments serves of a config.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    pub environment: Environment,
    /// Served to every instance no deployment targets.
    pub released_version: u64,
    pub latest_version: u64,
    /// The deployment that released it (absent for the version live when the environment
    /// began requiring deployments, or a config's first version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deployment: Option<Deployment>,
}

/// What `POST /api/v1/deployments` asks for.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub config_id: ConfigId,
    pub environment: Environment,
    pub version: u64,
    pub strategy: StrategyRef,
    /// The instances to deploy to; by default the registered instances of the environment that
    /// report having applied the config.
    pub instances: Option<Vec<String>>,
    pub metadata: Metadata,
}

pub struct DeploymentService {
    store: Arc<dyn Store>,
    /// Commits and publishes through the same path as config writes; holds what is served.
    configs: Arc<ConfigService>,
}

fn audit_action(state: State) -> &'static str {
    match state {
        State::Pending => "deployment.pending",
        State::Deploying => "deployment.deploying",
        State::Baking => "deployment.baking",
        State::FinalBake => "deployment.final_bake",
        State::Complete => "deployment.complete",
        State::Paused => "deployment.paused",
        State::Aborted => "deployment.aborted",
        State::RollingBack => "deployment.rolling_back",
        State::RolledBack => "deployment.rolled_back",
    }
}

/// How a transition reads in events and audit records.
fn describe(from: Option<State>, next: &Deployment, reason: Option<&str>) -> String {
    let mut text = match from {
        Some(from) => format!(
            "deployment {}: {from} → {} at step {} ({}%)",
            next.id, next.state, next.step, next.percent
        ),
        None => format!(
            "deployment {} of version {} to {} created",
            next.id, next.version, next.environment
        ),
    };
    if let Some(reason) = reason {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

impl DeploymentService {
    pub fn new(store: Arc<dyn Store>, configs: Arc<ConfigService>) -> Self {
        DeploymentService { store, configs }
    }

    fn serving(&self) -> &Serving {
        self.configs.serving()
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Deployment> {
        let deployment = self.find(id).await?;
        Self::require_read(caller, &deployment)?;
        Ok(deployment)
    }

    /// The deployment's transitions, oldest first.
    pub async fn log(&self, caller: &Caller, id: &str) -> Result<Vec<LogEntry>> {
        let deployment = self.find(id).await?;
        Self::require_read(caller, &deployment)?;
        self.store.deployment_log(id).await
    }

    /// The version each environment that requires deployments serves of `config`.
    pub async fn releases(&self, caller: &Caller, config: &ConfigId) -> Result<Vec<ReleaseView>> {
        caller.require_on(Permission::Read, config.as_str())?;
        let latest = match self.store.configs().head(config).await? {
            Some(head) if !head.deleted => head.latest,
            _ => return Err(Error::not_found("config", config.as_str())),
        };
        let stored = self.store.releases(Some(config)).await?;
        let active = self
            .store
            .deployments(&DeploymentQuery {
                config_id: Some(config.clone()),
                active_only: true,
                limit: u32::MAX,
                ..DeploymentQuery::default()
            })
            .await?;
        Ok(self
            .serving()
            .environments()
            .iter()
            .filter(|env| {
                caller
                    .require_readable_environment(Some(env.as_str()))
                    .is_ok()
            })
            .map(|env| ReleaseView {
                environment: env.clone(),
                released_version: self.serving().released(&latest, env.as_str()),
                latest_version: latest.version,
                released_by: stored
                    .iter()
                    .find(|r| &r.environment == env)
                    .and_then(|r| r.deployment_id.clone()),
                active_deployment: active.iter().find(|d| &d.environment == env).cloned(),
            })
            .collect())
    }

    /// Deployments, newest first; `cursor` is the `createdAt` of the last one of a page.
    pub async fn list(
        &self,
        caller: &Caller,
        mut query: DeploymentQuery,
        limit: Option<u32>,
    ) -> Result<Page<Deployment>> {
        caller.require(Permission::Read)?;
        match &query.config_id {
            Some(config) => caller.require_resource(config.as_str())?,
            None => caller.require_unscoped_ids()?,
        }
        caller.require_readable_environment(query.environment.as_ref().map(|e| e.as_str()))?;
        query.limit = page_limit(limit)?;
        let items = self.store.deployments(&query).await?;
        let next_cursor = (items.len() == query.limit as usize)
            .then(|| items.last().map(|d| d.created_at.timestamp_micros() as u64))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    /// An operator's action (`pause`, `resume`, `promote`, `abort`, `rollback`).
    pub async fn act(
        &self,
        caller: &Caller,
        id: &str,
        action: Action,
        metadata: Metadata,
    ) -> Result<Deployment> {
        check_metadata(&metadata)?;
        // The engine may move the deployment between the read and the write: the action is
        // then judged again on the deployment as it now is.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.act_once(caller, id, action, &metadata).await {
                Err(Error::ConcurrentModification { .. }) if attempt < 5 => {}
                other => return other,
            }
        }
    }

    async fn act_once(
        &self,
        caller: &Caller,
        id: &str,
        action: Action,
        metadata: &Metadata,
    ) -> Result<Deployment> {
        let deployment = self.find(id).await?;
        caller.require_on(Permission::Write, deployment.config_id.as_str())?;
        caller.require_environment(deployment.environment.as_str())?;
        self.configs.ensure_writable()?;
        let released = match self.fresh_latest(&deployment.config_id).await {
            Ok(latest) => self.released(&latest, &deployment.environment).await?,
            Err(Error::NotFound { .. }) => 0,
            Err(error) => return Err(error),
        };
        if action == Action::Rollback {
            self.check_rollback(&deployment).await?;
        }
        let mut step = act(&deployment, action, released, now())?;
        step.reason = metadata.message.clone().or(step.reason);
        self.apply(
            &deployment,
            step,
            &metadata.actor,
            metadata.on_behalf_of.clone(),
        )
        .await
    }

    /// A completed deployment's rollback releases the previous version again: not under a
    /// later deployment, and not in a protected environment (where releasing needs approvals:
    /// deploy the previous version instead).
    async fn check_rollback(&self, deployment: &Deployment) -> Result<()> {
        let touched = Touched::Only(vec![deployment.environment.to_string()]);
        if self.configs.approvals_needed(&touched).is_some() {
            return Err(Error::conflict(format!(
                "'{}' is protected: deploy version {} again instead (that asks for approvals)",
                deployment.environment, deployment.previous_version
            )));
        }
        let active = self
            .store
            .deployments(&DeploymentQuery {
                config_id: Some(deployment.config_id.clone()),
                environment: Some(deployment.environment.clone()),
                active_only: true,
                limit: 1,
                ..DeploymentQuery::default()
            })
            .await?;
        if let Some(active) = active.first() {
            return Err(deployment_active(
                &deployment.config_id,
                &deployment.environment,
                &active.id,
            ));
        }
        Ok(())
    }

    /// The config's latest version as the database has it (a replica's cache may lag).
    async fn fresh_latest(&self, config: &ConfigId) -> Result<Arc<ConfigVersion>> {
        match self.configs.cache.fresh_head(config).await? {
            Some(head) if !head.deleted => Ok(head.latest),
            _ => Err(Error::not_found("config", config.as_str())),
        }
    }

    /// The version `environment` releases as the database has it: its release, else `latest`.
    async fn released(&self, latest: &ConfigVersion, environment: &Environment) -> Result<u64> {
        Ok(self
            .store
            .releases(Some(&latest.id))
            .await?
            .into_iter()
            .find(|r| &r.environment == environment)
            .map_or(latest.version, |r| r.version))
    }

    async fn version(&self, config: &ConfigId, version: u64) -> Result<ConfigVersion> {
        self.store
            .configs()
            .version(config, version)
            .await?
            .ok_or_else(|| Error::not_found("version", format!("{config}@{version}")))
    }

    /// Records `step` (expecting the deployment as read), then updates what is served.
    async fn apply(
        &self,
        deployment: &Deployment,
        step: Move,
        actor: &str,
        on_behalf_of: Option<String>,
    ) -> Result<Deployment> {
        let at = now();
        let Move {
            mut next,
            trigger,
            measured,
            reason,
            release,
        } = step;
        next.seq = deployment.seq + 1;
        next.updated_at = at;
        let message = describe(Some(deployment.state), &next, reason.as_deref());
        let entry = LogEntry {
            seq: next.seq,
            at,
            from: Some(deployment.state),
            to: next.state,
            step: next.step,
            percent: next.percent,
            triggered_by: trigger,
            actor: actor.to_owned(),
            measured,
            reason,
        };
        let audit = AuditDraft {
            actor: actor.to_owned(),
            action: audit_action(next.state),
            environments: vec![next.environment.to_string()],
            message: Some(message),
            on_behalf_of,
            details: Default::default(),
        };
        self.record(DeploymentWrite {
            deployment: next.clone(),
            expect_seq: deployment.seq,
            entry,
            release,
            kind: kind::DEPLOYMENT_TRANSITIONED,
            audit,
            at,
            applies: None,
        })
        .await?;
        Ok(next)
    }

    /// Commits `write`; what is served changes before watchers hear of it.
    async fn record(&self, write: DeploymentWrite) -> Result<()> {
        let config = write.deployment.config_id.clone();
        let rolled_back = write.deployment.state == State::RolledBack;
        let store = self.store.clone();
        let serving = self.configs.serving_handle();
        self.configs
            .commit(async move {
                let committed = store.write_deployment(write).await?;
                // What is served changes before the change is published; a failed read is
                // tried again (the follower, on replicas, or the next change would repair it).
                for attempt in 1..=3 {
                    match serving.refresh(&config).await {
                        Ok(()) => break,
                        Err(error) => {
                            tracing::warn!(%error, config = %config, attempt, "cannot refresh what is served");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
                serving.mark_applied(committed.event.revision);
                Ok(committed)
            })
            .await?;
        if rolled_back {
            metrics::counter!("summit_deployment_rollbacks_total").increment(1);
        }
        Ok(())
    }

    async fn find(&self, id: &str) -> Result<Deployment> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Error::invalid("id", "a deployment id is a UUID"));
        }
        self.store
            .deployment(id)
            .await?
            .ok_or_else(|| Error::not_found("deployment", id))
    }

    fn require_read(caller: &Caller, deployment: &Deployment) -> Result<()> {
        caller.require_on(Permission::Read, deployment.config_id.as_str())?;
        caller.require_readable_environment(Some(deployment.environment.as_str()))
    }
}
