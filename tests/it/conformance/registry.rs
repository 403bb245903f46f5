//! The service registry's instances: writes take versions and revisions under expectations;
//! heartbeats touch live instances only, many in one call; expiry finds the overdue ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use summit_config::core::error::Error;
use summit_config::core::events::kind;
use summit_config::core::ids::{ConfigId, Environment, InstanceId, ServiceName};
use summit_config::core::model::AuditDraft;
use summit_config::core::ports::{
    InstanceExpectation, InstanceRemove, InstanceWrite, Store, Touch,
};
use summit_config::core::registry::model::{Instance, InstanceMetrics, Maintenance, Status};
use summit_config::core::service::now;

fn service(name: &str) -> ServiceName {
    ServiceName::parse(name).expect("valid service name")
}

fn id(text: &str) -> InstanceId {
    InstanceId::parse(text).expect("valid instance id")
}

/// Milliseconds: what every backend keeps of a heartbeat.
fn ms(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap()
}

fn instance(svc: &str, instance_id: &str, heartbeat: DateTime<Utc>) -> Instance {
    Instance {
        service_name: service(svc),
        instance_id: id(instance_id),
        service_url: "http://127.0.0.1:9000".to_owned(),
        health_check_url: Some("http://127.0.0.1:9000/health".to_owned()),
        environment: Some(Environment::parse("production").unwrap()),
        weight: 250,
        metadata: BTreeMap::from([("zone".to_owned(), "eu-1".to_owned())]),
        ttl_secs: 10,
        deregister_after_secs: 60,
        status: Status::Passing,
        output: None,
        maintenance: None,
        expired: false,
        applied: BTreeMap::new(),
        metrics: None,
        registered_at: heartbeat,
        last_heartbeat: ms(heartbeat),
        version: 0,
    }
}

fn write(instance: Instance, expect: InstanceExpectation) -> InstanceWrite {
    InstanceWrite {
        subject: instance.subject(),
        checksum: "c".repeat(64),
        instance,
        expect,
        kind: kind::INSTANCE_REGISTERED,
        audit: AuditDraft {
            actor: "svc".to_owned(),
            action: kind::INSTANCE_REGISTERED.as_str(),
            environments: vec!["production".to_owned()],
            message: None,
            on_behalf_of: None,
            details: Default::default(),
        },
        at: now(),
    }
}

fn version(v: u64) -> InstanceExpectation {
    InstanceExpectation {
        version: Some(v),
        ..InstanceExpectation::default()
    }
}

fn touch(svc: &str, instance_id: &str, at: DateTime<Utc>) -> Touch {
    Touch {
        service: service(svc),
        instance_id: id(instance_id),
        at,
        applied: None,
        output: None,
        metrics: None,
    }
}

pub(super) async fn an_instance_write_takes_the_next_version_and_a_revision_under_its_expectation(
    store: Arc<dyn Store>,
) {
    let at = now();
    let mut first = instance("payments", "p-1", at);
    first.maintenance = Some(Maintenance {
        reason: Some("disk".to_owned()),
        by: "ops".to_owned(),
        since: at,
    });
    let committed = store
        .put_instance(write(first.clone(), version(0)))
        .await
        .unwrap();
    assert_eq!(committed.version, 1);
    assert_eq!(committed.event.kind, kind::INSTANCE_REGISTERED);
    assert_eq!(committed.event.config_id, "payments/p-1");
    let stored = store
        .instance(&service("payments"), &id("p-1"))
        .await
        .unwrap()
        .expect("stored");
    first.version = 1;
    assert_eq!(stored, first, "every field round-trips");

    // Registering an existing id again needs its version.
    let error = store
        .put_instance(write(instance("payments", "p-1", at), version(0)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );
    let latest = store.latest_revision().await.unwrap();
    assert_eq!(
        latest, committed.event.revision,
        "a refused write records nothing"
    );
    let second = store
        .put_instance(write(instance("payments", "p-1", at), version(1)))
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(second.event.revision, latest + 1);

    store
        .put_instance(write(instance("orders", "o-1", at), version(0)))
        .await
        .unwrap();
    let all = store.instances(None).await.unwrap();
    let names: Vec<String> = all.iter().map(Instance::subject).collect();
    assert_eq!(names, ["orders/o-1", "payments/p-1"], "by service, then id");
    assert_eq!(
        store
            .instances(Some(&service("orders")))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub(super) async fn heartbeats_touch_live_instances_in_one_call_and_refuse_the_others(
    store: Arc<dyn Store>,
) {
    let at = now();
    store
        .put_instance(write(instance("svc", "live", at), version(0)))
        .await
        .unwrap();
    let mut expired = instance("svc", "expired", at);
    expired.expired = true;
    store
        .put_instance(write(expired, version(0)))
        .await
        .unwrap();
    let silent = instance("svc", "silent", at - Duration::seconds(11));
    store.put_instance(write(silent, version(0))).await.unwrap();
    let revision = store.latest_revision().await.unwrap();

    let later = at + Duration::milliseconds(1500);
    let mut reported = touch("svc", "live", later);
    let applied = BTreeMap::from([(ConfigId::parse("checkout").unwrap(), "a".repeat(64))]);
    reported.applied = Some(applied.clone());
    reported.output = Some("all good".to_owned());
    let alive = store
        .touch_instances(&[
            reported,
            touch("svc", "unknown", later),
            touch("svc", "expired", later),
            touch("svc", "silent", at),
            touch("svc", "live", later),
        ])
        .await
        .unwrap();
    assert_eq!(alive, [true, false, false, false, true]);
    let live = store
        .instance(&service("svc"), &id("live"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.last_heartbeat, ms(later));
    assert_eq!(live.applied, applied);
    assert_eq!(live.output.as_deref(), Some("all good"));
    assert_eq!(live.version, 1, "a heartbeat is not a version");
    // An earlier heartbeat never moves the last one back; one without applied keeps it.
    let alive = store
        .touch_instances(&[touch("svc", "live", at)])
        .await
        .unwrap();
    assert_eq!(alive, [true]);
    let live = store
        .instance(&service("svc"), &id("live"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.last_heartbeat, ms(later));
    assert_eq!(live.applied, applied);
    assert_eq!(
        store.latest_revision().await.unwrap(),
        revision,
        "heartbeats record no change"
    );
}

pub(super) async fn a_heartbeat_that_changes_the_applied_map_forgets_the_metrics(
    store: Arc<dyn Store>,
) {
    let at = now();
    store
        .put_instance(write(instance("svc", "web", at), version(0)))
        .await
        .unwrap();
    let applied = |checksum: char| {
        Some(BTreeMap::from([(
            ConfigId::parse("checkout").unwrap(),
            checksum.to_string().repeat(64),
        )]))
    };
    let measured = |rate: f64| {
        Some(InstanceMetrics {
            error_rate: Some(rate),
            latency_p99_ms: Some(80.5),
        })
    };
    let beat = |applied, metrics| Touch {
        applied,
        metrics,
        ..touch("svc", "web", at)
    };
    let metrics = || async {
        store
            .instance(&service("svc"), &id("web"))
            .await
            .unwrap()
            .unwrap()
            .metrics
            .and_then(|m| m.error_rate)
    };
    // Applied first, then measured running it: kept; a heartbeat without metrics keeps them.
    store
        .touch_instances(&[beat(applied('a'), None)])
        .await
        .unwrap();
    store
        .touch_instances(&[beat(applied('a'), measured(0.3))])
        .await
        .unwrap();
    store
        .touch_instances(&[beat(applied('a'), None)])
        .await
        .unwrap();
    assert_eq!(metrics().await, Some(0.3));
    // Something new applied: forgotten, the heartbeat's own metrics too.
    store
        .touch_instances(&[beat(applied('b'), measured(0.2))])
        .await
        .unwrap();
    assert_eq!(metrics().await, None);
    store
        .touch_instances(&[beat(None, measured(0.01))])
        .await
        .unwrap();
    assert_eq!(metrics().await, Some(0.01));
    // In one batch: metrics, then the same map again, keep them; a new map after them does not.
    store
        .touch_instances(&[beat(None, measured(0.02)), beat(applied('b'), None)])
        .await
        .unwrap();
    assert_eq!(metrics().await, Some(0.02));
    store
        .touch_instances(&[beat(applied('b'), measured(0.03)), beat(applied('c'), None)])
        .await
        .unwrap();
    assert_eq!(metrics().await, None);
}

pub(super) async fn overdue_instances_are_expired_or_removed_only_as_they_were_read(
    store: Arc<dyn Store>,
) {
    let at = now();
    store
        .put_instance(write(instance("svc", "fresh", at), version(0)))
        .await
        .unwrap();
    let stale = instance("svc", "stale", at - Duration::seconds(20));
    store.put_instance(write(stale, version(0))).await.unwrap();
    let mut gone = instance("svc", "gone", at - Duration::seconds(61));
    gone.expired = true;
    store.put_instance(write(gone, version(0))).await.unwrap();
    let mut waiting = instance("svc", "waiting", at - Duration::seconds(20));
    waiting.expired = true;
    store
        .put_instance(write(waiting, version(0)))
        .await
        .unwrap();

    let overdue: Vec<String> = store
        .overdue_instances(at)
        .await
        .unwrap()
        .iter()
        .map(Instance::subject)
        .collect();
    assert_eq!(overdue, ["svc/gone", "svc/stale"]);

    // A heartbeat that lands after an expiry read it wins: the expiry writes nothing.
    let read = store
        .instance(&service("svc"), &id("fresh"))
        .await
        .unwrap()
        .unwrap();
    let beat = at + Duration::milliseconds(5);
    assert_eq!(
        store
            .touch_instances(&[touch("svc", "fresh", beat)])
            .await
            .unwrap(),
        [true]
    );
    let read_as = InstanceExpectation {
        last_heartbeat: Some(read.last_heartbeat),
        ..InstanceExpectation::as_read(&read)
    };
    let mut expired = read.clone();
    expired.expired = true;
    let error = store
        .put_instance(write(expired, read_as))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );
    let fresh = store
        .instance(&service("svc"), &id("fresh"))
        .await
        .unwrap()
        .unwrap();
    assert!(!fresh.expired);
    assert_eq!(fresh.last_heartbeat, ms(beat));
    // The stale one gets no heartbeat in (past its TTL) and expires as it was read.
    let read = store
        .instance(&service("svc"), &id("stale"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .touch_instances(&[touch("svc", "stale", at)])
            .await
            .unwrap(),
        [false]
    );
    let mut expired = read.clone();
    expired.expired = true;
    let expect = InstanceExpectation {
        last_heartbeat: Some(read.last_heartbeat),
        ..InstanceExpectation::as_read(&read)
    };
    let committed = store.put_instance(write(expired, expect)).await.unwrap();
    assert_eq!(committed.version, read.version + 1);
    assert!(
        store
            .instance(&service("svc"), &id("stale"))
            .await
            .unwrap()
            .unwrap()
            .expired
    );

    let remove = |instance_id: &str, expect: InstanceExpectation| InstanceRemove {
        service: service("svc"),
        instance_id: id(instance_id),
        subject: format!("svc/{instance_id}"),
        expect,
        kind: kind::INSTANCE_DEREGISTERED,
        audit: AuditDraft {
            actor: "summit-config".to_owned(),
            action: kind::INSTANCE_DEREGISTERED.as_str(),
            environments: Vec::new(),
            message: Some("removed".to_owned()),
            on_behalf_of: None,
            details: Default::default(),
        },
        at,
    };
    let error = store
        .remove_instance(remove("gone", version(7)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );
    let removed = store
        .remove_instance(remove("gone", version(1)))
        .await
        .unwrap();
    assert_eq!(removed.event.kind, kind::INSTANCE_DEREGISTERED);
    assert!(
        store
            .instance(&service("svc"), &id("gone"))
            .await
            .unwrap()
            .is_none()
    );
    let error = store
        .remove_instance(remove("gone", InstanceExpectation::default()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}
