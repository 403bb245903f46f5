//! How a deployment moves: pure functions of the deployment, the time and what its instances
//! report, shared by the engine (ticks) and the service (operators' actions). Each returns the
//! next state to record, or nothing to do.

use chrono::{DateTime, Duration, Utc};

use super::gate::{Measured, Observation, Verdict, evaluate};
use super::model::{Deployment, State, Trigger};
use super::strategy::NoData;
use crate::core::error::{Error, Result};

/// A move to record: the deployment's next state and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub next: Deployment,
    pub trigger: Trigger,
    pub measured: Option<Measured>,
    pub reason: Option<String>,
    /// The version the environment releases from now on.
    pub release: Option<u64>,
}

/// What an operator may ask of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    /// Skip to every instance.
    Promote,
    /// Stop: every instance is served the previous version again.
    Abort,
    /// After completion: release the previous version again.
    Rollback,
}

impl Action {
    pub fn parse(name: &str) -> Result<Action> {
        Ok(match name {
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            "promote" => Action::Promote,
            "abort" => Action::Abort,
            "rollback" => Action::Rollback,
            _ => {
                return Err(Error::invalid(
                    "action",
                    format!("unknown action '{name}': pause, resume, promote, abort or rollback"),
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Promote => "promote",
            Action::Abort => "abort",
            Action::Rollback => "rollback",
        }
    }
}

/// What the engine knows of the deployment's instances.
pub trait Instances {
    /// Of each of `targets`: whether it reports the deployed version (`previous`: the previous
    /// one), its health and what it measured.
    fn observe(&self, targets: &[String], previous: bool) -> Vec<Observation>;
}

fn elapsed_secs(since: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    u64::try_from((now - since).num_seconds()).unwrap_or(0)
}

fn after(now: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    now + Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

fn moved(deployment: &Deployment, state: State, trigger: Trigger) -> Move {
    let mut next = deployment.clone();
    next.state = state;
    Move {
        next,
        trigger,
        measured: None,
        reason: None,
        release: None,
    }
}

/// To `step` (with `batches` rolling batches): its instances are given the version.
fn to_step(deployment: &Deployment, step: u32, batches: u32, now: DateTime<Utc>) -> Deployment {
    let mut next = deployment.clone();
    let mut targets = deployment.targets.clone();
    for id in deployment.targets_of(step, batches) {
        if !targets.contains(&id) {
            targets.push(id);
        }
    }
    next.state = State::Deploying;
    next.step = step;
    next.batches = batches;
    next.percent = deployment.percent_of(targets.len());
    next.targets = targets;
    next.step_started_at = now;
    next.bake_until = None;
    next.failures = 0;
    next.last_failure_at = None;
    next.paused_from = None;
    next.reason = None;
    next
}

/// Failed gate evaluations are counted at most this often: `failureLimit` consecutive failures
/// span at least `(failureLimit - 1) ×` this, however fast the engine ticks.
pub const FAILURE_SPACING_SECS: i64 = 5;

/// A failed gate: counted (at most every `FAILURE_SPACING_SECS`), and once `failureLimit`
/// consecutive evaluations failed, rolled back.
fn failed(
    deployment: &Deployment,
    measured: Measured,
    reason: String,
    now: DateTime<Utc>,
) -> Option<Move> {
    if deployment.failures > 0
        && deployment
            .last_failure_at
            .is_some_and(|last| now - last < Duration::seconds(FAILURE_SPACING_SECS))
    {
        return None;
    }
    let failures = deployment.failures + 1;
    let limit = deployment.strategy.gate.failure_limit.max(1);
    let mut step = if failures >= limit {
        let mut step = moved(deployment, State::RollingBack, Trigger::Health);
        step.next.step_started_at = now;
        step
    } else {
        moved(deployment, deployment.state, Trigger::Health)
    };
    step.next.failures = failures;
    step.next.last_failure_at = Some(now);
    step.next.reason = Some(format!("gate failed ({failures} of {limit}): {reason}"));
    step.reason = step.next.reason.clone();
    step.measured = Some(measured);
    Some(step)
}

/// A step without data: paused or rolled back, as the strategy says; never passed.
fn no_data(
    deployment: &Deployment,
    measured: Measured,
    reason: String,
    now: DateTime<Utc>,
) -> Move {
    let mut step = match deployment.strategy.gate.on_no_data {
        NoData::Pause => {
            let mut step = moved(deployment, State::Paused, Trigger::Health);
            step.next.paused_from = Some(deployment.state);
            step
        }
        NoData::Rollback => {
            let mut step = moved(deployment, State::RollingBack, Trigger::Health);
            step.next.step_started_at = now;
            step
        }
    };
    step.next.reason = Some(format!("no data: {reason}"));
    step.reason = step.next.reason.clone();
    step.measured = Some(measured);
    step
}

/// The engine's move on `deployment` at `now`, if any.
pub fn advance(
    deployment: &Deployment,
    now: DateTime<Utc>,
    instances: &dyn Instances,
) -> Option<Move> {
    let plan = deployment.plan();
    let gate = &deployment.strategy.gate;
    let elapsed = elapsed_secs(deployment.step_started_at, now);
    match deployment.state {
        State::Pending => Some(Move {
            next: to_step(deployment, 0, 1, now),
            ..moved(deployment, State::Deploying, Trigger::Internal)
        }),
        State::Deploying => {
            let seen = instances.observe(&deployment.targets, false);
            match evaluate(gate, &seen, elapsed) {
                Verdict::Pass(measured) => {
                    let step = plan.get(deployment.step as usize).copied()?;
                    let (state, bake_until) = if deployment.is_last_step() {
                        (State::FinalBake, Some(after(now, step.bake_secs)))
                    } else if step.needs_promote {
                        (State::Baking, None)
                    } else {
                        (State::Baking, Some(after(now, step.bake_secs)))
                    };
                    let mut next = moved(deployment, state, Trigger::Health);
                    next.next.bake_until = bake_until;
                    next.next.failures = 0;
                    next.next.last_failure_at = None;
                    next.next.reason = None;
                    next.measured = Some(measured);
                    Some(next)
                }
                Verdict::Wait(_) => None,
                Verdict::Fail(measured, reason) => failed(deployment, measured, reason, now),
                Verdict::NoData(measured, reason) => {
                    Some(no_data(deployment, measured, reason, now))
                }
            }
        }
        State::Baking | State::FinalBake => {
            // Health is judged through the bake too: a failure rolls back at once.
            let seen = instances.observe(&deployment.targets, false);
            let passed = match evaluate(gate, &seen, elapsed) {
                Verdict::Fail(measured, reason) => {
                    return failed(deployment, measured, reason, now);
                }
                Verdict::Pass(measured) if deployment.failures > 0 => {
                    let mut next = moved(deployment, deployment.state, Trigger::Health);
                    next.next.failures = 0;
                    next.next.last_failure_at = None;
                    next.next.reason = None;
                    next.reason = Some("the gate passes again".into());
                    next.measured = Some(measured);
                    return Some(next);
                }
                Verdict::Pass(_) => Ok(()),
                Verdict::Wait(_) => Err(None),
                Verdict::NoData(measured, reason) => Err(Some((measured, reason))),
            };
            let until = deployment.bake_until?;
            if now < until {
                return None;
            }
            // The bake is over, but it moves on only on a passing gate: instances still
            // applying the version (after a resume, say) are waited for, and no data is never
            // a pass, as while deploying.
            match passed {
                Ok(()) => {}
                Err(None) => return None,
                Err(Some((measured, reason))) => {
                    return Some(no_data(deployment, measured, reason, now));
                }
            }
            if deployment.state == State::FinalBake {
                let mut next = moved(deployment, State::Complete, Trigger::Schedule);
                next.next.bake_until = None;
                next.release = Some(deployment.version);
                return Some(next);
            }
            let step = plan.get(deployment.step as usize)?;
            let next = if step.repeats && deployment.targets.len() < deployment.instances.len() {
                to_step(deployment, deployment.step, deployment.batches + 1, now)
            } else {
                to_step(deployment, deployment.step + 1, 1, now)
            };
            Some(Move {
                next,
                ..moved(deployment, State::Deploying, Trigger::Schedule)
            })
        }
        State::RollingBack => {
            // Back once every instance that had the version reports the previous one again,
            // or after the apply timeout (with what they reported).
            let seen = instances.observe(&deployment.targets, true);
            let back = seen.iter().filter(|o| o.acked).count();
            if back < seen.len() && elapsed < gate.apply_timeout_secs {
                return None;
            }
            let mut next = moved(deployment, State::RolledBack, Trigger::Internal);
            next.measured = Some(Measured {
                targeted: seen.len() as u32,
                acked: back as u32,
                ack_ratio: if seen.is_empty() {
                    1.0
                } else {
                    back as f64 / seen.len() as f64
                },
                ..Measured::default()
            });
            next.reason = Some(format!(
                "{back} of {} instances report the previous version",
                seen.len()
            ));
            Some(next)
        }
        State::Paused | State::Complete | State::Aborted | State::RolledBack => None,
    }
}

/// Its config was deleted: the deployment stops (`aborted`) whatever its state.
pub fn abandon(deployment: &Deployment, reason: &str) -> Move {
    let mut step = moved(deployment, State::Aborted, Trigger::Internal);
    step.next.bake_until = None;
    step.next.reason = Some(reason.to_owned());
    step.reason = Some(reason.to_owned());
    step
}

fn refuse(deployment: &Deployment, action: Action) -> Error {
    Error::conflict(format!(
        "deployment {} is {}: it cannot be asked to {}",
        deployment.id,
        deployment.state,
        action.as_str()
    ))
}

/// An operator's `action` on `deployment` at `now`; `released` is the version its environment
/// releases now (a rollback after completion needs it to be this deployment's).
pub fn act(
    deployment: &Deployment,
    action: Action,
    released: u64,
    now: DateTime<Utc>,
) -> Result<Move> {
    let state = deployment.state;
    match action {
        Action::Pause => {
            if !matches!(
                state,
                State::Pending | State::Deploying | State::Baking | State::FinalBake
            ) {
                return Err(refuse(deployment, action));
            }
            let mut next = moved(deployment, State::Paused, Trigger::User);
            next.next.paused_from = Some(state);
            Ok(next)
        }
        Action::Resume => {
            if state != State::Paused {
                return Err(refuse(deployment, action));
            }
            let to = deployment.paused_from.unwrap_or(State::Deploying);
            let mut next = moved(deployment, to, Trigger::User);
            next.next.paused_from = None;
            next.next.reason = None;
            // The apply timeout starts again; a bake that ended meanwhile ends at the next tick.
            next.next.step_started_at = now;
            next.next.failures = 0;
            next.next.last_failure_at = None;
            Ok(next)
        }
        Action::Promote => {
            if !matches!(
                state,
                State::Pending
                    | State::Deploying
                    | State::Baking
                    | State::FinalBake
                    | State::Paused
            ) {
                return Err(refuse(deployment, action));
            }
            if state == State::FinalBake {
                let mut next = moved(deployment, State::Complete, Trigger::User);
                next.next.bake_until = None;
                next.release = Some(deployment.version);
                return Ok(next);
            }
            let last = deployment.plan().len().saturating_sub(1) as u32;
            Ok(Move {
                next: to_step(deployment, last, 1, now),
                ..moved(deployment, State::Deploying, Trigger::User)
            })
        }
        Action::Abort => {
            if !state.is_active() || state == State::RollingBack {
                return Err(refuse(deployment, action));
            }
            let mut next = moved(deployment, State::Aborted, Trigger::User);
            next.next.bake_until = None;
            Ok(next)
        }
        Action::Rollback => {
            if state != State::Complete {
                return Err(refuse(deployment, action));
            }
            if released != deployment.version {
                return Err(Error::conflict(format!(
                    "'{}' in '{}' now releases version {released}, not this deployment's \
                     {}; deploy the version you want instead",
                    deployment.config_id, deployment.environment, deployment.version
                )));
            }
            let mut next = moved(deployment, State::RolledBack, Trigger::User);
            next.release = Some(deployment.previous_version);
            Ok(next)
        }
    }
}

#[cfg(test)]
#[path = "transitions_tests.rs"]
mod tests;
