//! Config versions: numbering, heads, listing, deletes and optimistic concurrency.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use summit_config::core::error::Error;
use summit_config::core::events::kind;
use summit_config::core::model::Metadata;
use summit_config::core::ports::{Documents, Store, VersionWrite};

use super::fixtures::*;

pub(super) async fn append_version_numbers_versions_per_config_and_head_is_latest(
    store: Arc<dyn Store>,
) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    for (expected_live, limit) in [(0, 1), (1, 2), (2, 3)] {
        let committed = store
            .configs()
            .append(version_write(
                &alpha,
                json!({ "limit": limit }),
                expected_live,
            ))
            .await
            .expect("append alpha");
        assert_eq!(committed.version, expected_live + 1);
        assert_eq!(committed.event.version, expected_live + 1);
    }
    let committed = store
        .configs()
        .append(version_write(&beta, json!({ "enabled": true }), 0))
        .await
        .expect("append beta");
    assert_eq!(committed.version, 1, "numbering is per config");

    let head = store
        .configs()
        .head(&alpha)
        .await
        .expect("head")
        .expect("alpha exists");
    assert_eq!(head.latest.version, 3);
    assert_eq!(head.latest.document.config, json!({ "limit": 3 }));
    assert!(!head.deleted);
    assert_eq!(head.live_version(), 3);

    let head = store
        .configs()
        .head(&beta)
        .await
        .expect("head")
        .expect("beta exists");
    assert_eq!((head.latest.version, head.deleted), (1, false));
    assert!(
        store
            .configs()
            .head(&config_id("gamma"))
            .await
            .expect("head")
            .is_none()
    );
}

pub(super) async fn append_version_with_stale_expected_live_is_a_version_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 2 }), 1))
        .await
        .expect("v2");
    let before = observe(store.as_ref(), &id).await;

    for stale in [0, 1, 3] {
        let error = store
            .configs()
            .append(version_write(&id, json!({ "v": "lost" }), stale))
            .await
            .expect_err("a stale expected_live is refused");
        assert!(
            matches!(error, Error::VersionConflict { expected, actual: 2 } if expected == stale),
            "{error:?}"
        );
    }
    assert_eq!(observe(store.as_ref(), &id).await, before);

    let absent = config_id("beta");
    let error = store
        .configs()
        .append(version_write(&absent, json!({}), 1))
        .await
        .expect_err("an absent config has live version 0");
    assert!(
        matches!(
            error,
            Error::VersionConflict {
                expected: 1,
                actual: 0
            }
        ),
        "{error:?}"
    );
    assert!(store.configs().head(&absent).await.expect("head").is_none());
    assert_eq!(store.latest_revision().await.expect("latest revision"), 2);
}

pub(super) async fn versions_are_listed_newest_first_and_page_with_before(store: Arc<dyn Store>) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    for live in 0..5 {
        store
            .configs()
            .append(version_write(&alpha, json!({ "v": live + 1 }), live))
            .await
            .expect("append alpha");
    }
    store
        .configs()
        .append(version_write(&beta, json!({}), 0))
        .await
        .expect("append beta");

    let all = store
        .configs()
        .versions(&alpha, None, 100)
        .await
        .expect("versions");
    let numbers: Vec<u64> = all.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [5, 4, 3, 2, 1]);
    assert!(all.iter().all(|v| v.id == alpha));
    assert!(
        all.iter()
            .all(|v| v.document.config == json!({ "v": v.version }))
    );

    assert_eq!(
        version_numbers(store.as_ref(), &alpha, None, 2).await,
        [5, 4]
    );
    assert_eq!(
        version_numbers(store.as_ref(), &alpha, Some(4), 2).await,
        [3, 2]
    );
    assert_eq!(
        version_numbers(store.as_ref(), &alpha, Some(2), 2).await,
        [1]
    );
    assert!(
        version_numbers(store.as_ref(), &alpha, Some(1), 2)
            .await
            .is_empty()
    );
    assert_eq!(version_numbers(store.as_ref(), &beta, None, 100).await, [1]);
    assert!(
        version_numbers(store.as_ref(), &config_id("gamma"), None, 100)
            .await
            .is_empty()
    );
}

pub(super) async fn version_returns_the_stored_version(store: Arc<dyn Store>) {
    let id = config_id("alpha");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");

    let mut written = new_version(
        &id,
        json!({ "limit": 10, "nested": { "flags": [true, false] } }),
    );
    written.document.overrides =
        BTreeMap::from([("production".to_owned(), json!({ "limit": 100 }))]);
    written.metadata = Metadata {
        actor: "dave".to_owned(),
        message: None,
        ..Default::default()
    };
    written.rollback_of = Some(1);
    store
        .configs()
        .append(VersionWrite {
            version: written.clone(),
            expected_live: 1,
            expected_schema: 0,
            expected_number: None,
            audit: audit_draft("config.rollback", "dave", "roll back"),
            applies: None,
            announce: Vec::new(),
        })
        .await
        .expect("v2");

    let stored = store
        .configs()
        .version(&id, 2)
        .await
        .expect("version")
        .expect("v2 exists");
    assert_eq!(stored.id, id);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.document, written.document);
    assert_eq!(stored.metadata, written.metadata);
    assert_eq!(stored.checksum, written.checksum);
    assert_eq!(stored.created_at, written.created_at);
    assert_eq!(stored.rollback_of, Some(1));

    let first = store
        .configs()
        .version(&id, 1)
        .await
        .expect("version")
        .expect("v1 exists");
    assert_eq!(first.document.config, json!({ "v": 1 }));
    assert_eq!(first.metadata.message.as_deref(), Some("tune"));
    assert_eq!(first.rollback_of, None);

    assert!(
        store
            .configs()
            .version(&id, 3)
            .await
            .expect("version")
            .is_none()
    );
    assert!(
        store
            .configs()
            .version(&id, 0)
            .await
            .expect("version")
            .is_none()
    );
    assert!(
        store
            .configs()
            .version(&config_id("beta"), 1)
            .await
            .expect("version")
            .is_none()
    );
}

pub(super) async fn a_write_that_would_not_get_its_expected_number_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    for (n, expected_live) in [(1, 0), (2, 1)] {
        store
            .configs()
            .append(version_write(&id, json!({ "v": n }), expected_live))
            .await
            .unwrap();
    }
    store.configs().delete(delete_write(&id, 2)).await.unwrap();

    // Deleted, so its live version is 0 whatever its newest number: only the number tells a
    // writer that read version 1 as the newest that versions were written since.
    let mut stale = version_write(&id, json!({ "v": 3 }), 0);
    stale.expected_number = Some(2);
    let refused = store.configs().append(stale).await;
    assert!(
        matches!(refused, Err(Error::ConcurrentModification { .. })),
        "{refused:?}"
    );
    let head = store.configs().head(&id).await.unwrap().unwrap();
    assert!(head.deleted);
    assert_eq!(head.latest.version, 2);

    let mut exact = version_write(&id, json!({ "v": 3 }), 0);
    exact.expected_number = Some(3);
    assert_eq!(store.configs().append(exact).await.unwrap().version, 3);
}

pub(super) async fn delete_marks_config_deleted_and_keeps_history(store: Arc<dyn Store>) {
    let id = config_id("alpha");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    let v2 = version_write(&id, json!({ "v": 2 }), 1);
    let v2_checksum = v2.version.checksum.clone();
    store.configs().append(v2).await.expect("v2");

    let delete = delete_write(&id, 2);
    let at = delete.at;
    let committed = store.configs().delete(delete).await.expect("delete");
    assert_eq!(committed.version, 2);
    assert_eq!(committed.event.kind, kind::CONFIG_DELETED);
    assert_eq!(committed.event.revision, 3);
    assert_eq!(committed.event.version, 2);
    assert_eq!(committed.event.checksum, v2_checksum);
    assert_eq!(committed.event.at, at);

    let head = store
        .configs()
        .head(&id)
        .await
        .expect("head")
        .expect("deleted config keeps a head");
    assert!(head.deleted);
    assert_eq!(head.live_version(), 0);
    assert_eq!(head.latest.version, 2);
    assert_eq!(head.latest.document.config, json!({ "v": 2 }));

    assert_eq!(
        version_numbers(store.as_ref(), &id, None, 100).await,
        [2, 1]
    );
    assert!(
        store
            .configs()
            .version(&id, 1)
            .await
            .expect("version")
            .is_some()
    );
    assert_eq!(
        store.changes_since(2, 100).await.expect("changes"),
        [committed.event]
    );
}

pub(super) async fn delete_with_stale_expected_live_is_a_version_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 2 }), 1))
        .await
        .expect("v2");
    let before = observe(store.as_ref(), &id).await;

    let error = store
        .configs()
        .delete(delete_write(&id, 1))
        .await
        .expect_err("a stale expected_live is refused");
    assert!(
        matches!(
            error,
            Error::VersionConflict {
                expected: 1,
                actual: 2
            }
        ),
        "{error:?}"
    );
    assert_eq!(observe(store.as_ref(), &id).await, before);
}

pub(super) async fn deleting_an_absent_config_is_not_found(store: Arc<dyn Store>) {
    let never = config_id("never");
    let error = store
        .configs()
        .delete(delete_write(&never, 0))
        .await
        .expect_err("nothing to delete");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(store.configs().head(&never).await.expect("head").is_none());
    assert_eq!(store.latest_revision().await.expect("latest revision"), 0);

    let id = config_id("alpha");
    store
        .configs()
        .append(version_write(&id, json!({}), 0))
        .await
        .expect("v1");
    store
        .configs()
        .delete(delete_write(&id, 1))
        .await
        .expect("delete");
    let before = observe(store.as_ref(), &id).await;
    let error = store
        .configs()
        .delete(delete_write(&id, 0))
        .await
        .expect_err("already deleted");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(observe(store.as_ref(), &id).await, before);
}

pub(super) async fn append_after_delete_continues_numbering(store: Arc<dyn Store>) {
    let id = config_id("alpha");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 2 }), 1))
        .await
        .expect("v2");
    store
        .configs()
        .delete(delete_write(&id, 2))
        .await
        .expect("delete");

    let error = store
        .configs()
        .append(version_write(&id, json!({ "v": "lost" }), 2))
        .await
        .expect_err("a deleted config has live version 0");
    assert!(
        matches!(
            error,
            Error::VersionConflict {
                expected: 2,
                actual: 0
            }
        ),
        "{error:?}"
    );

    let committed = store
        .configs()
        .append(version_write(&id, json!({ "v": 3 }), 0))
        .await
        .expect("recreate");
    assert_eq!(committed.version, 3);
    assert_eq!(committed.event.kind, kind::CONFIG_UPDATED);

    let head = store
        .configs()
        .head(&id)
        .await
        .expect("head")
        .expect("alpha exists");
    assert!(!head.deleted);
    assert_eq!(head.live_version(), 3);
    assert_eq!(head.latest.document.config, json!({ "v": 3 }));
    assert_eq!(
        version_numbers(store.as_ref(), &id, None, 100).await,
        [3, 2, 1]
    );
}

pub(super) async fn heads_are_ordered_by_config_id_and_include_deleted_configs(
    store: Arc<dyn Store>,
) {
    assert!(store.configs().heads().await.expect("heads").is_empty());
    let (zeta, alpha, middle) = (
        config_id("zeta"),
        config_id("alpha"),
        config_id("mid.config"),
    );
    store
        .configs()
        .append(version_write(&zeta, json!({}), 0))
        .await
        .expect("zeta v1");
    store
        .configs()
        .append(version_write(&alpha, json!({}), 0))
        .await
        .expect("alpha v1");
    store
        .configs()
        .append(version_write(&middle, json!({}), 0))
        .await
        .expect("middle v1");
    store
        .configs()
        .append(version_write(&middle, json!({ "v": 2 }), 1))
        .await
        .expect("middle v2");
    store
        .configs()
        .delete(delete_write(&middle, 2))
        .await
        .expect("delete middle");

    let heads: Vec<(String, u64, bool)> = store
        .configs()
        .heads()
        .await
        .expect("heads")
        .iter()
        .map(|h| (h.latest.id.to_string(), h.latest.version, h.deleted))
        .collect();
    assert_eq!(
        heads,
        [
            ("alpha".to_owned(), 1, false),
            ("mid.config".to_owned(), 2, true),
            ("zeta".to_owned(), 1, false),
        ]
    );
}

pub(super) async fn deleting_an_absent_config_is_not_found_whatever_the_expected_version(
    store: Arc<dyn Store>,
) {
    let never = config_id("never");
    let error = store
        .configs()
        .delete(delete_write(&never, 3))
        .await
        .expect_err("nothing to delete");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(store.latest_revision().await.expect("latest revision"), 0);
}
