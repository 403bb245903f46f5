//! Schemas: their own version numbers, and the expectations a config write holds on them.

use std::sync::Arc;

use serde_json::json;
use summit_config::core::error::Error;
use summit_config::core::events::kind;
use summit_config::core::ids::ConfigId;
use summit_config::core::ports::{Documents, Store};

use super::fixtures::*;

pub(super) async fn append_version_with_stale_expected_schema_is_a_concurrent_modification_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    store
        .put_schema(schema_write(&id, json!({ "type": "object" }), 0, 1))
        .await
        .expect("schema");
    let before = observe(store.as_ref(), &id).await;

    for stale in [0, 2] {
        let mut write = version_write(&id, json!({ "v": "lost" }), 1);
        write.expected_schema = stale;
        let error = store
            .configs()
            .append(write)
            .await
            .expect_err("stale schema is refused");
        assert!(
            matches!(error, Error::ConcurrentModification { .. }),
            "{error:?}"
        );
    }
    assert_eq!(observe(store.as_ref(), &id).await, before);

    let mut write = version_write(&id, json!({ "v": 2 }), 1);
    write.expected_schema = 1;
    let committed = store
        .configs()
        .append(write)
        .await
        .expect("current schema is accepted");
    assert_eq!(committed.version, 2);
}

pub(super) async fn put_schema_numbers_schema_versions_and_schema_returns_latest(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    assert!(store.schema(&id).await.expect("schema").is_none());
    store
        .configs()
        .append(version_write(&id, json!({ "limit": 1 }), 0))
        .await
        .expect("v1");

    let first = schema_write(&id, json!({ "type": "object" }), 0, 1);
    let committed = store.put_schema(first).await.expect("schema v1");
    assert_eq!(committed.version, 1);
    assert_eq!(committed.event.kind, kind::SCHEMA_UPDATED);
    assert_eq!(committed.event.version, 1);

    let second = schema_write(
        &id,
        json!({ "type": "object", "required": ["limit"] }),
        1,
        1,
    );
    let committed = store.put_schema(second.clone()).await.expect("schema v2");
    assert_eq!(committed.version, 2);

    let latest = store
        .schema(&id)
        .await
        .expect("schema")
        .expect("schema exists");
    assert_eq!(latest.config_id, id);
    assert_eq!(latest.version, 2);
    assert_eq!(latest.schema, second.schema);
    assert_eq!(latest.checksum, second.checksum);
    assert_eq!(latest.metadata, second.metadata);
    assert_eq!(latest.created_at, second.created_at);

    let head = store
        .configs()
        .head(&id)
        .await
        .expect("head")
        .expect("alpha exists");
    assert_eq!(head.latest.version, 1, "a schema is not a config version");
    assert!(
        store
            .schema(&config_id("beta"))
            .await
            .expect("schema")
            .is_none()
    );
}

pub(super) async fn put_schema_with_stale_expected_versions_is_a_concurrent_modification(
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
    store
        .put_schema(schema_write(&id, json!({ "type": "object" }), 0, 2))
        .await
        .expect("schema v1");
    let before = observe(store.as_ref(), &id).await;

    for (expected_schema, expected_live) in [(0, 2), (2, 2), (1, 1), (1, 0), (1, 3)] {
        let error = store
            .put_schema(schema_write(
                &id,
                json!({ "type": "array" }),
                expected_schema,
                expected_live,
            ))
            .await
            .expect_err("stale expectations are refused");
        assert!(
            matches!(error, Error::ConcurrentModification { .. }),
            "schema {expected_schema}, live {expected_live}: {error:?}"
        );
    }
    assert_eq!(observe(store.as_ref(), &id).await, before);

    store
        .configs()
        .delete(delete_write(&id, 2))
        .await
        .expect("delete");
    let error = store
        .put_schema(schema_write(&id, json!({ "type": "array" }), 1, 2))
        .await
        .expect_err("a deleted config has live version 0");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );
    let committed = store
        .put_schema(schema_write(&id, json!({ "type": "array" }), 1, 0))
        .await
        .expect("schema of a deleted config");
    assert_eq!(committed.version, 2);
}

pub(super) async fn schema_registered_before_the_config_exists_is_not_a_head(
    store: Arc<dyn Store>,
) {
    let (early, other) = (config_id("early"), config_id("other"));
    store
        .configs()
        .append(version_write(&other, json!({}), 0))
        .await
        .expect("other v1");

    let committed = store
        .put_schema(schema_write(&early, json!({ "type": "object" }), 0, 0))
        .await
        .expect("schema before config");
    assert_eq!(committed.version, 1);
    assert_eq!(committed.event.revision, 2);

    let schema = store
        .schema(&early)
        .await
        .expect("schema")
        .expect("schema exists");
    assert_eq!(schema.version, 1);
    assert!(store.configs().head(&early).await.expect("head").is_none());
    let ids: Vec<ConfigId> = store
        .configs()
        .heads()
        .await
        .expect("heads")
        .into_iter()
        .map(|h| h.latest.id.clone())
        .collect();
    assert_eq!(ids, [other]);
    assert!(
        version_numbers(store.as_ref(), &early, None, 100)
            .await
            .is_empty()
    );

    let error = store
        .configs()
        .append(version_write(&early, json!({}), 0))
        .await
        .expect_err("the config must be validated against the registered schema");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );
    let mut write = version_write(&early, json!({ "v": 1 }), 0);
    write.expected_schema = 1;
    let committed = store.configs().append(write).await.expect("first version");
    assert_eq!(committed.version, 1);
    let head = store
        .configs()
        .head(&early)
        .await
        .expect("head")
        .expect("early exists");
    assert_eq!((head.latest.version, head.deleted), (1, false));
}
