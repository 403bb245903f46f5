//! Flag versions: numbering, heads, listing, deletes and optimistic concurrency.

use std::sync::Arc;

use serde_json::json;
use summit_config::core::error::Error;
use summit_config::core::events::kind;
use summit_config::core::flags::FlagDefinition;
use summit_config::core::model::Metadata;
use summit_config::core::ports::{Documents, FlagWrite, Store};

use super::fixtures::*;

pub(super) async fn flag_versions_number_per_flag_and_head_is_latest(store: Arc<dyn Store>) {
    let (checkout, banner) = (flag_key("newCheckout"), flag_key("banner"));
    for expected_live in 0..3 {
        let committed = store
            .flags()
            .append(flag_write(
                &checkout,
                &format!("v{}", expected_live + 1),
                expected_live,
            ))
            .await
            .expect("append newCheckout");
        assert_eq!(committed.version, expected_live + 1);
        assert_eq!(committed.event.version, expected_live + 1);
    }
    let committed = store
        .flags()
        .append(flag_write(&banner, "v1", 0))
        .await
        .expect("append banner");
    assert_eq!(committed.version, 1, "numbering is per flag");

    let head = store
        .flags()
        .head(&checkout)
        .await
        .expect("flag head")
        .expect("newCheckout exists");
    assert_eq!(head.latest.id, checkout);
    assert_eq!(head.latest.version, 3);
    assert_eq!(head.latest.document, flag_definition("v3", "off"));
    assert!(!head.deleted);
    assert_eq!(head.live_version(), 3);

    assert!(
        store
            .flags()
            .head(&flag_key("newcheckout"))
            .await
            .expect("flag head")
            .is_none(),
        "flag keys are case-sensitive"
    );
    assert!(
        store
            .configs()
            .head(&config_id("banner"))
            .await
            .expect("head")
            .is_none(),
        "a flag is not a config"
    );
}

pub(super) async fn append_flag_version_with_stale_expected_live_is_a_version_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let key = flag_key("newCheckout");
    store
        .flags()
        .append(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    store
        .flags()
        .append(flag_write(&key, "v2", 1))
        .await
        .expect("v2");
    let before = observe_flag(store.as_ref(), &key).await;

    for stale in [0, 1, 3] {
        let error = store
            .flags()
            .append(flag_write(&key, "lost", stale))
            .await
            .expect_err("a stale expected_live is refused");
        assert!(
            matches!(error, Error::VersionConflict { expected, actual: 2 } if expected == stale),
            "{error:?}"
        );
    }
    assert_eq!(observe_flag(store.as_ref(), &key).await, before);

    let absent = flag_key("absent");
    let error = store
        .flags()
        .append(flag_write(&absent, "lost", 1))
        .await
        .expect_err("an absent flag has live version 0");
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
    assert!(
        store
            .flags()
            .head(&absent)
            .await
            .expect("flag head")
            .is_none()
    );

    let committed = store
        .flags()
        .append(flag_write(&key, "v3", 2))
        .await
        .expect("v3");
    assert_eq!(
        committed.event.revision, 3,
        "refused writes leave no gap in the revisions"
    );
}

pub(super) async fn flag_version_returns_the_stored_definition(store: Arc<dyn Store>) {
    let key = flag_key("newCheckout");
    store
        .flags()
        .append(flag_write(&key, "v1", 0))
        .await
        .expect("v1");

    let definition: FlagDefinition = serde_json::from_value(json!({
        "type": "string",
        "variants": { "classic": "classic", "fast": "fast" },
        "defaultVariant": "classic",
        "services": ["checkout"],
        "enabled": false,
        "rollout": { "variant": "fast", "percentage": 12.5 },
        "rules": [{
            "id": "beta-testers",
            "conditions": [{ "attribute": "email", "operator": "ends_with", "value": "@example.com" }],
            "variant": "fast",
        }],
        "environments": {
            "production": { "enabled": true, "defaultVariant": "fast" },
        },
    }))
    .expect("valid flag definition");
    let mut written = new_flag_version(&key, definition);
    written.metadata = Metadata {
        actor: "dave".to_owned(),
        message: None,
        ..Default::default()
    };
    written.rollback_of = Some(1);
    store
        .flags()
        .append(FlagWrite {
            version: written.clone(),
            expected_live: 1,
            expected_schema: 0,
            expected_number: None,
            audit: audit_draft("flag.rollback", "dave", "roll back"),
            applies: None,
            announce: Vec::new(),
        })
        .await
        .expect("v2");

    let stored = store
        .flags()
        .version(&key, 2)
        .await
        .expect("flag version")
        .expect("v2 exists");
    assert_eq!(stored.id, key);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.document, written.document);
    assert_eq!(stored.metadata, written.metadata);
    assert_eq!(stored.checksum, written.checksum);
    assert_eq!(stored.created_at, written.created_at);
    assert_eq!(stored.rollback_of, Some(1));

    let first = store
        .flags()
        .version(&key, 1)
        .await
        .expect("flag version")
        .expect("v1 exists");
    assert_eq!(first.document, flag_definition("v1", "off"));
    assert_eq!(first.rollback_of, None);

    for (key, version) in [(&key, 3), (&key, 0), (&flag_key("other"), 1)] {
        assert!(
            store
                .flags()
                .version(key, version)
                .await
                .expect("flag version")
                .is_none()
        );
    }
}

pub(super) async fn flag_versions_are_listed_newest_first_and_page_with_before(
    store: Arc<dyn Store>,
) {
    let (checkout, banner) = (flag_key("newCheckout"), flag_key("banner"));
    for live in 0..5 {
        store
            .flags()
            .append(flag_write(&checkout, &format!("v{}", live + 1), live))
            .await
            .expect("append newCheckout");
    }
    store
        .flags()
        .append(flag_write(&banner, "v1", 0))
        .await
        .expect("append banner");

    let all = store
        .flags()
        .versions(&checkout, None, 100)
        .await
        .expect("flag versions");
    let numbers: Vec<u64> = all.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [5, 4, 3, 2, 1]);
    assert!(all.iter().all(|v| v.id == checkout));
    assert!(
        all.iter()
            .all(|v| v.document == flag_definition(&format!("v{}", v.version), "off"))
    );

    let store = store.as_ref();
    assert_eq!(
        flag_version_numbers(store, &checkout, None, 2).await,
        [5, 4]
    );
    assert_eq!(
        flag_version_numbers(store, &checkout, Some(4), 2).await,
        [3, 2]
    );
    assert_eq!(
        flag_version_numbers(store, &checkout, Some(2), 2).await,
        [1]
    );
    assert!(
        flag_version_numbers(store, &checkout, Some(1), 2)
            .await
            .is_empty()
    );
    assert_eq!(flag_version_numbers(store, &banner, None, 100).await, [1]);
    assert!(
        flag_version_numbers(store, &flag_key("other"), None, 100)
            .await
            .is_empty()
    );
}

pub(super) async fn delete_flag_marks_it_deleted_and_keeps_history(store: Arc<dyn Store>) {
    let key = flag_key("newCheckout");
    store
        .flags()
        .append(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    let v2 = flag_write(&key, "v2", 1);
    let v2_checksum = v2.version.checksum.clone();
    store.flags().append(v2).await.expect("v2");

    let delete = flag_delete_write(&key, 2);
    let at = delete.at;
    let committed = store.flags().delete(delete).await.expect("delete");
    assert_eq!(committed.version, 2);
    assert_eq!(committed.event.kind, kind::FLAG_DELETED);
    assert_eq!(committed.event.config_id, "newCheckout");
    assert_eq!(committed.event.revision, 3);
    assert_eq!(committed.event.version, 2);
    assert_eq!(committed.event.checksum, v2_checksum);
    assert_eq!(committed.event.at, at);

    let head = store
        .flags()
        .head(&key)
        .await
        .expect("flag head")
        .expect("a deleted flag keeps a head");
    assert!(head.deleted);
    assert_eq!(head.live_version(), 0);
    assert_eq!(head.latest.version, 2);
    assert_eq!(head.latest.document, flag_definition("v2", "off"));

    assert_eq!(
        flag_version_numbers(store.as_ref(), &key, None, 100).await,
        [2, 1]
    );
    assert!(
        store
            .flags()
            .version(&key, 1)
            .await
            .expect("flag version")
            .is_some()
    );
    assert_eq!(
        store.changes_since(2, 100).await.expect("changes"),
        [committed.event]
    );
}

pub(super) async fn delete_flag_with_stale_expected_live_is_a_version_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let key = flag_key("newCheckout");
    store
        .flags()
        .append(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    store
        .flags()
        .append(flag_write(&key, "v2", 1))
        .await
        .expect("v2");
    let before = observe_flag(store.as_ref(), &key).await;

    let error = store
        .flags()
        .delete(flag_delete_write(&key, 1))
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
    assert_eq!(observe_flag(store.as_ref(), &key).await, before);
}

pub(super) async fn deleting_an_absent_or_deleted_flag_is_not_found(store: Arc<dyn Store>) {
    let never = flag_key("never");
    for expected_live in [0, 3] {
        let error = store
            .flags()
            .delete(flag_delete_write(&never, expected_live))
            .await
            .expect_err("nothing to delete");
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    }
    assert!(
        store
            .flags()
            .head(&never)
            .await
            .expect("flag head")
            .is_none()
    );
    assert_eq!(store.latest_revision().await.expect("latest revision"), 0);

    let key = flag_key("newCheckout");
    store
        .flags()
        .append(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    store
        .flags()
        .delete(flag_delete_write(&key, 1))
        .await
        .expect("delete");
    let before = observe_flag(store.as_ref(), &key).await;
    let error = store
        .flags()
        .delete(flag_delete_write(&key, 0))
        .await
        .expect_err("already deleted");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(observe_flag(store.as_ref(), &key).await, before);
}

pub(super) async fn recreating_a_deleted_flag_takes_the_next_version(store: Arc<dyn Store>) {
    let key = flag_key("newCheckout");
    store
        .flags()
        .append(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    store
        .flags()
        .append(flag_write(&key, "v2", 1))
        .await
        .expect("v2");
    store
        .flags()
        .delete(flag_delete_write(&key, 2))
        .await
        .expect("delete");

    let error = store
        .flags()
        .append(flag_write(&key, "lost", 2))
        .await
        .expect_err("a deleted flag has live version 0");
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
        .flags()
        .append(flag_write(&key, "v3", 0))
        .await
        .expect("recreate");
    assert_eq!(committed.version, 3);
    assert_eq!(committed.event.kind, kind::FLAG_UPDATED);

    let head = store
        .flags()
        .head(&key)
        .await
        .expect("flag head")
        .expect("newCheckout exists");
    assert!(!head.deleted);
    assert_eq!(head.live_version(), 3);
    assert_eq!(head.latest.document, flag_definition("v3", "off"));
    assert_eq!(
        flag_version_numbers(store.as_ref(), &key, None, 100).await,
        [3, 2, 1]
    );
}

pub(super) async fn flag_heads_are_ordered_by_key_and_include_deleted_flags(store: Arc<dyn Store>) {
    assert!(store.flags().heads().await.expect("flag heads").is_empty());
    // Byte order, as `FlagSet` keeps them: upper case sorts before lower case.
    let (zeta, beta, dotted) = (flag_key("zeta"), flag_key("Beta"), flag_key("alpha.flag"));
    for key in [&zeta, &beta, &dotted] {
        store
            .flags()
            .append(flag_write(key, "v1", 0))
            .await
            .expect("v1");
    }
    store
        .flags()
        .append(flag_write(&dotted, "v2", 1))
        .await
        .expect("alpha.flag v2");
    store
        .flags()
        .delete(flag_delete_write(&dotted, 2))
        .await
        .expect("delete alpha.flag");
    store
        .configs()
        .append(version_write(&config_id("aardvark"), json!({}), 0))
        .await
        .expect("a config");

    let heads = store.flags().heads().await.expect("flag heads");
    assert_eq!(
        flag_states(&heads),
        [
            ("Beta".to_owned(), 1, false),
            ("alpha.flag".to_owned(), 2, true),
            ("zeta".to_owned(), 1, false),
        ]
    );
}
