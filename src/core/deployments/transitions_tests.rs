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

#[test]
fn a_bake_that_is_over_moves_on_only_on_a_passing_gate() {
    let start = deployment(Rollout::Direct {}, Gate::default());
    let deploying = advance(&start, Utc::now(), &GOOD).unwrap().next;
    let baking = advance(&deploying, Utc::now(), &GOOD).unwrap().next;
    assert_eq!(baking.state, State::FinalBake);
    // The bake ended while the instances stopped reporting the version (resumed a moment
    // ago, so within the apply timeout): it waits rather than completes.
    let applying = Fleet {
        acked: false,
        healthy: true,
    };
    let mut resumed = baking.clone();
    resumed.step_started_at = Utc::now();
    resumed.bake_until = Some(Utc::now() - Duration::seconds(1));
    assert_eq!(advance(&resumed, Utc::now(), &applying), None);
    // Nothing to judge by (no instance targeted): never a pass.
    let mut empty = resumed.clone();
    empty.targets.clear();
    let moved = advance(&empty, Utc::now(), &GOOD).expect("no data is acted on");
    assert_ne!(moved.next.state, State::Complete);
    assert_eq!(moved.release, None);
    // A passing gate completes it.
    let done = advance(&resumed, Utc::now(), &GOOD).unwrap();
    assert_eq!(done.next.state, State::Complete);
    assert_eq!(done.release, Some(2));
}
