//! Deployments: inserted once per active config and environment, moved only from the `seq`
//! they were read at, each write with its log entry, change and audit record (and, when asked,
//! the release) in one transaction; releases kept and forgotten.

use std::sync::Arc;

use chrono::Duration;
use summit_config::core::deployments::model::{Deployment, LogEntry, Release, State, Trigger};
use summit_config::core::deployments::strategy::built_ins;
use summit_config::core::error::Error;
use summit_config::core::events::kind;
use summit_config::core::ids::{ConfigId, Environment};
use summit_config::core::model::{AuditDraft, Metadata};
use summit_config::core::ports::{AuditQuery, DeploymentQuery, DeploymentWrite, Store};
use summit_config::core::service::now;

fn config(id: &str) -> ConfigId {
    ConfigId::parse(id).unwrap()
}

fn env(name: &str) -> Environment {
    Environment::parse(name).unwrap()
}

fn deployment(id: u8, config_id: &str, environment: &str) -> Deployment {
    let at = now() + Duration::milliseconds(i64::from(id));
    Deployment {
        id: format!("00000000-0000-4000-8000-0000000000{id:02}"),
        config_id: config(config_id),
        environment: env(environment),
        version: 2,
        previous_version: 1,
        strategy_name: Some("canary".into()),
        strategy: built_ins().remove(1).1,
        state: State::Pending,
        step: 0,
        batches: 1,
        percent: 0.0,
        instances: vec!["a".into(), "b".into()],
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

fn write(deployment: &Deployment, expect_seq: u64, release: Option<u64>) -> DeploymentWrite {
    DeploymentWrite {
        entry: LogEntry {
            seq: deployment.seq,
            at: deployment.updated_at,
            from: None,
            to: deployment.state,
            step: deployment.step,
            percent: deployment.percent,
            triggered_by: Trigger::Internal,
            actor: "engine".into(),
            measured: None,
            reason: None,
        },
        deployment: deployment.clone(),
        expect_seq,
        release,
        kind: if expect_seq == 0 {
            kind::DEPLOYMENT_CREATED
        } else {
            kind::DEPLOYMENT_TRANSITIONED
        },
        audit: AuditDraft {
            actor: "engine".into(),
            action: "deployment.deploying",
            environments: vec![deployment.environment.to_string()],
            message: None,
            on_behalf_of: None,
            details: Default::default(),
        },
        at: deployment.updated_at,
        applies: None,
    }
}

pub async fn one_active_deployment_per_target_moved_only_from_the_seq_it_was_read_at(
    store: Arc<dyn Store>,
) {
    let first = deployment(1, "checkout", "production");
    let before = store.latest_revision().await.unwrap();
    let created = store
        .write_deployment(write(&first, 0, None))
        .await
        .unwrap();
    assert_eq!(created.event.kind, kind::DEPLOYMENT_CREATED);
    assert_eq!(
        created.event.config_id, "checkout",
        "the subject is the config"
    );
    assert_eq!(created.event.version, 2);
    assert_eq!(created.event.revision, before + 1);
    assert_eq!(
        store.deployment(&first.id).await.unwrap(),
        Some(first.clone())
    );

    // A second active deployment of the same config and environment: refused, naming the first.
    let second = deployment(2, "checkout", "production");
    match store.write_deployment(write(&second, 0, None)).await {
        Err(Error::Conflict { message }) => assert!(message.contains(&first.id), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.deployment(&second.id).await.unwrap(), None);
    assert_eq!(
        store.latest_revision().await.unwrap(),
        before + 1,
        "nothing recorded"
    );
    // Another environment is another target.
    let staging = deployment(3, "checkout", "staging");
    store
        .write_deployment(write(&staging, 0, None))
        .await
        .unwrap();

    // A move from the seq it was read at; a stale one writes nothing.
    let mut moved = first.clone();
    moved.state = State::Deploying;
    moved.targets = vec!["a".into()];
    moved.seq = 2;
    store
        .write_deployment(write(&moved, 1, None))
        .await
        .unwrap();
    let mut stale = first.clone();
    stale.state = State::Aborted;
    stale.seq = 2;
    assert!(matches!(
        store.write_deployment(write(&stale, 1, None)).await,
        Err(Error::ConcurrentModification { .. })
    ));
    assert_eq!(
        store.deployment(&first.id).await.unwrap(),
        Some(moved.clone())
    );
    let log = store.deployment_log(&first.id).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(log[1].to, State::Deploying);

    // Completing releases the version in the same write; the target is free again.
    let mut complete = moved.clone();
    complete.state = State::Complete;
    complete.seq = 3;
    store
        .write_deployment(write(&complete, 2, Some(2)))
        .await
        .unwrap();
    let releases = store.releases(Some(&config("checkout"))).await.unwrap();
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0].version, 2);
    assert_eq!(
        releases[0].deployment_id.as_deref(),
        Some(first.id.as_str())
    );
    store
        .write_deployment(write(&second, 0, None))
        .await
        .unwrap();

    // Listings: newest first, filtered, paged by creation time.
    let all = |query: DeploymentQuery| {
        let store = store.clone();
        async move {
            store
                .deployments(&DeploymentQuery { limit: 10, ..query })
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        }
    };
    // `staging` was made last (created_at is when the struct was made, not written).
    assert_eq!(
        all(DeploymentQuery::default()).await,
        [staging.id.clone(), second.id.clone(), first.id.clone()]
    );
    assert_eq!(
        all(DeploymentQuery {
            active_only: true,
            environment: Some(env("production")),
            ..DeploymentQuery::default()
        })
        .await,
        [second.id.as_str()]
    );
    assert_eq!(
        all(DeploymentQuery {
            before: Some(staging.created_at),
            ..DeploymentQuery::default()
        })
        .await,
        [second.id.clone(), first.id.clone()]
    );
    let audit = store
        .audit(AuditQuery {
            subject: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 5, "one audit record per committed write");
}

pub async fn releases_are_kept_once_and_forgotten(store: Arc<dyn Store>) {
    let id = config("pricing");
    let both = [env("production"), env("staging")];
    store.keep_releases(kept(&id, &both, 3)).await.unwrap();
    // Kept: a later call does not move an existing release.
    store.keep_releases(kept(&id, &both[..1], 7)).await.unwrap();
    let mut releases = store.releases(Some(&id)).await.unwrap();
    releases.sort_by(|a, b| a.environment.cmp(&b.environment));
    assert_eq!(
        releases
            .iter()
            .map(|r| (r.environment.as_str(), r.version))
            .collect::<Vec<_>>(),
        [("production", 3), ("staging", 3)]
    );
    assert!(releases.iter().all(|r| r.deployment_id.is_none()));
    store
        .keep_releases(kept(&config("other"), &both[..1], 1))
        .await
        .unwrap();
    assert_eq!(store.releases(None).await.unwrap().len(), 3);
    store.forget_releases(&id).await.unwrap();
    assert!(store.releases(Some(&id)).await.unwrap().is_empty());
    assert_eq!(store.releases(None).await.unwrap().len(), 1);
}

/// The releases `Serving` keeps when environments begin requiring deployments.
fn kept(id: &ConfigId, environments: &[Environment], version: u64) -> Vec<Release> {
    let released_at = now();
    environments
        .iter()
        .map(|environment| Release {
            config_id: id.clone(),
            environment: environment.clone(),
            version,
            deployment_id: None,
            released_at,
        })
        .collect()
}
