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
            match evaluate(gate, &seen, elapsed) {
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
                _ => {}
            }
            let until = deployment.bake_until?;
            if now < until {
                return None;
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
    Error::Conflict {
        message: format!(
            "deployment {} is {}: it cannot be asked to {}",
            deployment.id,
            deployment.state,
            action.as_str()
        ),
    }
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
                return Err(Error::Conflict {
                    message: format!(
                        "'{}' in '{}' now releases version {released}, not this deployment's \
                         {}; deploy the version you want instead",
                        deployment.config_id, deployment.environment, deployment.version
                    ),
                });
            }
            let mut next = moved(deployment, State::RolledBack, Trigger::User);
            next.release = Some(deployment.previous_version);
            Ok(next)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deployments::strategy::{CanaryStep, Gate, Rollout, Strategy};
    use crate::core::ids::{ConfigId, Environment};
    use crate::core::versioned::Metadata;

    /// Every instance reports what `acked` and `healthy` say.
    struct Fleet {
        acked: bool,
        healthy: bool,
    }

    impl Instances for Fleet {
        fn observe(&self, targets: &[String], _previous: bool) -> Vec<Observation> {
            targets
                .iter()
                .map(|_| Observation {
                    acked: self.acked,
                    healthy: self.healthy,
                    error_rate: None,
                    latency_p99_ms: None,
                })
                .collect()
        }
    }

    const GOOD: Fleet = Fleet {
        acked: true,
        healthy: true,
    };

    fn deployment(rollout: Rollout, gate: Gate) -> Deployment {
        let at = Utc::now();
        Deployment {
            id: "d-1".into(),
            config_id: ConfigId::parse("app").unwrap(),
            environment: Environment::parse("production").unwrap(),
            version: 2,
            previous_version: 1,
            strategy_name: None,
            strategy: Strategy {
                rollout,
                final_bake_secs: 0,
                gate,
                description: None,
            },
            state: State::Pending,
            step: 0,
            batches: 1,
            percent: 0.0,
            instances: (0..10).map(|i| format!("i-{i}")).collect(),
            targets: Vec::new(),
            step_started_at: at,
            bake_until: None,
            failures: 0,
            last_failure_at: None,
            paused_from: None,
            reason: None,
            metadata: Metadata {
                actor: "ops".into(),
                ..Default::default()
            },
            created_by: "ops".into(),
            created_at: at,
            updated_at: at,
            seq: 1,
        }
    }

    /// Advances until nothing moves, returning the states passed through.
    fn drive(mut deployment: Deployment, fleet: &Fleet) -> (Deployment, Vec<State>) {
        let mut states = Vec::new();
        for _ in 0..100 {
            match advance(&deployment, Utc::now(), fleet) {
                Some(step) => {
                    deployment = step.next;
                    states.push(deployment.state);
                }
                None => break,
            }
        }
        (deployment, states)
    }

    #[test]
    fn a_canary_walks_its_steps_and_targets_only_grow() {
        let rollout = Rollout::Canary {
            steps: vec![
                CanaryStep {
                    percent: 20,
                    bake_secs: 0,
                },
                CanaryStep {
                    percent: 50,
                    bake_secs: 0,
                },
            ],
        };
        let (done, states) = drive(deployment(rollout, Gate::default()), &GOOD);
        use State::*;
        assert_eq!(
            states,
            [
                Deploying, Baking, Deploying, Baking, Deploying, FinalBake, Complete
            ]
        );
        assert_eq!(done.targets.len(), 10);
        assert_eq!(done.percent, 100.0);
    }

    #[test]
    fn consecutive_failures_up_to_the_limit_roll_back_and_a_pass_resets_them() {
        let gate = Gate {
            failure_limit: 2,
            ..Gate::default()
        };
        let sick = Fleet {
            acked: true,
            healthy: false,
        };
        let start = deployment(Rollout::Direct {}, gate);
        let deploying = advance(&start, Utc::now(), &GOOD).unwrap().next;
        let once = advance(&deploying, Utc::now(), &sick).unwrap();
        assert_eq!((once.next.state, once.next.failures), (State::Deploying, 1));
        assert!(once.measured.as_ref().unwrap().unhealthy_ratio > 0.0);
        let recovered = advance(&once.next, Utc::now(), &GOOD).unwrap().next;
        assert_eq!((recovered.state, recovered.failures), (State::FinalBake, 0));
        // The next failure counts only `FAILURE_SPACING_SECS` later.
        assert_eq!(advance(&once.next, Utc::now(), &sick), None);
        let later = Utc::now() + Duration::seconds(FAILURE_SPACING_SECS);
        let twice = advance(&once.next, later, &sick).unwrap();
        assert_eq!(twice.next.state, State::RollingBack);
        assert_eq!(twice.trigger, Trigger::Health);
        // Rolled back once the instances report the previous version.
        let back = advance(&twice.next, Utc::now(), &GOOD).unwrap();
        assert_eq!(back.next.state, State::RolledBack);
    }

    #[test]
    fn a_blue_green_preview_waits_for_promote_and_rolling_takes_batches() {
        let blue_green = Rollout::BlueGreen {
            preview_percent: 10,
            auto_promote: false,
            promote_after_secs: None,
        };
        let (waiting, states) = drive(deployment(blue_green, Gate::default()), &GOOD);
        assert_eq!(states.last(), Some(&State::Baking));
        assert_eq!(
            waiting.bake_until, None,
            "no bake end: it waits for promote"
        );
        let promoted = act(&waiting, Action::Promote, 1, Utc::now()).unwrap();
        assert_eq!(promoted.next.percent, 100.0);
        let (done, _) = drive(promoted.next, &GOOD);
        assert_eq!(done.state, State::Complete);

        let rolling = Rollout::Rolling {
            batch_size: 4,
            bake_secs: 0,
        };
        let (done, states) = drive(deployment(rolling, Gate::default()), &GOOD);
        let deploying = states.iter().filter(|s| **s == State::Deploying).count();
        assert_eq!(
            deploying, 4,
            "4 + 4 + 2 instances, then the final step: {states:?}"
        );
        assert_eq!(done.state, State::Complete);
    }

    #[test]
    fn actions_are_refused_where_the_state_does_not_allow_them() {
        let start = deployment(Rollout::Direct {}, Gate::default());
        let paused = act(&start, Action::Pause, 1, Utc::now()).unwrap().next;
        assert!(act(&paused, Action::Pause, 1, Utc::now()).is_err());
        let resumed = act(&paused, Action::Resume, 1, Utc::now()).unwrap().next;
        assert_eq!(resumed.state, State::Pending);
        assert!(act(&start, Action::Rollback, 1, Utc::now()).is_err());
        let aborted = act(&start, Action::Abort, 1, Utc::now()).unwrap().next;
        assert!(act(&aborted, Action::Abort, 1, Utc::now()).is_err());
        let mut complete = start.clone();
        complete.state = State::Complete;
        // A later deployment released another version: this one cannot roll it back.
        assert!(act(&complete, Action::Rollback, 3, Utc::now()).is_err());
        let rolled = act(&complete, Action::Rollback, 2, Utc::now()).unwrap();
        assert_eq!(rolled.release, Some(1));
        assert!(Action::parse("explode").is_err());
    }
}
