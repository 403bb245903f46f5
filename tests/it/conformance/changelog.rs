//! The change log: one global revision per committed write, and one audit record each.

use std::sync::Arc;

use serde_json::json;
use summit_config::core::events::kind;
use summit_config::core::model::AuditDraft;
use summit_config::core::ports::{AuditQuery, AuditSubject, Documents, Store};

use super::fixtures::*;

pub(super) async fn committed_writes_take_consecutive_global_revisions(store: Arc<dyn Store>) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    assert_eq!(store.latest_revision().await.expect("latest revision"), 0);
    assert!(
        store
            .changes_since(0, 10)
            .await
            .expect("changes")
            .is_empty()
    );

    let alpha_v1 = version_write(&alpha, json!({ "v": 1 }), 0);
    let beta_v1 = version_write(&beta, json!({ "v": 1 }), 0);
    let alpha_schema = schema_write(&alpha, json!({ "type": "object" }), 0, 1);
    let mut alpha_v2 = version_write(&alpha, json!({ "v": 2 }), 1);
    alpha_v2.expected_schema = 1;
    let beta_delete = delete_write(&beta, 1);

    let expected = [
        (
            kind::CONFIG_UPDATED,
            "alpha",
            1,
            alpha_v1.version.checksum.clone(),
            alpha_v1.version.created_at,
        ),
        (
            kind::CONFIG_UPDATED,
            "beta",
            1,
            beta_v1.version.checksum.clone(),
            beta_v1.version.created_at,
        ),
        (
            kind::SCHEMA_UPDATED,
            "alpha",
            1,
            alpha_schema.checksum.clone(),
            alpha_schema.created_at,
        ),
        (
            kind::CONFIG_UPDATED,
            "alpha",
            2,
            alpha_v2.version.checksum.clone(),
            alpha_v2.version.created_at,
        ),
        (
            kind::CONFIG_DELETED,
            "beta",
            1,
            beta_v1.version.checksum.clone(),
            beta_delete.at,
        ),
    ];
    let committed = vec![
        store
            .configs()
            .append(alpha_v1)
            .await
            .expect("alpha v1")
            .event,
        store
            .configs()
            .append(beta_v1)
            .await
            .expect("beta v1")
            .event,
        store
            .put_schema(alpha_schema)
            .await
            .expect("alpha schema")
            .event,
        store
            .configs()
            .append(alpha_v2)
            .await
            .expect("alpha v2")
            .event,
        store
            .configs()
            .delete(beta_delete)
            .await
            .expect("beta delete")
            .event,
    ];

    for (index, (event, (kind, config, version, checksum, at))) in
        committed.iter().zip(&expected).enumerate()
    {
        assert_eq!(event.revision, index as u64 + 1);
        assert_eq!(event.kind, *kind);
        assert_eq!(event.config_id, *config);
        assert_eq!(event.version, *version);
        assert_eq!(&event.checksum, checksum);
        assert_eq!(event.at, *at);
    }
    assert_eq!(store.latest_revision().await.expect("latest revision"), 5);
    assert_eq!(
        store.changes_since(0, 100).await.expect("changes"),
        committed
    );
    assert_eq!(
        store.changes_since(2, 2).await.expect("changes"),
        committed[2..4]
    );
    assert_eq!(
        store.changes_since(3, 100).await.expect("changes"),
        committed[3..]
    );
    assert!(
        store
            .changes_since(5, 100)
            .await
            .expect("changes")
            .is_empty()
    );
}

pub(super) async fn every_committed_write_has_one_audit_record_listed_newest_first(
    store: Arc<dyn Store>,
) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    let mut alpha_v1 = version_write(&alpha, json!({ "v": 1 }), 0);
    alpha_v1.audit = AuditDraft {
        actor: "alice".to_owned(),
        action: "config.put",
        environments: vec!["*".to_owned()],
        message: Some("first".to_owned()),
        on_behalf_of: None,
        details: Default::default(),
    };
    let mut beta_v1 = version_write(&beta, json!({ "v": 1 }), 0);
    beta_v1.audit = AuditDraft {
        actor: "bob".to_owned(),
        action: "config.override",
        environments: vec!["production".to_owned(), "staging".to_owned()],
        message: None,
        on_behalf_of: Some("release-bot".to_owned()),
        details: Default::default(),
    };
    let alpha_schema = schema_write(&alpha, json!({ "type": "object" }), 0, 1);
    let mut alpha_v2 = version_write(&alpha, json!({ "v": 2 }), 1);
    alpha_v2.expected_schema = 1;
    let alpha_delete = delete_write(&alpha, 2);
    let drafts = [
        alpha_v1.audit.clone(),
        beta_v1.audit.clone(),
        alpha_schema.audit.clone(),
        alpha_v2.audit.clone(),
        alpha_delete.audit.clone(),
    ];
    let events = [
        store
            .configs()
            .append(alpha_v1)
            .await
            .expect("alpha v1")
            .event,
        store
            .configs()
            .append(beta_v1)
            .await
            .expect("beta v1")
            .event,
        store
            .put_schema(alpha_schema)
            .await
            .expect("alpha schema")
            .event,
        store
            .configs()
            .append(alpha_v2)
            .await
            .expect("alpha v2")
            .event,
        store
            .configs()
            .delete(alpha_delete)
            .await
            .expect("alpha delete")
            .event,
    ];

    let records = store.audit(all_audit()).await.expect("audit");
    assert_eq!(
        records.len(),
        events.len(),
        "one record per committed write"
    );
    assert!(
        records.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    for (record, (event, draft)) in records.iter().rev().zip(events.iter().zip(&drafts)) {
        assert_eq!(record.revision, event.revision);
        assert_eq!(record.at, event.at);
        assert_eq!(record.actor, draft.actor);
        assert_eq!(record.action, draft.action);
        assert_eq!(record.config_id, event.config_id);
        assert_eq!(record.version, Some(event.version));
        assert_eq!(record.environments, draft.environments);
        assert_eq!(record.message, draft.message);
        assert_eq!(record.on_behalf_of, draft.on_behalf_of);
    }

    let alpha_only = AuditQuery {
        subject: Some(AuditSubject::Config(alpha.clone())),
        ..all_audit()
    };
    let alpha_records = store.audit(alpha_only.clone()).await.expect("audit alpha");
    let alpha_revisions: Vec<u64> = alpha_records.iter().map(|r| r.revision).collect();
    assert_eq!(alpha_revisions, [5, 4, 3, 1]);

    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .audit(AuditQuery {
                before,
                limit: 2,
                ..alpha_only.clone()
            })
            .await
            .expect("audit page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, alpha_records);

    let before_newest = AuditQuery {
        before: Some(records[0].id),
        limit: 1,
        ..all_audit()
    };
    assert_eq!(
        store.audit(before_newest).await.expect("audit"),
        records[1..2]
    );
}

pub(super) async fn flag_writes_take_the_next_global_revision_between_config_writes(
    store: Arc<dyn Store>,
) {
    let (config, flag) = (config_id("checkout"), flag_key("newCheckout"));
    let config_v1 = version_write(&config, json!({ "v": 1 }), 0);
    let flag_v1 = flag_write(&flag, "v1", 0);
    let flag_v2 = flag_write(&flag, "v2", 1);
    let config_v2 = version_write(&config, json!({ "v": 2 }), 1);
    let flag_delete = flag_delete_write(&flag, 2);

    let expected = [
        (
            kind::CONFIG_UPDATED,
            "checkout",
            1,
            config_v1.version.checksum.clone(),
            config_v1.version.created_at,
            config_v1.audit.clone(),
        ),
        (
            kind::FLAG_UPDATED,
            "newCheckout",
            1,
            flag_v1.version.checksum.clone(),
            flag_v1.version.created_at,
            flag_v1.audit.clone(),
        ),
        (
            kind::FLAG_UPDATED,
            "newCheckout",
            2,
            flag_v2.version.checksum.clone(),
            flag_v2.version.created_at,
            flag_v2.audit.clone(),
        ),
        (
            kind::CONFIG_UPDATED,
            "checkout",
            2,
            config_v2.version.checksum.clone(),
            config_v2.version.created_at,
            config_v2.audit.clone(),
        ),
        (
            kind::FLAG_DELETED,
            "newCheckout",
            2,
            flag_v2.version.checksum.clone(),
            flag_delete.at,
            flag_delete.audit.clone(),
        ),
    ];
    let committed = vec![
        store
            .configs()
            .append(config_v1)
            .await
            .expect("config v1")
            .event,
        store.flags().append(flag_v1).await.expect("flag v1").event,
        store.flags().append(flag_v2).await.expect("flag v2").event,
        store
            .configs()
            .append(config_v2)
            .await
            .expect("config v2")
            .event,
        store
            .flags()
            .delete(flag_delete)
            .await
            .expect("flag delete")
            .event,
    ];

    for (index, (event, (kind, subject, version, checksum, at, audit))) in
        committed.iter().zip(&expected).enumerate()
    {
        assert_eq!(event.revision, index as u64 + 1);
        assert_eq!(event.kind, *kind);
        assert_eq!(event.config_id, *subject);
        assert_eq!(event.version, *version);
        assert_eq!(&event.checksum, checksum);
        assert_eq!(event.at, *at);
        assert_eq!(event.actor, audit.actor);
        assert_eq!(event.message, audit.message);
    }
    assert_eq!(store.latest_revision().await.expect("latest revision"), 5);
    assert_eq!(
        store.changes_since(0, 100).await.expect("changes"),
        committed
    );
    assert_eq!(
        store.changes_since(1, 2).await.expect("changes"),
        committed[1..3]
    );
}

pub(super) async fn audit_of_a_config_and_a_flag_sharing_an_id_is_kept_apart(
    store: Arc<dyn Store>,
) {
    let (config, flag) = (config_id("checkout"), flag_key("checkout"));
    store
        .configs()
        .append(version_write(&config, json!({ "v": 1 }), 0))
        .await
        .expect("config v1");
    store
        .flags()
        .append(flag_write(&flag, "v1", 0))
        .await
        .expect("flag v1");
    store
        .flags()
        .delete(flag_delete_write(&flag, 1))
        .await
        .expect("flag delete");
    store
        .configs()
        .append(version_write(&config, json!({ "v": 2 }), 1))
        .await
        .expect("config v2");
    store
        .flags()
        .append(flag_write(&flag_key("other"), "v1", 0))
        .await
        .expect("another flag");

    let records_of = |subject: Option<AuditSubject>| {
        let store = store.clone();
        async move {
            store
                .audit(AuditQuery {
                    subject,
                    ..all_audit()
                })
                .await
                .expect("audit")
                .into_iter()
                .map(|r| (r.revision, r.action, r.config_id))
                .collect::<Vec<_>>()
        }
    };
    let record = |revision: u64, action: &str, subject: &str| {
        (revision, action.to_owned(), subject.to_owned())
    };

    assert_eq!(
        records_of(Some(AuditSubject::Config(config.clone()))).await,
        [
            record(4, "config.put", "checkout"),
            record(1, "config.put", "checkout"),
        ]
    );
    assert_eq!(
        records_of(Some(AuditSubject::Flag(flag.clone()))).await,
        [
            record(3, "flag.delete", "checkout"),
            record(2, "flag.put", "checkout"),
        ]
    );
    let everything = records_of(None).await;
    let revisions: Vec<u64> = everything.iter().map(|r| r.0).collect();
    assert_eq!(revisions, [5, 4, 3, 2, 1]);
}
