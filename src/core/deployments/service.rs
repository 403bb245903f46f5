//! `DeploymentService`: deployments for both transports — start one, read them and their logs,
//! operators' actions — and the engine's tick, which the duties-lease holder runs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::gate::Observation;
use super::model::{Deployment, LogEntry, State, StrategyRef, Trigger};
use super::serving::Serving;
use super::strategy::{Strategy, built_ins};
use super::transitions::{Action, Instances, Move, abandon, act, advance};
use crate::core::access::{Caller, Permission};
use crate::core::approvals::model::{ChangeOperation, DeployProposal, Subject};
use crate::core::approvals::service::Applying;
use crate::core::configs::{ConfigService, Written, now, page_limit};
use crate::core::effective::valid_checksums;
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::ids::{ConfigId, Environment, InstanceId, StrategyName, Touched};
use crate::core::model::{AuditDraft, ConfigVersion, Metadata, Page};
use crate::core::ports::deployments::deployment_active;
use crate::core::ports::{AppliedRequest, DeploymentQuery, DeploymentWrite, Documents, Store};
use crate::core::registry::model::Instance;
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

/// A deployment about to start, checked.
struct Start {
    config_id: ConfigId,
    environment: Environment,
    version: u64,
    released: u64,
    strategy_name: Option<String>,
    strategy: Strategy,
    instances: Option<Vec<String>>,
    metadata: Metadata,
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

    /// Starts a deployment (`pending`; the engine takes its first step at its next tick), or,
    /// to a protected environment, asks for approvals (a change request whose applying starts
    /// it).
    pub async fn create(
        &self,
        caller: &Caller,
        request: NewDeployment,
    ) -> Result<Written<Deployment>> {
        let NewDeployment {
            config_id,
            environment,
            version,
            strategy,
            instances,
            metadata,
        } = request;
        caller.require_on(Permission::Write, config_id.as_str())?;
        caller.require_environment(environment.as_str())?;
        check_metadata(&metadata)?;
        if !self.serving().requires_deployments(environment.as_str()) {
            return Err(Error::invalid(
                "/environment",
                format!(
                    "'{environment}' does not require deployments (SUMMIT_DEPLOYMENT_ENVIRONMENTS): \
                     every version is served there as soon as it is written"
                ),
            ));
        }
        self.configs.ensure_writable()?;
        let (latest, released) = self.deployable(&config_id, &environment, version).await?;
        let (strategy_name, strategy) = self.resolve(strategy).await?;
        let instances = instances.map(listed_instances).transpose()?;
        let touched = Touched::Only(vec![environment.to_string()]);
        if let Some((protected, required)) = self.configs.approvals_needed(&touched) {
            let proposal = DeployProposal {
                environment,
                version,
                strategy_name,
                strategy,
                instances,
            };
            let request = self
                .configs
                .request_change(
                    Subject::Config(config_id),
                    ChangeOperation::Deploy(Box::new(proposal)),
                    latest.version,
                    protected,
                    required,
                    &metadata,
                )
                .await?;
            return Ok(Written::Pending(Box::new(request)));
        }
        let start = Start {
            config_id,
            environment,
            version,
            released,
            strategy_name,
            strategy,
            instances,
            metadata,
        };
        self.start(start, None).await.map(Written::Done)
    }

    /// Starts the deployment an approved change request proposes (`approvals::apply`); the
    /// request is marked applied in the same transaction.
    pub(crate) async fn apply_deploy(
        &self,
        caller: &Caller,
        config: &ConfigId,
        deploy: &DeployProposal,
        applying: &Applying,
    ) -> Result<Deployment> {
        caller.require_environment(deploy.environment.as_str())?;
        self.configs.ensure_writable()?;
        let (_, released) = self
            .deployable(config, &deploy.environment, deploy.version)
            .await?;
        let start = Start {
            config_id: config.clone(),
            environment: deploy.environment.clone(),
            version: deploy.version,
            released,
            strategy_name: deploy.strategy_name.clone(),
            strategy: deploy.strategy.clone(),
            instances: deploy.instances.clone(),
            metadata: applying.metadata.clone(),
        };
        self.start(start, Some(applying.applies.clone())).await
    }

    /// The config's latest version and the version released in `environment`, if `version`
    /// can be deployed there (it exists and is not the released one).
    async fn deployable(
        &self,
        config: &ConfigId,
        environment: &Environment,
        version: u64,
    ) -> Result<(Arc<ConfigVersion>, u64)> {
        let latest = self.fresh_latest(config).await?;
        if version == 0 || version > latest.version {
            return Err(Error::invalid(
                "/version",
                format!(
                    "'{config}' has versions 1 to {}; version {version} does not exist",
                    latest.version
                ),
            ));
        }
        let released = self.released(&latest, environment).await?;
        if version == released {
            return Err(Error::Conflict {
                message: format!("version {version} is already released in '{environment}'"),
            });
        }
        Ok((latest, released))
    }

    async fn start(&self, start: Start, applies: Option<AppliedRequest>) -> Result<Deployment> {
        let Start {
            config_id,
            environment,
            version,
            released,
            strategy_name,
            strategy,
            instances,
            metadata,
        } = start;
        // Listed ones were checked when asked (`create`), before any approval.
        let instances = match instances {
            Some(listed) => listed,
            None => self.reading_instances(&config_id, &environment).await?,
        };
        if instances.is_empty() {
            return Err(Error::invalid(
                "/instances",
                format!(
                    "no instance to deploy to: list them, or let instances of '{environment}' \
                     register and report the config in their heartbeats' applied map"
                ),
            ));
        }
        let at = now();
        let deployment = Deployment {
            id: uuid::Uuid::new_v4().to_string(),
            config_id,
            environment,
            version,
            previous_version: released,
            strategy_name,
            strategy,
            state: State::Pending,
            step: 0,
            batches: 1,
            percent: 0.0,
            instances,
            targets: Vec::new(),
            step_started_at: at,
            bake_until: None,
            failures: 0,
            last_failure_at: None,
            paused_from: None,
            reason: None,
            created_by: metadata.actor.clone(),
            metadata,
            created_at: at,
            updated_at: at,
            seq: 1,
        };
        let actor = deployment.created_by.clone();
        let audit = AuditDraft {
            actor: actor.clone(),
            action: "deployment.created",
            environments: vec![deployment.environment.to_string()],
            message: Some(describe(None, &deployment, None)),
            on_behalf_of: deployment.metadata.on_behalf_of.clone(),
            details: Default::default(),
        };
        let entry = LogEntry {
            seq: 1,
            at,
            from: None,
            to: State::Pending,
            step: 0,
            percent: 0.0,
            triggered_by: Trigger::User,
            actor,
            measured: None,
            reason: deployment.metadata.message.clone(),
        };
        self.record(DeploymentWrite {
            deployment: deployment.clone(),
            expect_seq: 0,
            entry,
            release: None,
            kind: kind::DEPLOYMENT_CREATED,
            audit,
            at,
            applies,
        })
        .await?;
        Ok(deployment)
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

    /// One pass of the engine: every active deployment takes the move its state, its bakes and
    /// its instances' reports call for. Each write expects the `seq` it read, so a move is made
    /// once even when two replicas tick (a lease handed over) or an operator acts meanwhile.
    pub async fn tick(&self, at: DateTime<Utc>) -> Result<usize> {
        let active = self
            .store
            .deployments(&DeploymentQuery {
                active_only: true,
                limit: u32::MAX,
                ..DeploymentQuery::default()
            })
            .await?;
        if active.is_empty() {
            return Ok(0);
        }
        // Heartbeats (acks, health) are written by every replica: read them from the database.
        let registered = self.store.instances(None).await?;
        let by_id: Registered = registered
            .iter()
            .filter_map(|i| {
                Some((
                    (i.environment.as_ref()?.as_str(), i.instance_id.as_str()),
                    i,
                ))
            })
            .collect();
        let mut moved = 0;
        for deployment in active {
            match self.tick_one(&deployment, &by_id, at).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(Error::ConcurrentModification { .. }) => {}
                Err(error) => {
                    tracing::warn!(%error, deployment = %deployment.id, "deployment step failed");
                }
            }
        }
        Ok(moved)
    }

    async fn tick_one(
        &self,
        deployment: &Deployment,
        registered: &Registered<'_>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let config = &deployment.config_id;
        let live = matches!(self.store.configs().head(config).await?, Some(h) if !h.deleted);
        let step = if !live {
            abandon(deployment, "the config was deleted")
        } else {
            let deployed = self.version(config, deployment.version).await?;
            let previous = self.version(config, deployment.previous_version).await?;
            let view = Observed::new(deployment, registered, &deployed, &previous, at)?;
            match advance(deployment, at, &view) {
                Some(step) => step,
                None => return Ok(false),
            }
        };
        self.apply(deployment, step, "deployment-engine", None)
            .await?;
        Ok(true)
    }

    /// A completed deployment's rollback releases the previous version again: not under a
    /// later deployment, and not in a protected environment (where releasing needs approvals:
    /// deploy the previous version instead).
    async fn check_rollback(&self, deployment: &Deployment) -> Result<()> {
        let touched = Touched::Only(vec![deployment.environment.to_string()]);
        if self.configs.approvals_needed(&touched).is_some() {
            return Err(Error::Conflict {
                message: format!(
                    "'{}' is protected: deploy version {} again instead (that asks for approvals)",
                    deployment.environment, deployment.previous_version
                ),
            });
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

    /// A strategy by name (built-in or stored), or one given inline, checked.
    async fn resolve(&self, strategy: StrategyRef) -> Result<(Option<String>, Strategy)> {
        match strategy {
            StrategyRef::Inline(strategy) => {
                strategy.check().map_err(|error| match error {
                    Error::InvalidInput { field, message } => Error::InvalidInput {
                        field: format!("/strategy{field}"),
                        message,
                    },
                    other => other,
                })?;
                Ok((None, *strategy))
            }
            StrategyRef::Name(name) => {
                let name = StrategyName::parse_field(&name, "/strategy")?;
                if let Some((_, strategy)) = built_ins().into_iter().find(|(n, _)| *n == name) {
                    return Ok((Some(name.to_string()), strategy));
                }
                match self.store.strategies().head(&name).await? {
                    Some(head) if !head.deleted => {
                        Ok((Some(name.to_string()), head.latest.document.clone()))
                    }
                    _ => Err(Error::invalid(
                        "/strategy",
                        format!("no deployment strategy is named '{name}'"),
                    )),
                }
            }
        }
    }

    /// The registered instances of `environment` that report having applied the config.
    async fn reading_instances(
        &self,
        config: &ConfigId,
        environment: &Environment,
    ) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .store
            .instances(None)
            .await?
            .into_iter()
            .filter(|i| !i.expired && i.environment.as_ref() == Some(environment))
            .filter(|i| i.applied.contains_key(config))
            .map(|i| i.instance_id.to_string())
            .collect();
        ids.sort();
        ids.dedup();
        check_count(ids.len())?;
        Ok(ids)
    }
}

fn check_count(count: usize) -> Result<()> {
    if count > MAX_INSTANCES {
        return Err(Error::invalid(
            "/instances",
            format!("a deployment is for at most {MAX_INSTANCES} instances"),
        ));
    }
    Ok(())
}

/// Listed instance ids, checked (each names its position) and without repeats.
fn listed_instances(listed: Vec<String>) -> Result<Vec<String>> {
    check_count(listed.len())?;
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(listed.len());
    for (n, id) in listed.into_iter().enumerate() {
        let id = InstanceId::parse_field(&id, &format!("/instances/{n}"))?;
        if seen.insert(id.to_string()) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// Registered instances by (environment, instance id), read once per engine tick.
type Registered<'a> = HashMap<(&'a str, &'a str), &'a Instance>;

/// The engine's view of a deployment's instances: by id, in its environment, with the
/// checksums that count as having applied the deployed or the previous version.
struct Observed<'a> {
    registered: &'a Registered<'a>,
    environment: &'a str,
    config: &'a ConfigId,
    deployed: HashSet<String>,
    previous: HashSet<String>,
}

impl<'a> Observed<'a> {
    fn new(
        deployment: &'a Deployment,
        registered: &'a Registered<'a>,
        deployed: &ConfigVersion,
        previous: &ConfigVersion,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let environment = deployment.environment.as_str();
        let checksums = |version: &ConfigVersion| -> Result<HashSet<String>> {
            let mut all: HashSet<String> = valid_checksums(version, environment, at)?
                .into_iter()
                .map(str::to_owned)
                .collect();
            all.insert(version.checksum.clone());
            Ok(all)
        };
        Ok(Observed {
            registered,
            environment,
            config: &deployment.config_id,
            deployed: checksums(deployed)?,
            previous: checksums(previous)?,
        })
    }
}

impl Instances for Observed<'_> {
    fn observe(&self, targets: &[String], previous: bool) -> Vec<Observation> {
        let accepted = if previous {
            &self.previous
        } else {
            &self.deployed
        };
        targets
            .iter()
            .map(
                |id| match self.registered.get(&(self.environment, id.as_str())) {
                    Some(instance) => Observation {
                        acked: instance
                            .applied
                            .get(self.config)
                            .is_some_and(|checksum| accepted.contains(checksum)),
                        healthy: instance.healthy(),
                        error_rate: instance.metrics.and_then(|m| m.error_rate),
                        latency_p99_ms: instance.metrics.and_then(|m| m.latency_p99_ms),
                    },
                    // Gone from the registry: it reports nothing.
                    None => Observation {
                        acked: false,
                        healthy: false,
                        error_rate: None,
                        latency_p99_ms: None,
                    },
                },
            )
            .collect()
    }
}
