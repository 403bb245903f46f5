//! A deployment: one config version on its way to one environment's instances, its state, and
//! the log of its transitions. Stored whole (as JSON beside a few indexed columns) and written
//! only with the sequence number it was read at, so two engines (or an engine and an operator)
//! never both move it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::gate::Measured;
use super::strategy::{Share, Step, Strategy};
use crate::core::error::{Error, Result};
use crate::core::ids::{ConfigId, Environment};
use crate::core::versioned::Metadata;

/// Where a deployment is. `pending → deploying(step) ⇄ baking(step) → final_bake → complete`,
/// and `paused`, `aborted`, `rolling_back → rolled_back`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DeploymentState)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    /// The step's instances were given the version; its gate is being evaluated.
    Deploying,
    /// The step's gate passed; it bakes (health still judged) until `bakeUntil`.
    Baking,
    /// Every instance has the version and bakes `finalBakeSecs`.
    FinalBake,
    Complete,
    Paused,
    /// Stopped by an operator: every instance is served the previous version again.
    Aborted,
    /// A gate failed: every instance is served the previous version again, and the deployment
    /// waits for them to report it.
    RollingBack,
    RolledBack,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Deploying => "deploying",
            State::Baking => "baking",
            State::FinalBake => "final_bake",
            State::Complete => "complete",
            State::Paused => "paused",
            State::Aborted => "aborted",
            State::RollingBack => "rolling_back",
            State::RolledBack => "rolled_back",
        }
    }

    pub fn parse(name: &str) -> Result<State> {
        serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| Error::invalid("state", format!("unknown deployment state '{name}'")))
    }

    /// Not finished: at most one such deployment per config and environment.
    pub fn is_active(self) -> bool {
        !matches!(self, State::Complete | State::Aborted | State::RolledBack)
    }

    /// Its targeted instances are served the deployed version.
    pub fn serves_targets(self) -> bool {
        matches!(
            self,
            State::Deploying | State::Baking | State::FinalBake | State::Paused
        )
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who moved a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An operator's action.
    User,
    /// A bake or interval ended.
    Schedule,
    /// A gate's verdict on what the instances reported.
    Health,
    /// The engine's own bookkeeping (starting, instances back on the previous version).
    Internal,
}

/// The strategy a deployment was asked for: a name (built-in or stored) or one given inline.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategyRef {
    Name(String),
    Inline(Box<Strategy>),
}

impl<'de> Deserialize<'de> for StrategyRef {
    /// A string or an object, the object read in place (so an error inside it names its field).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = StrategyRef;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a strategy's name or a strategy object")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<StrategyRef, E> {
                Ok(StrategyRef::Name(name.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<StrategyRef, A::Error> {
                Strategy::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|strategy| StrategyRef::Inline(Box::new(strategy)))
            }
        }
        deserializer.deserialize_any(Either)
    }
}

/// A deployment as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub config_id: ConfigId,
    pub environment: Environment,
    /// The version being deployed.
    pub version: u64,
    /// The version released when the deployment started: what everyone else is served, and
    /// what a rollback returns to.
    pub previous_version: u64,
    /// The strategy's name; absent when it was given inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy_name: Option<String>,
    /// The strategy as it was when the deployment started (later edits do not change it).
    pub strategy: Strategy,
    pub state: State,
    /// The plan's step (0-based) the deployment is at.
    pub step: u32,
    /// Of a rolling step: how many batches are targeted.
    pub batches: u32,
    /// The share of instances targeted, in percent.
    pub percent: f64,
    /// The instances the deployment is for, fixed when it starts.
    pub instances: Vec<String>,
    /// The instances served the deployed version (in `deploying`, `baking`, `final_bake`,
    /// `paused`); only ever grows while the deployment goes forward.
    pub targets: Vec<String>,
    pub step_started_at: DateTime<Utc>,
    /// When the bake of the current step (or the final bake) ends; absent while a step waits
    /// for `promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_until: Option<DateTime<Utc>>,
    /// Consecutive failed gate evaluations.
    pub failures: u32,
    /// When the last one was counted (failures are counted at most every
    /// `transitions::FAILURE_SPACING_SECS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Of a paused deployment: the state `resume` returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_from: Option<State>,
    /// Why it last stopped, paused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub metadata: Metadata,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Counts the deployment's writes; each write expects the one it read.
    pub seq: u64,
}

impl Deployment {
    pub fn plan(&self) -> Vec<Step> {
        self.strategy.plan()
    }

    pub fn is_last_step(&self) -> bool {
        self.step as usize + 1 >= self.plan().len()
    }

    /// The share of instances (in percent, two decimals) `targets` makes.
    pub fn percent_of(&self, targets: usize) -> f64 {
        if self.instances.is_empty() {
            return 0.0;
        }
        ((targets as f64 * 10_000.0) / self.instances.len() as f64).round() / 100.0
    }

    /// The instances step `step` (with `batches` rolling batches) targets.
    pub fn targets_of(&self, step: u32, batches: u32) -> Vec<String> {
        let plan = self.plan();
        let share = plan.get(step as usize).map_or(Share::All, |s| s.share);
        super::gate::targets(&self.id, &self.instances, share, batches)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}

/// One transition in a deployment's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// The deployment's `seq` after this transition.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// Absent for the deployment's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<State>,
    pub to: State,
    pub step: u32,
    pub percent: f64,
    pub triggered_by: Trigger,
    pub actor: String,
    /// What the gate measured, pass or fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The version an environment serves to instances no deployment targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub config_id: ConfigId,
    pub environment: Environment,
    pub version: u64,
    /// The deployment that released it; absent for the version released when the environment
    /// began requiring deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    pub released_at: DateTime<Utc>,
}
