//! Applied state: what instances report, per config, environment and instance.

use std::sync::Arc;

use serde_json::json;
use summit_config::core::checksum::checksum;
use summit_config::core::error::Error;
use summit_config::core::ids::ConfigId;
use summit_config::core::model::AppliedState;
use summit_config::core::ports::{Documents, Store};
use summit_config::core::service::now;

use super::fixtures::*;

pub(super) async fn record_applied_upserts_per_config_environment_and_instance(
    store: Arc<dyn Store>,
) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    store
        .configs()
        .append(version_write(&alpha, json!({ "v": 1 }), 0))
        .await
        .expect("alpha v1");
    store
        .configs()
        .append(version_write(&alpha, json!({ "v": 2 }), 1))
        .await
        .expect("alpha v2");
    store
        .configs()
        .append(version_write(&beta, json!({ "v": 1 }), 0))
        .await
        .expect("beta v1");

    let report = |id: &ConfigId, environment: &str, instance: &str, version: u64| AppliedState {
        config_id: id.clone(),
        environment: environment.to_owned(),
        instance_id: instance.to_owned(),
        version,
        checksum: checksum(&json!({ "v": version })),
        reported_at: now(),
    };
    let reports = [
        report(&alpha, "production", "i-1", 1),
        report(&alpha, "production", "i-2", 1),
        report(&alpha, "staging", "i-1", 1),
        report(&beta, "production", "i-1", 1),
    ];
    for state in &reports {
        store
            .record_applied(state.clone())
            .await
            .expect("record applied");
    }
    let upgraded = report(&alpha, "production", "i-1", 2);
    store
        .record_applied(upgraded.clone())
        .await
        .expect("record applied again");

    let sorted = |mut states: Vec<AppliedState>| {
        states.sort_by(|a, b| {
            (&a.config_id, &a.environment, &a.instance_id).cmp(&(
                &b.config_id,
                &b.environment,
                &b.instance_id,
            ))
        });
        states
    };
    let alpha_expected = vec![upgraded, reports[1].clone(), reports[2].clone()];
    assert_eq!(
        sorted(store.applied(Some(&alpha)).await.expect("applied")),
        alpha_expected
    );
    assert_eq!(
        store.applied(Some(&beta)).await.expect("applied"),
        [reports[3].clone()]
    );
    let mut everything = alpha_expected;
    everything.push(reports[3].clone());
    assert_eq!(
        sorted(store.applied(None).await.expect("applied")),
        everything
    );
    assert!(
        store
            .applied(Some(&config_id("gamma")))
            .await
            .expect("applied")
            .is_empty()
    );
    // A checksum that matches no version is kept as version 0 (unknown), on every backend.
    let unknown = report(&beta, "production", "i-9", 0);
    store
        .record_applied(unknown.clone())
        .await
        .expect("an unknown version is recorded");
    assert!(
        store
            .applied(Some(&beta))
            .await
            .expect("applied")
            .contains(&unknown)
    );
}

pub(super) async fn applied_state_for_a_config_that_never_existed_is_not_found(
    store: Arc<dyn Store>,
) {
    let never = config_id("never");
    let error = store
        .record_applied(AppliedState {
            config_id: never.clone(),
            environment: "production".into(),
            instance_id: "i-1".into(),
            version: 1,
            checksum: checksum(&json!({})),
            reported_at: now(),
        })
        .await
        .expect_err("no such config");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(store.applied(None).await.expect("applied").is_empty());
}

pub(super) async fn sweeping_applied_state_deletes_only_reports_older_than_the_cutoff(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    store
        .configs()
        .append(version_write(&id, json!({}), 0))
        .await
        .expect("v1");
    let report = |instance: &str, age_secs: i64| AppliedState {
        config_id: id.clone(),
        environment: "production".into(),
        instance_id: instance.into(),
        version: 1,
        checksum: checksum(&json!({})),
        reported_at: now() - chrono::Duration::seconds(age_secs),
    };
    for (instance, age) in [("old-1", 7200), ("old-2", 3700), ("fresh", 10)] {
        store
            .record_applied(report(instance, age))
            .await
            .expect("report");
    }
    let swept = store
        .sweep_applied(now() - chrono::Duration::seconds(3600))
        .await
        .expect("sweep");
    assert_eq!(swept, 2);
    let left: Vec<String> = store
        .applied(Some(&id))
        .await
        .expect("applied")
        .into_iter()
        .map(|a| a.instance_id)
        .collect();
    assert_eq!(left, vec!["fresh"]);
}
