//! Starting a deployment: checking what is asked, asking for approvals where the environment
//! is protected, and recording it `pending` for the engine.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{DeploymentService, MAX_INSTANCES, NewDeployment, describe};
use crate::core::access::{Caller, Permission};
use crate::core::approvals::model::{ChangeOperation, DeployProposal, Subject};
use crate::core::approvals::service::Applying;
use crate::core::configs::{Written, now};
use crate::core::deployments::model::{Deployment, LogEntry, State, StrategyRef, Trigger};
use crate::core::deployments::strategy::{Strategy, built_ins};
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::ids::{ConfigId, Environment, InstanceId, StrategyName, Touched};
use crate::core::model::{AuditDraft, ConfigVersion, Metadata};
use crate::core::ports::{AppliedRequest, DeploymentWrite, Documents};
use crate::core::validation::check_metadata;

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

impl Start {
    /// The deployment, pending its first step, to `instances`.
    fn pending(self, instances: Vec<String>, at: DateTime<Utc>) -> Deployment {
        Deployment {
            id: uuid::Uuid::new_v4().to_string(),
            config_id: self.config_id,
            environment: self.environment,
            version: self.version,
            previous_version: self.released,
            strategy_name: self.strategy_name,
            strategy: self.strategy,
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
            created_by: self.metadata.actor.clone(),
            metadata: self.metadata,
            created_at: at,
            updated_at: at,
            seq: 1,
        }
    }
}

impl DeploymentService {
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
            return Err(Error::conflict(format!(
                "version {version} is already released in '{environment}'"
            )));
        }
        Ok((latest, released))
    }

    async fn start(&self, mut start: Start, applies: Option<AppliedRequest>) -> Result<Deployment> {
        // Listed ones were checked when asked (`create`), before any approval.
        let instances = match start.instances.take() {
            Some(listed) => listed,
            None => {
                self.reading_instances(&start.config_id, &start.environment)
                    .await?
            }
        };
        if instances.is_empty() {
            return Err(Error::invalid(
                "/instances",
                format!(
                    "no instance to deploy to: list them, or let instances of '{}' register \
                     and report the config in their heartbeats' applied map",
                    start.environment
                ),
            ));
        }
        let at = now();
        let deployment = start.pending(instances, at);
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
