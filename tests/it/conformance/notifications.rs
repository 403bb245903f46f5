//! Webhooks, the fan-out cursors over the change log, deliveries, and the details change events
//! and audit records keep.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use summit_config::core::error::Error;
use summit_config::core::events::{AffectedInstances, ChangeDetails, kind};
use summit_config::core::notifications::model::{
    Attempt, DeliveryStatus, NewDelivery, Webhook, WebhookFilter, WebhookHealth,
};
use summit_config::core::ports::{
    DeliveryQuery, Documents, DueQuery, FanOut, Outcomes, Redelivery, Store, WebhookDelete,
    WebhookWrite,
};
use summit_config::core::service::now;

use super::fixtures::{all_audit, audit_draft, config_id, version_write};

pub(crate) fn webhook(id: &str) -> Webhook {
    let at = now();
    Webhook {
        id: id.to_owned(),
        url: "https://hooks.example.com/summit".to_owned(),
        events: vec!["config.".to_owned()],
        filter: WebhookFilter {
            config_prefix: Some("payments.".to_owned()),
            ..WebhookFilter::default()
        },
        description: "payments channel".to_owned(),
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        seq: 1,
        since_revision: 0,
        created_at: at,
        updated_at: at,
        secrets: Vec::new(),
    }
}

pub(crate) fn put(webhook: Webhook, expected_seq: Option<u64>) -> WebhookWrite {
    let kind = match expected_seq {
        None => kind::WEBHOOK_CREATED,
        Some(_) => kind::WEBHOOK_UPDATED,
    };
    WebhookWrite {
        webhook,
        expected_seq,
        kind,
        audit: audit_draft("webhook.create", "ops", "hook"),
    }
}

fn delivery(webhook: &str, revision: u64, subject: &str) -> NewDelivery {
    NewDelivery {
        webhook_id: webhook.to_owned(),
        revision,
        kind: "config.updated".to_owned(),
        subject: subject.to_owned(),
        at: now(),
    }
}

pub(super) async fn webhooks_are_created_once_and_replaced_only_from_the_seq_read(
    store: Arc<dyn Store>,
) {
    let id = config_id("payments.api");
    store
        .configs()
        .append(version_write(&id, json!({"a": 1}), 0))
        .await
        .unwrap();
    let created = store.put_webhook(put(webhook("wh_1"), None)).await.unwrap();
    assert_eq!(created.event.kind, kind::WEBHOOK_CREATED);
    assert_eq!(created.event.config_id, "wh_1");
    let listed = store.webhooks().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].since_revision, created.event.revision - 1);
    assert_eq!(listed[0].filter, webhook("wh_1").filter);

    let again = store.put_webhook(put(webhook("wh_1"), None)).await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    let mut changed = webhook("wh_1");
    changed.url = "https://hooks.example.com/other".to_owned();
    changed.seq = 2;
    let stale = store.put_webhook(put(changed.clone(), Some(5))).await;
    assert!(
        matches!(stale, Err(Error::ConcurrentModification { .. })),
        "{stale:?}"
    );
    let absent = store.put_webhook(put(webhook("wh_2"), Some(1))).await;
    assert!(matches!(absent, Err(Error::NotFound { .. })), "{absent:?}");
    store.put_webhook(put(changed, Some(1))).await.unwrap();
    let listed = store.webhooks().await.unwrap();
    assert_eq!(listed[0].url, "https://hooks.example.com/other");
    assert_eq!(listed[0].seq, 2);
    assert_eq!(listed[0].since_revision, created.event.revision - 1);

    store
        .fan_out(fan(
            "webhooks",
            None,
            10,
            vec![delivery("wh_1", 3, "payments.api")],
        ))
        .await
        .unwrap();
    let deleted = store
        .delete_webhook(WebhookDelete {
            id: "wh_1".to_owned(),
            at: now(),
            audit: audit_draft("webhook.delete", "ops", "gone"),
        })
        .await
        .unwrap();
    assert_eq!(deleted.event.kind, kind::WEBHOOK_DELETED);
    assert!(store.webhooks().await.unwrap().is_empty());
    assert!(
        store
            .deliveries(page("wh_1", None, 10))
            .await
            .unwrap()
            .is_empty()
    );
    let gone = store
        .delete_webhook(WebhookDelete {
            id: "wh_1".to_owned(),
            at: now(),
            audit: audit_draft("webhook.delete", "ops", "gone"),
        })
        .await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    let actions: Vec<String> = store
        .audit(all_audit())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(actions.iter().any(|a| a == "webhook.delete"), "{actions:?}");
}

pub(super) async fn fan_out_moves_the_cursor_only_from_where_it_was(store: Arc<dyn Store>) {
    store.put_webhook(put(webhook("wh_1"), None)).await.unwrap();
    assert_eq!(store.sink_cursor("webhooks").await.unwrap(), None);
    assert!(
        store
            .fan_out(fan("webhooks", None, 4, Vec::new()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .fan_out(fan("webhooks", None, 9, Vec::new()))
            .await
            .unwrap()
    );
    assert_eq!(store.sink_cursor("webhooks").await.unwrap(), Some(4));

    let stale = store
        .fan_out(fan(
            "webhooks",
            Some(3),
            9,
            vec![delivery("wh_1", 5, "payments.api")],
        ))
        .await
        .unwrap();
    assert!(!stale, "a cursor that moved is not moved again");
    assert!(
        store
            .deliveries(page("wh_1", None, 10))
            .await
            .unwrap()
            .is_empty()
    );

    let batch = vec![
        delivery("wh_1", 5, "payments.api"),
        delivery("wh_1", 6, "payments.api"),
    ];
    assert!(
        store
            .fan_out(fan("webhooks", Some(4), 6, batch))
            .await
            .unwrap()
    );
    // A repeat of a delivery already recorded is ignored.
    let repeat = vec![
        delivery("wh_1", 6, "payments.api"),
        delivery("wh_1", 7, "payments.db"),
    ];
    assert!(
        store
            .fan_out(fan("webhooks", Some(6), 7, repeat))
            .await
            .unwrap()
    );
    let recorded = store.deliveries(page("wh_1", None, 10)).await.unwrap();
    let revisions: Vec<u64> = recorded.iter().map(|d| d.revision).collect();
    assert_eq!(revisions, vec![7, 6, 5], "newest first, once each");
    assert!(
        recorded
            .iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0)
    );
    // Another sink has its own cursor.
    assert_eq!(store.sink_cursor("kafka").await.unwrap(), None);
    assert_eq!(store.sink_cursor("webhooks").await.unwrap(), Some(7));
}

pub(super) async fn due_deliveries_wait_behind_an_earlier_one_of_their_subject(
    store: Arc<dyn Store>,
) {
    store.put_webhook(put(webhook("wh_1"), None)).await.unwrap();
    let batch = vec![
        delivery("wh_1", 5, "payments.api"),
        delivery("wh_1", 6, "payments.api"),
        delivery("wh_1", 7, "payments.db"),
    ];
    store
        .fan_out(fan("webhooks", None, 7, batch))
        .await
        .unwrap();
    let at = now() + Duration::seconds(1);
    let due = store.due_deliveries(due_query(at, 100, &[])).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.revision).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    // A group being sent is left out, so that its backlog cannot fill the batch.
    let sending = [("wh_1".to_owned(), "payments.api".to_owned())];
    let others = store
        .due_deliveries(due_query(at, 1, &sending))
        .await
        .unwrap();
    assert_eq!(
        others.iter().map(|d| d.revision).collect::<Vec<_>>(),
        vec![7]
    );

    // The first of payments.api failed and waits a minute: the second waits behind it.
    let first = due[0].id;
    let failed = Attempt {
        delivery: first,
        status: DeliveryStatus::Pending,
        attempts: 1,
        next_attempt_at: at + Duration::seconds(60),
        last_error: Some("answered 503".to_owned()),
        last_status: Some(503),
        latency_ms: 12,
        at,
    };
    let health = WebhookHealth {
        id: "wh_1".to_owned(),
        was_failing_since: None,
        failing_since: Some(at),
        disabled_reason: None,
    };
    store
        .record_attempts(outcomes(vec![failed], vec![health]))
        .await
        .unwrap();
    let due = store.due_deliveries(due_query(at, 100, &[])).await.unwrap();
    assert_eq!(due.iter().map(|d| d.revision).collect::<Vec<_>>(), vec![7]);
    assert!(store.webhooks().await.unwrap()[0].failing_since.is_some());
    let later = store
        .due_deliveries(due_query(at + Duration::seconds(61), 100, &[]))
        .await
        .unwrap();
    assert_eq!(
        later.iter().map(|d| d.revision).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );

    let delivered = Attempt {
        delivery: first,
        status: DeliveryStatus::Delivered,
        attempts: 2,
        next_attempt_at: at,
        last_error: None,
        last_status: Some(200),
        latency_ms: 3,
        at,
    };
    store
        .record_attempts(outcomes(vec![delivered], Vec::new()))
        .await
        .unwrap();
    let log = store.deliveries(page("wh_1", None, 10)).await.unwrap();
    let done = log.iter().find(|d| d.id == first).unwrap();
    assert_eq!(done.status, DeliveryStatus::Delivered);
    assert_eq!(
        (done.attempts, done.last_status, done.latency_ms),
        (2, Some(200), Some(3))
    );
    assert!(done.delivered_at.is_some());

    // Judged from a failure state the webhook no longer has (an update re-enabled it in
    // between, say): nothing changes.
    let seq = store.webhooks().await.unwrap()[0].seq;
    let stale = WebhookHealth {
        id: "wh_1".to_owned(),
        was_failing_since: None,
        failing_since: Some(at + Duration::seconds(5)),
        disabled_reason: Some("failing".to_owned()),
    };
    store
        .record_attempts(outcomes(Vec::new(), vec![stale]))
        .await
        .unwrap();
    let hook = &store.webhooks().await.unwrap()[0];
    assert!(hook.enabled);
    assert_eq!((hook.seq, hook.failing_since), (seq, Some(at)));

    // Disabled for failing too long: nothing of it is due.
    let disabled = WebhookHealth {
        id: "wh_1".to_owned(),
        was_failing_since: Some(at),
        failing_since: Some(at),
        disabled_reason: Some("failing".to_owned()),
    };
    store
        .record_attempts(outcomes(Vec::new(), vec![disabled]))
        .await
        .unwrap();
    let hook = &store.webhooks().await.unwrap()[0];
    assert!(!hook.enabled);
    assert_eq!(hook.disabled_reason.as_deref(), Some("failing"));
    assert!(
        store
            .due_deliveries(due_query(at + Duration::hours(1), 100, &[]))
            .await
            .unwrap()
            .is_empty()
    );

    // A redelivery starts over; pruning keeps pending ones.
    let again = store
        .redeliver(redelivery("wh_1", first, at))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.status, again.attempts), (DeliveryStatus::Pending, 0));
    assert!(
        store
            .redeliver(redelivery("wh_2", first, at))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .prune_deliveries(at + Duration::days(1))
            .await
            .unwrap(),
        0
    );

    // The backlog counts every pending delivery, due or not, of every webhook.
    let mut pending = 0;
    for hook in store.webhooks().await.unwrap() {
        let deliveries = store.deliveries(page(&hook.id, None, 1000)).await.unwrap();
        pending += deliveries
            .iter()
            .filter(|d| d.status == DeliveryStatus::Pending)
            .count() as u64;
    }
    assert!(pending > 0);
    assert_eq!(store.delivery_backlog().await.unwrap(), pending);
}

pub(super) async fn deliveries_are_pruned_by_when_they_ended_and_never_while_pending(
    store: Arc<dyn Store>,
) {
    store.put_webhook(put(webhook("wh_1"), None)).await.unwrap();
    let batch = vec![
        delivery("wh_1", 5, "payments.api"),
        delivery("wh_1", 6, "payments.db"),
        delivery("wh_1", 7, "payments.web"),
    ];
    store
        .fan_out(fan("webhooks", None, 7, batch))
        .await
        .unwrap();
    let created = now();
    let due = store
        .due_deliveries(due_query(created + Duration::seconds(1), 100, &[]))
        .await
        .unwrap();
    let (delivered, failed) = (due[0].id, due[1].id);
    // Delivered at once; the other dead-lettered two days later, after its retries.
    let ended = |delivery, status, at| Attempt {
        delivery,
        status,
        attempts: 1,
        next_attempt_at: at,
        last_error: None,
        last_status: Some(200),
        latency_ms: 1,
        at,
    };
    store
        .record_attempts(outcomes(
            vec![
                ended(delivered, DeliveryStatus::Delivered, created),
                ended(failed, DeliveryStatus::Failed, created + Duration::days(2)),
            ],
            Vec::new(),
        ))
        .await
        .unwrap();
    let kept = |store: Arc<dyn Store>| async move {
        let mut revisions: Vec<u64> = store
            .deliveries(page("wh_1", None, 10))
            .await
            .unwrap()
            .iter()
            .map(|d| d.revision)
            .collect();
        revisions.sort_unstable();
        revisions
    };

    // Every delivery was created before this cutoff; only the one that ended before it goes.
    let pruned = store
        .prune_deliveries(created + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(kept(store.clone()).await, vec![6, 7]);
    let pruned = store
        .prune_deliveries(created + Duration::days(30))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(kept(store.clone()).await, vec![7], "a pending one stays");
}

pub(super) async fn change_events_and_audit_records_keep_their_details(store: Arc<dyn Store>) {
    let id = config_id("payments.api");
    store
        .configs()
        .append(version_write(&id, json!({"a": 1}), 0))
        .await
        .unwrap();
    let mut write = version_write(&id, json!({"a": 2}), 1);
    write.audit.environments = vec!["production".to_owned()];
    write.audit.details = ChangeDetails {
        previous_version: Some(1),
        changes: Some(
            serde_json::from_str(r#"[{"op": "replace", "path": "/config/a", "value": 2}]"#)
                .unwrap(),
        ),
        changes_elided: false,
        affected_instances: Some(AffectedInstances {
            count: 1,
            instances: vec!["payments/i-1".to_owned()],
        }),
    };
    let details = write.audit.details.clone();
    let committed = store.configs().append(write).await.unwrap();
    assert_eq!(committed.event.details, details);
    let logged = store
        .changes_since(committed.event.revision - 1, 10)
        .await
        .unwrap();
    assert_eq!(logged[0].details, details);
    assert_eq!(logged[0].environments, vec!["production".to_owned()]);
    let audit = store.audit(all_audit()).await.unwrap();
    let record = audit
        .iter()
        .find(|r| r.revision == committed.event.revision)
        .unwrap();
    assert_eq!(record.details, details);
}

fn fan(sink: &str, from: Option<u64>, to: u64, deliveries: Vec<NewDelivery>) -> FanOut<'_> {
    FanOut {
        sink,
        from,
        to,
        deliveries,
    }
}

fn due_query(now: DateTime<Utc>, limit: u32, sending: &[(String, String)]) -> DueQuery<'_> {
    DueQuery {
        now,
        limit,
        sending,
    }
}

fn outcomes(attempts: Vec<Attempt>, health: Vec<WebhookHealth>) -> Outcomes {
    Outcomes { attempts, health }
}

fn page(webhook: &str, before: Option<u64>, limit: u32) -> DeliveryQuery<'_> {
    DeliveryQuery {
        webhook,
        before,
        limit,
    }
}

fn redelivery(webhook: &str, delivery: u64, at: DateTime<Utc>) -> Redelivery<'_> {
    Redelivery {
        webhook,
        delivery,
        at,
    }
}
