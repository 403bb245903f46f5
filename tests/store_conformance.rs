//! The `Store` conformance suite: every backend and wrapper must show the same behaviour through
//! the trait. Each behaviour is a generic `async fn` taking `Arc<dyn Store>`;
//! `store_conformance_suite!` instantiates all of them for one backend, plus any listed after
//! `also:` (behaviours only the read cache has).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use summit_config::core::access::model::{ApiToken, Denial, Role, Scopes};
use summit_config::core::approvals::model::{
    Approval, ChangeOperation, ChangeRequest, ChangeRequestStatus,
};
use summit_config::core::checksum::checksum;
use summit_config::core::error::Error;
use summit_config::core::events::{ChangeEvent, kind};
use summit_config::core::flags::{FlagDefinition, FlagHead, NewFlagVersion};
use summit_config::core::ids::{ConfigId, FlagKey};
use summit_config::core::model::{
    AppliedState, AuditDraft, AuditRecord, ConfigDocument, Metadata, NewVersion,
};
use summit_config::core::ports::{
    AccessStore, AppliedRequest, AuditQuery, AuditSubject, ChangeRequestQuery, ChangeRequestWrite,
    DeleteWrite, FlagDeleteWrite, FlagStore, FlagWrite, ReadCache, SchemaWrite, Store, TokenRevoke,
    TokenWrite, VersionWrite,
};
use summit_config::core::service::now;
use summit_config::store::{CachedStore, MemoryStore, PostgresStore, SqliteStore};
use tempfile::TempDir;

/// A store under test and the directory its database lives in, kept alive for the whole test.
type OpenedStore = (Arc<dyn Store>, Option<TempDir>);

macro_rules! store_conformance_suite {
    ($backend:ident, $open:expr $(; also: $($extra:ident),+ $(,)?)?) => {
        store_conformance_suite!(@tests $backend, $open;
            append_version_numbers_versions_per_config_and_head_is_latest,
            append_version_with_stale_expected_live_is_a_version_conflict_and_writes_nothing,
            append_version_with_stale_expected_schema_is_a_concurrent_modification_and_writes_nothing,
            committed_writes_take_consecutive_global_revisions,
            every_committed_write_has_one_audit_record_listed_newest_first,
            versions_are_listed_newest_first_and_page_with_before,
            version_returns_the_stored_version,
            delete_marks_config_deleted_and_keeps_history,
            delete_with_stale_expected_live_is_a_version_conflict_and_writes_nothing,
            deleting_an_absent_config_is_not_found,
            append_after_delete_continues_numbering,
            put_schema_numbers_schema_versions_and_schema_returns_latest,
            put_schema_with_stale_expected_versions_is_a_concurrent_modification,
            schema_registered_before_the_config_exists_is_not_a_head,
            record_applied_upserts_per_config_environment_and_instance,
            heads_are_ordered_by_config_id_and_include_deleted_configs,
            deleting_an_absent_config_is_not_found_whatever_the_expected_version,
            applied_state_for_a_config_that_never_existed_is_not_found,
            sweeping_applied_state_deletes_only_reports_older_than_the_cutoff,
            flag_versions_number_per_flag_and_head_is_latest,
            append_flag_version_with_stale_expected_live_is_a_version_conflict_and_writes_nothing,
            flag_version_returns_the_stored_definition,
            flag_versions_are_listed_newest_first_and_page_with_before,
            delete_flag_marks_it_deleted_and_keeps_history,
            delete_flag_with_stale_expected_live_is_a_version_conflict_and_writes_nothing,
            deleting_an_absent_or_deleted_flag_is_not_found,
            recreating_a_deleted_flag_takes_the_next_version,
            flag_heads_are_ordered_by_key_and_include_deleted_flags,
            flag_writes_take_the_next_global_revision_between_config_writes,
            audit_of_a_config_and_a_flag_sharing_an_id_is_kept_apart,
            a_read_cache_loads_flags_and_follows_flag_changes_committed_elsewhere,
            tokens_are_listed_oldest_first_and_revoked_once,
            a_token_whose_id_or_hash_is_taken_is_a_conflict_and_writes_nothing,
            revoking_an_absent_token_is_not_found_and_writes_nothing,
            token_records_stay_out_of_a_config_audit_that_shares_the_id,
            a_read_cache_follows_token_changes_committed_elsewhere,
            denials_are_appended_without_a_revision_and_listed_newest_first,
            change_requests_are_inserted_once_and_updated_by_compare_and_set,
            change_requests_are_listed_newest_first_and_filtered,
            applying_an_approved_request_writes_the_version_and_marks_it_applied,
            applying_a_request_that_is_not_approved_is_a_concurrent_modification_and_writes_nothing,
            deleting_through_an_approved_request_marks_it_applied_and_only_then,
            $($($extra,)+)?
        );
    };
    (@tests $backend:ident, $open:expr; $($behaviour:ident),* $(,)?) => {
        mod $backend {
            use super::*;

            $(
                #[tokio::test]
                async fn $behaviour() {
                    // `None`: the backend is not available here (the harness said why).
                    let Some((store, _dir)): Option<OpenedStore> = $open.await else {
                        return;
                    };
                    super::$behaviour(store).await;
                }
            )*
        }
    };
}

/// Behaviours only the read cache has (what the services read from it without I/O).
macro_rules! read_cache_suite {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn cached_flags_reflect_writes_and_deletes() {
                let Some((cache, _dir)) = $open.await else {
                    return;
                };
                super::cached_flags_reflect_writes_and_deletes(cache).await;
            }

            #[tokio::test]
            async fn cached_tokens_reflect_creates_and_revokes() {
                let Some((cache, _dir)) = $open.await else {
                    return;
                };
                super::cached_tokens_reflect_creates_and_revokes(cache).await;
            }
        }
    };
}

store_conformance_suite!(memory, memory_store());
store_conformance_suite!(sqlite, sqlite_store());
store_conformance_suite!(cached_sqlite, cached_sqlite_store());
read_cache_suite!(read_cache_sqlite, read_cache_over(sqlite_store()));
store_conformance_suite!(postgres, postgres_store());
store_conformance_suite!(cached_postgres, cached_postgres_store());
read_cache_suite!(read_cache_postgres, read_cache_over(postgres_store()));

async fn read_cache_over(
    opened: impl std::future::Future<Output = Option<OpenedStore>>,
) -> Option<(Arc<CachedStore>, Option<TempDir>)> {
    let (inner, dir) = opened.await?;
    let cached = CachedStore::load(inner).await.expect("cache loads");
    Some((Arc::new(cached), dir))
}

async fn memory_store() -> Option<OpenedStore> {
    Some((Arc::new(MemoryStore::new()), None))
}

async fn sqlite_store() -> Option<OpenedStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqliteStore::open(&url).await.expect("sqlite store opens");
    Some((store.shared(), Some(dir)))
}

async fn cached_sqlite_store() -> Option<OpenedStore> {
    let (inner, dir) = sqlite_store().await?;
    let cached = CachedStore::load(inner).await.expect("cache loads");
    Some((Arc::new(cached), dir))
}

async fn postgres_store() -> Option<OpenedStore> {
    let url = common::postgres::test_database_url().await?;
    let store = PostgresStore::open(&url)
        .await
        .expect("postgres store opens");
    Some((Arc::new(store), None))
}

async fn cached_postgres_store() -> Option<OpenedStore> {
    let (inner, dir) = postgres_store().await?;
    let cached = CachedStore::load(inner).await.expect("cache loads");
    Some((Arc::new(cached), dir))
}

// ---- fixtures ------------------------------------------------------------------------------

fn config_id(id: &str) -> ConfigId {
    ConfigId::parse(id).expect("valid config id")
}

fn document(config: Value) -> ConfigDocument {
    ConfigDocument {
        config,
        overrides: BTreeMap::new(),
        canary: None,
        ab_test: None,
    }
}

fn audit_draft(action: &'static str, actor: &str, message: &str) -> AuditDraft {
    AuditDraft {
        actor: actor.to_owned(),
        action,
        environments: vec!["*".to_owned()],
        message: Some(message.to_owned()),
        on_behalf_of: None,
    }
}

fn new_version(id: &ConfigId, config: Value) -> NewVersion {
    NewVersion {
        config_id: id.clone(),
        checksum: checksum(&config),
        document: document(config),
        metadata: Metadata {
            actor: "alice".to_owned(),
            message: Some("tune".to_owned()),
            ..Default::default()
        },
        created_at: now(),
        rollback_of: None,
    }
}

fn version_write(id: &ConfigId, config: Value, expected_live: u64) -> VersionWrite {
    VersionWrite {
        version: new_version(id, config),
        expected_live,
        expected_schema: 0,
        audit: audit_draft("config.put", "alice", "tune"),
        applies: None,
    }
}

fn delete_write(id: &ConfigId, expected_live: u64) -> DeleteWrite {
    DeleteWrite {
        config_id: id.clone(),
        expected_live,
        audit: audit_draft("config.delete", "bob", "retire"),
        at: now(),
        applies: None,
    }
}

fn schema_write(
    id: &ConfigId,
    schema: Value,
    expected_schema: u64,
    expected_live: u64,
) -> SchemaWrite {
    SchemaWrite {
        config_id: id.clone(),
        checksum: checksum(&schema),
        schema,
        metadata: Metadata {
            actor: "carol".to_owned(),
            message: Some("constrain".to_owned()),
            ..Default::default()
        },
        created_at: now(),
        expected_schema,
        expected_live,
        audit: audit_draft("schema.put", "carol", "constrain"),
    }
}

fn flag_key(key: &str) -> FlagKey {
    FlagKey::parse(key).expect("valid flag key")
}

/// A boolean flag serving `default_variant` ("on" or "off"); `description` tells versions apart.
fn flag_definition(description: &str, default_variant: &str) -> FlagDefinition {
    serde_json::from_value(json!({
        "description": description,
        "type": "boolean",
        "variants": { "on": true, "off": false },
        "defaultVariant": default_variant,
    }))
    .expect("valid flag definition")
}

fn new_flag_version(key: &FlagKey, definition: FlagDefinition) -> NewFlagVersion {
    NewFlagVersion {
        key: key.clone(),
        checksum: checksum(&serde_json::to_value(&definition).expect("definition serializes")),
        definition,
        metadata: Metadata {
            actor: "erin".to_owned(),
            message: Some("toggle".to_owned()),
            ..Default::default()
        },
        created_at: now(),
        rollback_of: None,
    }
}

fn flag_write(key: &FlagKey, description: &str, expected_live: u64) -> FlagWrite {
    FlagWrite {
        version: new_flag_version(key, flag_definition(description, "off")),
        expected_live,
        audit: audit_draft("flag.put", "erin", "toggle"),
    }
}

fn flag_delete_write(key: &FlagKey, expected_live: u64) -> FlagDeleteWrite {
    FlagDeleteWrite {
        key: key.clone(),
        expected_live,
        audit: audit_draft("flag.delete", "frank", "retire"),
        at: now(),
    }
}

fn all_audit() -> AuditQuery {
    AuditQuery {
        subject: None,
        before: None,
        limit: 1000,
    }
}

/// Everything a write may change, as seen through the trait.
#[derive(Debug, PartialEq)]
struct Observed {
    head: Option<(u64, bool, String)>,
    versions: Vec<u64>,
    schema: Option<(u64, String)>,
    changes: Vec<ChangeEvent>,
    latest_revision: u64,
    audit: Vec<AuditRecord>,
}

async fn observe(store: &dyn Store, id: &ConfigId) -> Observed {
    Observed {
        head: store
            .head(id)
            .await
            .expect("head")
            .map(|h| (h.latest.version, h.deleted, h.latest.checksum.clone())),
        versions: version_numbers(store, id, None, 1000).await,
        schema: store
            .schema(id)
            .await
            .expect("schema")
            .map(|s| (s.version, s.checksum)),
        changes: store.changes_since(0, 1000).await.expect("changes"),
        latest_revision: store.latest_revision().await.expect("latest revision"),
        audit: store.audit(all_audit()).await.expect("audit"),
    }
}

/// Everything a flag write may change, as seen through the trait (flags have no schema).
async fn observe_flag(store: &dyn Store, key: &FlagKey) -> Observed {
    Observed {
        head: store
            .flag_head(key)
            .await
            .expect("flag head")
            .map(|h| (h.latest.version, h.deleted, h.latest.checksum.clone())),
        versions: flag_version_numbers(store, key, None, 1000).await,
        schema: None,
        changes: store.changes_since(0, 1000).await.expect("changes"),
        latest_revision: store.latest_revision().await.expect("latest revision"),
        audit: store.audit(all_audit()).await.expect("audit"),
    }
}

async fn flag_version_numbers(
    store: &dyn Store,
    key: &FlagKey,
    before: Option<u64>,
    limit: u32,
) -> Vec<u64> {
    store
        .flag_versions(key, before, limit)
        .await
        .expect("flag versions")
        .iter()
        .map(|v| v.version)
        .collect()
}

/// (key, version, deleted) of each head, in the order given.
fn flag_states<'a>(heads: impl IntoIterator<Item = &'a FlagHead>) -> Vec<(String, u64, bool)> {
    heads
        .into_iter()
        .map(|h| (h.latest.key.to_string(), h.latest.version, h.deleted))
        .collect()
}

async fn version_numbers(
    store: &dyn Store,
    id: &ConfigId,
    before: Option<u64>,
    limit: u32,
) -> Vec<u64> {
    store
        .versions(id, before, limit)
        .await
        .expect("versions")
        .iter()
        .map(|v| v.version)
        .collect()
}

// ---- behaviours ----------------------------------------------------------------------------

async fn append_version_numbers_versions_per_config_and_head_is_latest(store: Arc<dyn Store>) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    for (expected_live, limit) in [(0, 1), (1, 2), (2, 3)] {
        let committed = store
            .append_version(version_write(
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
        .append_version(version_write(&beta, json!({ "enabled": true }), 0))
        .await
        .expect("append beta");
    assert_eq!(committed.version, 1, "numbering is per config");

    let head = store
        .head(&alpha)
        .await
        .expect("head")
        .expect("alpha exists");
    assert_eq!(head.latest.version, 3);
    assert_eq!(head.latest.document.config, json!({ "limit": 3 }));
    assert!(!head.deleted);
    assert_eq!(head.live_version(), 3);

    let head = store.head(&beta).await.expect("head").expect("beta exists");
    assert_eq!((head.latest.version, head.deleted), (1, false));
    assert!(
        store
            .head(&config_id("gamma"))
            .await
            .expect("head")
            .is_none()
    );
}

async fn append_version_with_stale_expected_live_is_a_version_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    store
        .append_version(version_write(&id, json!({ "v": 2 }), 1))
        .await
        .expect("v2");
    let before = observe(store.as_ref(), &id).await;

    for stale in [0, 1, 3] {
        let error = store
            .append_version(version_write(&id, json!({ "v": "lost" }), stale))
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
        .append_version(version_write(&absent, json!({}), 1))
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
    assert!(store.head(&absent).await.expect("head").is_none());
    assert_eq!(store.latest_revision().await.expect("latest revision"), 2);
}

async fn append_version_with_stale_expected_schema_is_a_concurrent_modification_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
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
            .append_version(write)
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
        .append_version(write)
        .await
        .expect("current schema is accepted");
    assert_eq!(committed.version, 2);
}

async fn committed_writes_take_consecutive_global_revisions(store: Arc<dyn Store>) {
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
            .append_version(alpha_v1)
            .await
            .expect("alpha v1")
            .event,
        store.append_version(beta_v1).await.expect("beta v1").event,
        store
            .put_schema(alpha_schema)
            .await
            .expect("alpha schema")
            .event,
        store
            .append_version(alpha_v2)
            .await
            .expect("alpha v2")
            .event,
        store
            .delete_config(beta_delete)
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

async fn every_committed_write_has_one_audit_record_listed_newest_first(store: Arc<dyn Store>) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    let mut alpha_v1 = version_write(&alpha, json!({ "v": 1 }), 0);
    alpha_v1.audit = AuditDraft {
        actor: "alice".to_owned(),
        action: "config.put",
        environments: vec!["*".to_owned()],
        message: Some("first".to_owned()),
        on_behalf_of: None,
    };
    let mut beta_v1 = version_write(&beta, json!({ "v": 1 }), 0);
    beta_v1.audit = AuditDraft {
        actor: "bob".to_owned(),
        action: "config.override",
        environments: vec!["production".to_owned(), "staging".to_owned()],
        message: None,
        on_behalf_of: Some("release-bot".to_owned()),
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
            .append_version(alpha_v1)
            .await
            .expect("alpha v1")
            .event,
        store.append_version(beta_v1).await.expect("beta v1").event,
        store
            .put_schema(alpha_schema)
            .await
            .expect("alpha schema")
            .event,
        store
            .append_version(alpha_v2)
            .await
            .expect("alpha v2")
            .event,
        store
            .delete_config(alpha_delete)
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

async fn versions_are_listed_newest_first_and_page_with_before(store: Arc<dyn Store>) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    for live in 0..5 {
        store
            .append_version(version_write(&alpha, json!({ "v": live + 1 }), live))
            .await
            .expect("append alpha");
    }
    store
        .append_version(version_write(&beta, json!({}), 0))
        .await
        .expect("append beta");

    let all = store.versions(&alpha, None, 100).await.expect("versions");
    let numbers: Vec<u64> = all.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [5, 4, 3, 2, 1]);
    assert!(all.iter().all(|v| v.config_id == alpha));
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

async fn version_returns_the_stored_version(store: Arc<dyn Store>) {
    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
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
        .append_version(VersionWrite {
            version: written.clone(),
            expected_live: 1,
            expected_schema: 0,
            audit: audit_draft("config.rollback", "dave", "roll back"),
            applies: None,
        })
        .await
        .expect("v2");

    let stored = store
        .version(&id, 2)
        .await
        .expect("version")
        .expect("v2 exists");
    assert_eq!(stored.config_id, id);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.document, written.document);
    assert_eq!(stored.metadata, written.metadata);
    assert_eq!(stored.checksum, written.checksum);
    assert_eq!(stored.created_at, written.created_at);
    assert_eq!(stored.rollback_of, Some(1));

    let first = store
        .version(&id, 1)
        .await
        .expect("version")
        .expect("v1 exists");
    assert_eq!(first.document.config, json!({ "v": 1 }));
    assert_eq!(first.metadata.message.as_deref(), Some("tune"));
    assert_eq!(first.rollback_of, None);

    assert!(store.version(&id, 3).await.expect("version").is_none());
    assert!(store.version(&id, 0).await.expect("version").is_none());
    assert!(
        store
            .version(&config_id("beta"), 1)
            .await
            .expect("version")
            .is_none()
    );
}

async fn delete_marks_config_deleted_and_keeps_history(store: Arc<dyn Store>) {
    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    let v2 = version_write(&id, json!({ "v": 2 }), 1);
    let v2_checksum = v2.version.checksum.clone();
    store.append_version(v2).await.expect("v2");

    let delete = delete_write(&id, 2);
    let at = delete.at;
    let committed = store.delete_config(delete).await.expect("delete");
    assert_eq!(committed.version, 2);
    assert_eq!(committed.event.kind, kind::CONFIG_DELETED);
    assert_eq!(committed.event.revision, 3);
    assert_eq!(committed.event.version, 2);
    assert_eq!(committed.event.checksum, v2_checksum);
    assert_eq!(committed.event.at, at);

    let head = store
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
    assert!(store.version(&id, 1).await.expect("version").is_some());
    assert_eq!(
        store.changes_since(2, 100).await.expect("changes"),
        [committed.event]
    );
}

async fn delete_with_stale_expected_live_is_a_version_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    store
        .append_version(version_write(&id, json!({ "v": 2 }), 1))
        .await
        .expect("v2");
    let before = observe(store.as_ref(), &id).await;

    let error = store
        .delete_config(delete_write(&id, 1))
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

async fn deleting_an_absent_config_is_not_found(store: Arc<dyn Store>) {
    let never = config_id("never");
    let error = store
        .delete_config(delete_write(&never, 0))
        .await
        .expect_err("nothing to delete");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(store.head(&never).await.expect("head").is_none());
    assert_eq!(store.latest_revision().await.expect("latest revision"), 0);

    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({}), 0))
        .await
        .expect("v1");
    store
        .delete_config(delete_write(&id, 1))
        .await
        .expect("delete");
    let before = observe(store.as_ref(), &id).await;
    let error = store
        .delete_config(delete_write(&id, 0))
        .await
        .expect_err("already deleted");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(observe(store.as_ref(), &id).await, before);
}

async fn append_after_delete_continues_numbering(store: Arc<dyn Store>) {
    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    store
        .append_version(version_write(&id, json!({ "v": 2 }), 1))
        .await
        .expect("v2");
    store
        .delete_config(delete_write(&id, 2))
        .await
        .expect("delete");

    let error = store
        .append_version(version_write(&id, json!({ "v": "lost" }), 2))
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
        .append_version(version_write(&id, json!({ "v": 3 }), 0))
        .await
        .expect("recreate");
    assert_eq!(committed.version, 3);
    assert_eq!(committed.event.kind, kind::CONFIG_UPDATED);

    let head = store.head(&id).await.expect("head").expect("alpha exists");
    assert!(!head.deleted);
    assert_eq!(head.live_version(), 3);
    assert_eq!(head.latest.document.config, json!({ "v": 3 }));
    assert_eq!(
        version_numbers(store.as_ref(), &id, None, 100).await,
        [3, 2, 1]
    );
}

async fn put_schema_numbers_schema_versions_and_schema_returns_latest(store: Arc<dyn Store>) {
    let id = config_id("alpha");
    assert!(store.schema(&id).await.expect("schema").is_none());
    store
        .append_version(version_write(&id, json!({ "limit": 1 }), 0))
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

    let head = store.head(&id).await.expect("head").expect("alpha exists");
    assert_eq!(head.latest.version, 1, "a schema is not a config version");
    assert!(
        store
            .schema(&config_id("beta"))
            .await
            .expect("schema")
            .is_none()
    );
}

async fn put_schema_with_stale_expected_versions_is_a_concurrent_modification(
    store: Arc<dyn Store>,
) {
    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    store
        .append_version(version_write(&id, json!({ "v": 2 }), 1))
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
        .delete_config(delete_write(&id, 2))
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

async fn schema_registered_before_the_config_exists_is_not_a_head(store: Arc<dyn Store>) {
    let (early, other) = (config_id("early"), config_id("other"));
    store
        .append_version(version_write(&other, json!({}), 0))
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
    assert!(store.head(&early).await.expect("head").is_none());
    let ids: Vec<ConfigId> = store
        .heads()
        .await
        .expect("heads")
        .into_iter()
        .map(|h| h.latest.config_id.clone())
        .collect();
    assert_eq!(ids, [other]);
    assert!(
        version_numbers(store.as_ref(), &early, None, 100)
            .await
            .is_empty()
    );

    let error = store
        .append_version(version_write(&early, json!({}), 0))
        .await
        .expect_err("the config must be validated against the registered schema");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );
    let mut write = version_write(&early, json!({ "v": 1 }), 0);
    write.expected_schema = 1;
    let committed = store.append_version(write).await.expect("first version");
    assert_eq!(committed.version, 1);
    let head = store
        .head(&early)
        .await
        .expect("head")
        .expect("early exists");
    assert_eq!((head.latest.version, head.deleted), (1, false));
}

async fn record_applied_upserts_per_config_environment_and_instance(store: Arc<dyn Store>) {
    let (alpha, beta) = (config_id("alpha"), config_id("beta"));
    store
        .append_version(version_write(&alpha, json!({ "v": 1 }), 0))
        .await
        .expect("alpha v1");
    store
        .append_version(version_write(&alpha, json!({ "v": 2 }), 1))
        .await
        .expect("alpha v2");
    store
        .append_version(version_write(&beta, json!({ "v": 1 }), 0))
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
}

async fn heads_are_ordered_by_config_id_and_include_deleted_configs(store: Arc<dyn Store>) {
    assert!(store.heads().await.expect("heads").is_empty());
    let (zeta, alpha, middle) = (
        config_id("zeta"),
        config_id("alpha"),
        config_id("mid.config"),
    );
    store
        .append_version(version_write(&zeta, json!({}), 0))
        .await
        .expect("zeta v1");
    store
        .append_version(version_write(&alpha, json!({}), 0))
        .await
        .expect("alpha v1");
    store
        .append_version(version_write(&middle, json!({}), 0))
        .await
        .expect("middle v1");
    store
        .append_version(version_write(&middle, json!({ "v": 2 }), 1))
        .await
        .expect("middle v2");
    store
        .delete_config(delete_write(&middle, 2))
        .await
        .expect("delete middle");

    let heads: Vec<(String, u64, bool)> = store
        .heads()
        .await
        .expect("heads")
        .iter()
        .map(|h| (h.latest.config_id.to_string(), h.latest.version, h.deleted))
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

async fn deleting_an_absent_config_is_not_found_whatever_the_expected_version(
    store: Arc<dyn Store>,
) {
    let never = config_id("never");
    let error = store
        .delete_config(delete_write(&never, 3))
        .await
        .expect_err("nothing to delete");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(store.latest_revision().await.expect("latest revision"), 0);
}

async fn applied_state_for_a_config_that_never_existed_is_not_found(store: Arc<dyn Store>) {
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

async fn sweeping_applied_state_deletes_only_reports_older_than_the_cutoff(store: Arc<dyn Store>) {
    let id = config_id("alpha");
    store
        .append_version(version_write(&id, json!({}), 0))
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

// ---- flags ---------------------------------------------------------------------------------

async fn flag_versions_number_per_flag_and_head_is_latest(store: Arc<dyn Store>) {
    let (checkout, banner) = (flag_key("newCheckout"), flag_key("banner"));
    for expected_live in 0..3 {
        let committed = store
            .append_flag_version(flag_write(
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
        .append_flag_version(flag_write(&banner, "v1", 0))
        .await
        .expect("append banner");
    assert_eq!(committed.version, 1, "numbering is per flag");

    let head = store
        .flag_head(&checkout)
        .await
        .expect("flag head")
        .expect("newCheckout exists");
    assert_eq!(head.latest.key, checkout);
    assert_eq!(head.latest.version, 3);
    assert_eq!(head.latest.definition, flag_definition("v3", "off"));
    assert!(!head.deleted);
    assert_eq!(head.live_version(), 3);

    assert!(
        store
            .flag_head(&flag_key("newcheckout"))
            .await
            .expect("flag head")
            .is_none(),
        "flag keys are case-sensitive"
    );
    assert!(
        store
            .head(&config_id("banner"))
            .await
            .expect("head")
            .is_none(),
        "a flag is not a config"
    );
}

async fn append_flag_version_with_stale_expected_live_is_a_version_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let key = flag_key("newCheckout");
    store
        .append_flag_version(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    store
        .append_flag_version(flag_write(&key, "v2", 1))
        .await
        .expect("v2");
    let before = observe_flag(store.as_ref(), &key).await;

    for stale in [0, 1, 3] {
        let error = store
            .append_flag_version(flag_write(&key, "lost", stale))
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
        .append_flag_version(flag_write(&absent, "lost", 1))
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
    assert!(store.flag_head(&absent).await.expect("flag head").is_none());

    let committed = store
        .append_flag_version(flag_write(&key, "v3", 2))
        .await
        .expect("v3");
    assert_eq!(
        committed.event.revision, 3,
        "refused writes leave no gap in the revisions"
    );
}

async fn flag_version_returns_the_stored_definition(store: Arc<dyn Store>) {
    let key = flag_key("newCheckout");
    store
        .append_flag_version(flag_write(&key, "v1", 0))
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
        .append_flag_version(FlagWrite {
            version: written.clone(),
            expected_live: 1,
            audit: audit_draft("flag.rollback", "dave", "roll back"),
        })
        .await
        .expect("v2");

    let stored = store
        .flag_version(&key, 2)
        .await
        .expect("flag version")
        .expect("v2 exists");
    assert_eq!(stored.key, key);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.definition, written.definition);
    assert_eq!(stored.metadata, written.metadata);
    assert_eq!(stored.checksum, written.checksum);
    assert_eq!(stored.created_at, written.created_at);
    assert_eq!(stored.rollback_of, Some(1));

    let first = store
        .flag_version(&key, 1)
        .await
        .expect("flag version")
        .expect("v1 exists");
    assert_eq!(first.definition, flag_definition("v1", "off"));
    assert_eq!(first.rollback_of, None);

    for (key, version) in [(&key, 3), (&key, 0), (&flag_key("other"), 1)] {
        assert!(
            store
                .flag_version(key, version)
                .await
                .expect("flag version")
                .is_none()
        );
    }
}

async fn flag_versions_are_listed_newest_first_and_page_with_before(store: Arc<dyn Store>) {
    let (checkout, banner) = (flag_key("newCheckout"), flag_key("banner"));
    for live in 0..5 {
        store
            .append_flag_version(flag_write(&checkout, &format!("v{}", live + 1), live))
            .await
            .expect("append newCheckout");
    }
    store
        .append_flag_version(flag_write(&banner, "v1", 0))
        .await
        .expect("append banner");

    let all = store
        .flag_versions(&checkout, None, 100)
        .await
        .expect("flag versions");
    let numbers: Vec<u64> = all.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [5, 4, 3, 2, 1]);
    assert!(all.iter().all(|v| v.key == checkout));
    assert!(
        all.iter()
            .all(|v| v.definition == flag_definition(&format!("v{}", v.version), "off"))
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

async fn delete_flag_marks_it_deleted_and_keeps_history(store: Arc<dyn Store>) {
    let key = flag_key("newCheckout");
    store
        .append_flag_version(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    let v2 = flag_write(&key, "v2", 1);
    let v2_checksum = v2.version.checksum.clone();
    store.append_flag_version(v2).await.expect("v2");

    let delete = flag_delete_write(&key, 2);
    let at = delete.at;
    let committed = store.delete_flag(delete).await.expect("delete");
    assert_eq!(committed.version, 2);
    assert_eq!(committed.event.kind, kind::FLAG_DELETED);
    assert_eq!(committed.event.config_id, "newCheckout");
    assert_eq!(committed.event.revision, 3);
    assert_eq!(committed.event.version, 2);
    assert_eq!(committed.event.checksum, v2_checksum);
    assert_eq!(committed.event.at, at);

    let head = store
        .flag_head(&key)
        .await
        .expect("flag head")
        .expect("a deleted flag keeps a head");
    assert!(head.deleted);
    assert_eq!(head.live_version(), 0);
    assert_eq!(head.latest.version, 2);
    assert_eq!(head.latest.definition, flag_definition("v2", "off"));

    assert_eq!(
        flag_version_numbers(store.as_ref(), &key, None, 100).await,
        [2, 1]
    );
    assert!(
        store
            .flag_version(&key, 1)
            .await
            .expect("flag version")
            .is_some()
    );
    assert_eq!(
        store.changes_since(2, 100).await.expect("changes"),
        [committed.event]
    );
}

async fn delete_flag_with_stale_expected_live_is_a_version_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let key = flag_key("newCheckout");
    store
        .append_flag_version(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    store
        .append_flag_version(flag_write(&key, "v2", 1))
        .await
        .expect("v2");
    let before = observe_flag(store.as_ref(), &key).await;

    let error = store
        .delete_flag(flag_delete_write(&key, 1))
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

async fn deleting_an_absent_or_deleted_flag_is_not_found(store: Arc<dyn Store>) {
    let never = flag_key("never");
    for expected_live in [0, 3] {
        let error = store
            .delete_flag(flag_delete_write(&never, expected_live))
            .await
            .expect_err("nothing to delete");
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    }
    assert!(store.flag_head(&never).await.expect("flag head").is_none());
    assert_eq!(store.latest_revision().await.expect("latest revision"), 0);

    let key = flag_key("newCheckout");
    store
        .append_flag_version(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    store
        .delete_flag(flag_delete_write(&key, 1))
        .await
        .expect("delete");
    let before = observe_flag(store.as_ref(), &key).await;
    let error = store
        .delete_flag(flag_delete_write(&key, 0))
        .await
        .expect_err("already deleted");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(observe_flag(store.as_ref(), &key).await, before);
}

async fn recreating_a_deleted_flag_takes_the_next_version(store: Arc<dyn Store>) {
    let key = flag_key("newCheckout");
    store
        .append_flag_version(flag_write(&key, "v1", 0))
        .await
        .expect("v1");
    store
        .append_flag_version(flag_write(&key, "v2", 1))
        .await
        .expect("v2");
    store
        .delete_flag(flag_delete_write(&key, 2))
        .await
        .expect("delete");

    let error = store
        .append_flag_version(flag_write(&key, "lost", 2))
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
        .append_flag_version(flag_write(&key, "v3", 0))
        .await
        .expect("recreate");
    assert_eq!(committed.version, 3);
    assert_eq!(committed.event.kind, kind::FLAG_UPDATED);

    let head = store
        .flag_head(&key)
        .await
        .expect("flag head")
        .expect("newCheckout exists");
    assert!(!head.deleted);
    assert_eq!(head.live_version(), 3);
    assert_eq!(head.latest.definition, flag_definition("v3", "off"));
    assert_eq!(
        flag_version_numbers(store.as_ref(), &key, None, 100).await,
        [3, 2, 1]
    );
}

async fn flag_heads_are_ordered_by_key_and_include_deleted_flags(store: Arc<dyn Store>) {
    assert!(store.flag_heads().await.expect("flag heads").is_empty());
    // Byte order, as `FlagSet` keeps them: upper case sorts before lower case.
    let (zeta, beta, dotted) = (flag_key("zeta"), flag_key("Beta"), flag_key("alpha.flag"));
    for key in [&zeta, &beta, &dotted] {
        store
            .append_flag_version(flag_write(key, "v1", 0))
            .await
            .expect("v1");
    }
    store
        .append_flag_version(flag_write(&dotted, "v2", 1))
        .await
        .expect("alpha.flag v2");
    store
        .delete_flag(flag_delete_write(&dotted, 2))
        .await
        .expect("delete alpha.flag");
    store
        .append_version(version_write(&config_id("aardvark"), json!({}), 0))
        .await
        .expect("a config");

    let heads = store.flag_heads().await.expect("flag heads");
    assert_eq!(
        flag_states(&heads),
        [
            ("Beta".to_owned(), 1, false),
            ("alpha.flag".to_owned(), 2, true),
            ("zeta".to_owned(), 1, false),
        ]
    );
}

async fn flag_writes_take_the_next_global_revision_between_config_writes(store: Arc<dyn Store>) {
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
            .append_version(config_v1)
            .await
            .expect("config v1")
            .event,
        store
            .append_flag_version(flag_v1)
            .await
            .expect("flag v1")
            .event,
        store
            .append_flag_version(flag_v2)
            .await
            .expect("flag v2")
            .event,
        store
            .append_version(config_v2)
            .await
            .expect("config v2")
            .event,
        store
            .delete_flag(flag_delete)
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

async fn audit_of_a_config_and_a_flag_sharing_an_id_is_kept_apart(store: Arc<dyn Store>) {
    let (config, flag) = (config_id("checkout"), flag_key("checkout"));
    store
        .append_version(version_write(&config, json!({ "v": 1 }), 0))
        .await
        .expect("config v1");
    store
        .append_flag_version(flag_write(&flag, "v1", 0))
        .await
        .expect("flag v1");
    store
        .delete_flag(flag_delete_write(&flag, 1))
        .await
        .expect("flag delete");
    store
        .append_version(version_write(&config, json!({ "v": 2 }), 1))
        .await
        .expect("config v2");
    store
        .append_flag_version(flag_write(&flag_key("other"), "v1", 0))
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

/// Two read caches over one store stand for two replicas: a flag written through one reaches
/// the other through `apply_change` (what the replication follower calls for every change).
async fn a_read_cache_loads_flags_and_follows_flag_changes_committed_elsewhere(
    store: Arc<dyn Store>,
) {
    let (kept, retired) = (flag_key("kept"), flag_key("retired"));
    store
        .append_flag_version(flag_write(&kept, "v1", 0))
        .await
        .expect("kept v1");
    store
        .append_flag_version(flag_write(&retired, "v1", 0))
        .await
        .expect("retired v1");
    store
        .delete_flag(flag_delete_write(&retired, 1))
        .await
        .expect("retire");

    let writer = CachedStore::load(store.clone()).await.expect("cache loads");
    let follower = CachedStore::load(store.clone()).await.expect("cache loads");
    let loaded = follower.cached_flags();
    assert_eq!(
        flag_states(loaded.heads.values()),
        [
            ("kept".to_owned(), 1, false),
            ("retired".to_owned(), 1, true)
        ],
        "deleted flags are loaded too"
    );

    let fresh = flag_key("fresh");
    let events = [
        writer
            .append_flag_version(flag_write(&kept, "v2", 1))
            .await
            .expect("kept v2")
            .event,
        writer
            .append_flag_version(flag_write(&fresh, "v1", 0))
            .await
            .expect("fresh v1")
            .event,
        writer
            .delete_flag(flag_delete_write(&kept, 2))
            .await
            .expect("delete kept")
            .event,
    ];
    assert_eq!(
        flag_states(follower.cached_flags().heads.values()),
        flag_states(loaded.heads.values()),
        "nothing reaches the follower before it applies the changes"
    );

    for event in &events {
        follower.apply_change(event).await.expect("apply change");
    }
    let expected = [
        ("fresh".to_owned(), 1, false),
        ("kept".to_owned(), 2, true),
        ("retired".to_owned(), 1, true),
    ];
    let followed = follower.cached_flags();
    assert_eq!(flag_states(followed.heads.values()), expected);
    assert_eq!(
        flag_states(&follower.flag_heads().await.expect("flag heads")),
        expected
    );
    assert_eq!(
        flag_states(&store.flag_heads().await.expect("flag heads")),
        expected
    );

    // Applying a change again, or an older one, never moves the cache back.
    follower
        .apply_change(&events[0])
        .await
        .expect("apply change");
    assert_eq!(
        flag_states(follower.cached_flags().heads.values()),
        expected
    );
}

/// Only for the read cache: evaluation reads `cached_flags()`, so every write and delete must
/// show there, in a new set (a set already handed out does not change under its reader).
async fn cached_flags_reflect_writes_and_deletes(store: Arc<CachedStore>) {
    let cached = || store.cached_flags();
    let empty = cached();
    assert!(empty.heads.is_empty());

    let (checkout, banner) = (flag_key("newCheckout"), flag_key("banner"));
    store
        .append_flag_version(flag_write(&checkout, "v1", 0))
        .await
        .expect("v1");
    let first = cached();
    assert_eq!(
        first.live("newCheckout").map(|v| v.version),
        Some(1),
        "a write shows at once"
    );
    assert!(empty.heads.is_empty(), "a set handed out never changes");

    store
        .append_flag_version(flag_write(&checkout, "v2", 1))
        .await
        .expect("v2");
    store
        .append_flag_version(flag_write(&banner, "v1", 0))
        .await
        .expect("banner v1");
    let second = cached();
    assert_eq!(
        second.live("newCheckout").map(|v| v.definition.clone()),
        Some(flag_definition("v2", "off"))
    );
    assert_eq!(second.live("banner").map(|v| v.version), Some(1));

    store
        .delete_flag(flag_delete_write(&checkout, 2))
        .await
        .expect("delete");
    let deleted = cached();
    assert!(
        deleted.live("newCheckout").is_none(),
        "a delete shows at once"
    );
    assert_eq!(
        flag_states(deleted.heads.values()),
        [
            ("banner".to_owned(), 1, false),
            ("newCheckout".to_owned(), 2, true),
        ]
    );

    store
        .append_flag_version(flag_write(&checkout, "lost", 2))
        .await
        .expect_err("stale");
    assert_eq!(
        flag_states(cached().heads.values()),
        flag_states(deleted.heads.values()),
        "a refused write changes nothing"
    );

    store
        .append_flag_version(flag_write(&checkout, "v3", 0))
        .await
        .expect("recreate");
    assert_eq!(cached().live("newCheckout").map(|v| v.version), Some(3));
    assert_eq!(
        flag_states(&store.flag_heads().await.expect("flag heads")),
        flag_states(cached().heads.values())
    );
}

// ---- access: tokens and denials ------------------------------------------------------------

/// A token created `age_secs` seconds after `base`; `n` gives it its own id and secret.
fn api_token(n: u32, base: DateTime<Utc>, age_secs: i64) -> ApiToken {
    ApiToken {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        name: format!("ci-{n}"),
        roles: vec![Role::ConfigReader, Role::ConfigAdmin],
        scopes: Scopes {
            config_prefixes: vec!["checkout".to_owned()],
            environments: vec!["staging".to_owned()],
        },
        hash: checksum(&json!(format!("secret-{n}"))),
        created_at: base + chrono::Duration::seconds(age_secs),
        created_by: "admin".to_owned(),
        expires_at: n
            .is_multiple_of(2)
            .then(|| base + chrono::Duration::days(30)),
        revoked_at: None,
    }
}

fn token_audit(action: &'static str) -> AuditDraft {
    AuditDraft {
        actor: "admin".to_owned(),
        action,
        environments: Vec::new(),
        message: None,
        on_behalf_of: None,
    }
}

fn token_write(token: &ApiToken) -> TokenWrite {
    TokenWrite {
        token: token.clone(),
        audit: token_audit("token.create"),
    }
}

fn token_revoke(id: &str, at: DateTime<Utc>) -> TokenRevoke {
    TokenRevoke {
        id: id.to_owned(),
        at,
        audit: token_audit("token.revoke"),
    }
}

/// What token writes may change, as seen through the trait.
async fn observe_tokens(store: &dyn Store) -> (Vec<ApiToken>, Vec<ChangeEvent>, Vec<AuditRecord>) {
    (
        store.tokens().await.expect("tokens"),
        store.changes_since(0, 1000).await.expect("changes"),
        store.audit(all_audit()).await.expect("audit"),
    )
}

async fn tokens_are_listed_oldest_first_and_revoked_once(store: Arc<dyn Store>) {
    let base = now();
    // Created out of order: the list is by creation time, not by insertion.
    let (older, newer) = (api_token(2, base, 0), api_token(1, base, 60));
    let created = [
        store
            .create_token(token_write(&newer))
            .await
            .expect("create newer"),
        store
            .create_token(token_write(&older))
            .await
            .expect("create older"),
    ];
    for (index, (committed, token)) in created.iter().zip([&newer, &older]).enumerate() {
        assert_eq!(committed.event.revision, index as u64 + 1);
        assert_eq!(committed.event.kind, kind::TOKEN_CREATED);
        assert_eq!(committed.event.config_id, token.id);
        assert_eq!(committed.event.at, token.created_at);
        assert!(committed.follow_up.is_none());
    }
    assert_eq!(
        store.tokens().await.expect("tokens"),
        [older.clone(), newer.clone()]
    );

    let at = base + chrono::Duration::seconds(120);
    let revoked = store
        .revoke_token(token_revoke(&newer.id, at))
        .await
        .expect("revoke");
    assert_eq!(revoked.event.revision, 3);
    assert_eq!(revoked.event.kind, kind::TOKEN_REVOKED);
    assert_eq!(revoked.event.config_id, newer.id);
    assert_eq!(revoked.event.at, at);
    let tokens = store.tokens().await.expect("tokens");
    assert_eq!(tokens[0], older, "the other token is untouched");
    assert_eq!(tokens[1].revoked_at, Some(at));
    assert!(!tokens[1].is_active(at));

    let records = store.audit(all_audit()).await.expect("audit");
    let actions: Vec<(u64, &str, &str)> = records
        .iter()
        .map(|r| (r.revision, r.action.as_str(), r.config_id.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (3, "token.revoke", newer.id.as_str()),
            (2, "token.create", older.id.as_str()),
            (1, "token.create", newer.id.as_str()),
        ]
    );

    let before = observe_tokens(store.as_ref()).await;
    let error = store
        .revoke_token(token_revoke(&newer.id, at + chrono::Duration::seconds(1)))
        .await
        .expect_err("already revoked");
    assert!(matches!(error, Error::Conflict { .. }), "{error:?}");
    assert_eq!(observe_tokens(store.as_ref()).await, before);
}

async fn a_token_whose_id_or_hash_is_taken_is_a_conflict_and_writes_nothing(store: Arc<dyn Store>) {
    let base = now();
    let token = api_token(1, base, 0);
    store
        .create_token(token_write(&token))
        .await
        .expect("create");
    let before = observe_tokens(store.as_ref()).await;

    let same_secret = ApiToken {
        id: api_token(2, base, 0).id,
        ..token.clone()
    };
    let same_id = ApiToken {
        hash: api_token(2, base, 0).hash,
        ..token.clone()
    };
    for taken in [same_secret, same_id] {
        let error = store
            .create_token(token_write(&taken))
            .await
            .expect_err("a taken id or hash is refused");
        assert!(matches!(error, Error::Conflict { .. }), "{error:?}");
    }
    assert_eq!(observe_tokens(store.as_ref()).await, before);
}

async fn revoking_an_absent_token_is_not_found_and_writes_nothing(store: Arc<dyn Store>) {
    let base = now();
    store
        .create_token(token_write(&api_token(1, base, 0)))
        .await
        .expect("create");
    let before = observe_tokens(store.as_ref()).await;
    let absent = api_token(2, base, 0).id;
    let error = store
        .revoke_token(token_revoke(&absent, base))
        .await
        .expect_err("no such token");
    assert!(
        matches!(&error, Error::NotFound { resource: "token", id } if *id == absent),
        "{error:?}"
    );
    assert_eq!(observe_tokens(store.as_ref()).await, before);
}

/// Token ids are UUIDs, which are also valid config ids: a config's audit must not list them.
async fn token_records_stay_out_of_a_config_audit_that_shares_the_id(store: Arc<dyn Store>) {
    let token = api_token(1, now(), 0);
    let config = config_id(&token.id);
    store
        .append_version(version_write(&config, json!({ "v": 1 }), 0))
        .await
        .expect("config v1");
    store
        .create_token(token_write(&token))
        .await
        .expect("create");
    store
        .revoke_token(token_revoke(&token.id, now()))
        .await
        .expect("revoke");

    let of_config = store
        .audit(AuditQuery {
            subject: Some(AuditSubject::Config(config)),
            ..all_audit()
        })
        .await
        .expect("audit");
    let actions: Vec<&str> = of_config.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["config.put"]);
    assert_eq!(store.audit(all_audit()).await.expect("audit").len(), 3);
}

/// Two read caches over one store stand for two replicas: a token revoked through one is
/// refused by the other once it applies the `token.revoked` change.
async fn a_read_cache_follows_token_changes_committed_elsewhere(store: Arc<dyn Store>) {
    let base = now();
    let (kept, revoked) = (api_token(1, base, 0), api_token(2, base, 1));
    store
        .create_token(token_write(&kept))
        .await
        .expect("create kept");

    let writer = CachedStore::load(store.clone()).await.expect("cache loads");
    let follower = CachedStore::load(store.clone()).await.expect("cache loads");
    let cached = |cache: &CachedStore, hash: &str| {
        cache
            .cached_tokens()
            .get(hash)
            .map(|token| token.as_ref().clone())
    };
    assert_eq!(cached(&follower, &kept.hash), Some(kept.clone()), "loaded");

    let created = writer
        .create_token(token_write(&revoked))
        .await
        .expect("create")
        .event;
    assert_eq!(cached(&follower, &revoked.hash), None, "not applied yet");
    follower.apply_change(&created).await.expect("apply change");
    assert_eq!(cached(&follower, &revoked.hash), Some(revoked.clone()));

    let at = base + chrono::Duration::seconds(5);
    let revocation = writer
        .revoke_token(token_revoke(&revoked.id, at))
        .await
        .expect("revoke")
        .event;
    assert!(
        cached(&follower, &revoked.hash)
            .expect("cached")
            .revoked_at
            .is_none(),
        "not applied yet"
    );
    follower
        .apply_change(&revocation)
        .await
        .expect("apply change");
    let seen = cached(&follower, &revoked.hash).expect("cached");
    assert_eq!(seen.revoked_at, Some(at));
    assert!(!seen.is_active(at));
    assert_eq!(cached(&follower, &kept.hash), Some(kept));
}

fn denial(n: u32, resource: Option<&str>) -> Denial {
    Denial {
        id: 0,
        at: now(),
        actor: format!("token:ci-{n}"),
        operation: "PUT /api/v1/configs/{id}".to_owned(),
        resource: resource.map(str::to_owned),
        reason: "config-admin role required".to_owned(),
    }
}

async fn denials_are_appended_without_a_revision_and_listed_newest_first(store: Arc<dyn Store>) {
    assert!(store.denials(None, 10).await.expect("denials").is_empty());
    let recorded: Vec<Denial> = (1..=5)
        .map(|n| denial(n, (!n.is_multiple_of(2)).then_some("checkout")))
        .collect();
    for denial in &recorded {
        store
            .record_denial(denial.clone())
            .await
            .expect("record denial");
    }
    assert_eq!(
        store.latest_revision().await.expect("latest revision"),
        0,
        "a denial is not a change"
    );

    let listed = store.denials(None, 100).await.expect("denials");
    assert_eq!(listed.len(), 5);
    assert!(listed.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    for (stored, denial) in listed.iter().rev().zip(&recorded) {
        assert_eq!(
            stored,
            &Denial {
                id: stored.id,
                ..denial.clone()
            }
        );
    }

    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store.denials(before, 2).await.expect("denials page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, listed);
}

// ---- approvals: change requests ------------------------------------------------------------

fn change_request(
    id: &str,
    config: &ConfigId,
    environments: &[&str],
    created_at: DateTime<Utc>,
) -> ChangeRequest {
    ChangeRequest {
        id: id.to_owned(),
        config_id: config.clone(),
        operation: ChangeOperation::Put {
            document: Box::new(ConfigDocument {
                overrides: BTreeMap::from([("production".to_owned(), json!({ "limit": 50 }))]),
                ..document(json!({ "limit": 5, "nested": { "on": true } }))
            }),
        },
        base_version: 1,
        environments: environments.iter().map(|e| (*e).to_owned()).collect(),
        required_approvals: 2,
        approvals: Vec::new(),
        status: ChangeRequestStatus::Pending,
        requested_by: "alice".to_owned(),
        on_behalf_of: Some("deploy-bot".to_owned()),
        message: Some("raise the limit".to_owned()),
        reason: None,
        applied_version: None,
        created_at,
        updated_at: created_at,
    }
}

fn request_write(
    request: &ChangeRequest,
    expected: Option<(ChangeRequestStatus, usize)>,
    kind: &'static str,
) -> ChangeRequestWrite {
    ChangeRequestWrite {
        request: request.clone(),
        expected,
        kind,
        audit: AuditDraft {
            environments: request.environments.clone(),
            ..audit_draft(kind, "bob", "review")
        },
    }
}

/// `request` with one more approval (by `actor`), approved once it has enough.
fn approved_by(request: &ChangeRequest, actor: &str) -> ChangeRequest {
    let at = request.updated_at + chrono::Duration::seconds(1);
    let mut next = request.clone();
    next.approvals.push(Approval {
        actor: actor.to_owned(),
        at,
    });
    if next.approvals.len() >= next.required_approvals as usize {
        next.status = ChangeRequestStatus::Approved;
    }
    next.updated_at = at;
    next
}

/// Stores a request for `config` at `base_version` that needs and has one approval.
async fn approved_request(
    store: &dyn Store,
    id: &str,
    config: &ConfigId,
    base_version: u64,
) -> ChangeRequest {
    let pending = ChangeRequest {
        base_version,
        required_approvals: 1,
        ..change_request(id, config, &["production"], now())
    };
    store
        .put_change_request(request_write(&pending, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("create request");
    let approved = approved_by(&pending, "carol");
    store
        .put_change_request(request_write(
            &approved,
            Some((ChangeRequestStatus::Pending, 0)),
            kind::CHANGE_REQUEST_APPROVED,
        ))
        .await
        .expect("approve request");
    approved
}

fn applying(write: VersionWrite, request: &ChangeRequest) -> VersionWrite {
    VersionWrite {
        applies: Some(AppliedRequest {
            id: request.id.clone(),
            audit: audit_draft("change_request.apply", "dave", "apply"),
        }),
        ..write
    }
}

async fn change_requests_are_inserted_once_and_updated_by_compare_and_set(store: Arc<dyn Store>) {
    let config = config_id("checkout");
    let request = change_request("cr-1", &config, &["production", "eu"], now());
    let created = store
        .put_change_request(request_write(&request, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("create");
    assert_eq!(created.version, request.base_version);
    assert_eq!(created.event.revision, 1);
    assert_eq!(created.event.kind, kind::CHANGE_REQUEST_CREATED);
    assert_eq!(created.event.config_id, "checkout");
    assert_eq!(created.event.version, request.base_version);
    assert_eq!(created.event.at, request.updated_at);
    assert!(created.follow_up.is_none());
    assert_eq!(
        store.change_request("cr-1").await.expect("read"),
        Some(request.clone()),
        "every field round-trips"
    );
    assert!(store.change_request("cr-2").await.expect("read").is_none());

    let error = store
        .put_change_request(request_write(&request, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect_err("the id is taken");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );

    let once = approved_by(&request, "carol");
    let committed = store
        .put_change_request(request_write(
            &once,
            Some((ChangeRequestStatus::Pending, 0)),
            kind::CHANGE_REQUEST_APPROVED,
        ))
        .await
        .expect("first approval");
    assert_eq!(committed.event.revision, 2);
    assert_eq!(committed.event.kind, kind::CHANGE_REQUEST_APPROVED);
    assert_eq!(
        store.change_request("cr-1").await.expect("read"),
        Some(once.clone())
    );

    let before = (
        store.change_request("cr-1").await.expect("read"),
        store.changes_since(0, 100).await.expect("changes"),
        store.audit(all_audit()).await.expect("audit"),
    );
    // A second approver who read the request before the first approval, and one who expects
    // the wrong status.
    let twice = approved_by(&once, "dave");
    for stale in [
        (ChangeRequestStatus::Pending, 0),
        (ChangeRequestStatus::Approved, 1),
    ] {
        let error = store
            .put_change_request(request_write(
                &twice,
                Some(stale),
                kind::CHANGE_REQUEST_APPROVED,
            ))
            .await
            .expect_err("stale expectation");
        assert!(
            matches!(error, Error::ConcurrentModification { .. }),
            "{error:?}"
        );
    }
    let absent = ChangeRequest {
        id: "cr-9".to_owned(),
        ..twice.clone()
    };
    let error = store
        .put_change_request(request_write(
            &absent,
            Some((ChangeRequestStatus::Pending, 1)),
            kind::CHANGE_REQUEST_APPROVED,
        ))
        .await
        .expect_err("no such request");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let after = (
        store.change_request("cr-1").await.expect("read"),
        store.changes_since(0, 100).await.expect("changes"),
        store.audit(all_audit()).await.expect("audit"),
    );
    assert_eq!(after, before, "refused updates write nothing");

    store
        .put_change_request(request_write(
            &twice,
            Some((ChangeRequestStatus::Pending, 1)),
            kind::CHANGE_REQUEST_APPROVED,
        ))
        .await
        .expect("second approval");
    let stored = store
        .change_request("cr-1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored, twice);
    assert_eq!(stored.status, ChangeRequestStatus::Approved);

    let mut rejected = twice.clone();
    rejected.status = ChangeRequestStatus::Rejected;
    rejected.reason = Some("not now".to_owned());
    let error = store
        .put_change_request(request_write(
            &rejected,
            Some((ChangeRequestStatus::Pending, 2)),
            kind::CHANGE_REQUEST_REJECTED,
        ))
        .await
        .expect_err("it is approved now");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );

    let records = store.audit(all_audit()).await.expect("audit");
    let audited: Vec<(u64, &str, &str, Option<u64>)> = records
        .iter()
        .map(|r| {
            (
                r.revision,
                r.action.as_str(),
                r.config_id.as_str(),
                r.version,
            )
        })
        .collect();
    assert_eq!(
        audited,
        [
            (3, kind::CHANGE_REQUEST_APPROVED, "checkout", Some(1)),
            (2, kind::CHANGE_REQUEST_APPROVED, "checkout", Some(1)),
            (1, kind::CHANGE_REQUEST_CREATED, "checkout", Some(1)),
        ]
    );
    assert_eq!(
        records[0].environments,
        ["production".to_owned(), "eu".to_owned()]
    );
}

async fn change_requests_are_listed_newest_first_and_filtered(store: Arc<dyn Store>) {
    let (checkout, search) = (config_id("checkout"), config_id("search"));
    let base = now();
    let at = |secs: i64| base + chrono::Duration::seconds(secs);
    // Two share a creation time: the id breaks the tie (descending).
    let requests = [
        change_request("cr-a", &checkout, &["production"], at(0)),
        change_request("cr-b", &search, &["production", "eu"], at(1)),
        change_request("cr-c", &checkout, &["eu"], at(2)),
        change_request("cr-d", &checkout, &["staging-eu"], at(2)),
        change_request("cr-e", &search, &["eu-west"], at(3)),
    ];
    for request in &requests {
        store
            .put_change_request(request_write(request, None, kind::CHANGE_REQUEST_CREATED))
            .await
            .expect("create");
    }
    let mut cancelled = requests[2].clone();
    cancelled.status = ChangeRequestStatus::Cancelled;
    cancelled.reason = Some("superseded".to_owned());
    cancelled.updated_at = at(10);
    store
        .put_change_request(request_write(
            &cancelled,
            Some((ChangeRequestStatus::Pending, 0)),
            kind::CHANGE_REQUEST_CANCELLED,
        ))
        .await
        .expect("cancel");

    let ids = |query: ChangeRequestQuery| {
        let store = store.clone();
        async move {
            store
                .change_requests(query)
                .await
                .expect("change requests")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let all = ChangeRequestQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        ids(all.clone()).await,
        ["cr-e", "cr-d", "cr-c", "cr-b", "cr-a"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            limit: 2,
            ..all.clone()
        })
        .await,
        ["cr-e", "cr-d"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            status: Some(ChangeRequestStatus::Pending),
            ..all.clone()
        })
        .await,
        ["cr-e", "cr-d", "cr-b", "cr-a"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            status: Some(ChangeRequestStatus::Cancelled),
            ..all.clone()
        })
        .await,
        ["cr-c"]
    );
    // Whole environment names only: "eu" is not "eu-west" nor "staging-eu".
    assert_eq!(
        ids(ChangeRequestQuery {
            environment: Some("eu".to_owned()),
            ..all.clone()
        })
        .await,
        ["cr-c", "cr-b"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            environment: Some("eu".to_owned()),
            limit: 1,
            ..all.clone()
        })
        .await,
        ["cr-c"],
        "the limit applies after the filter"
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            config_id: Some(checkout.clone()),
            ..all.clone()
        })
        .await,
        ["cr-d", "cr-c", "cr-a"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            status: Some(ChangeRequestStatus::Pending),
            environment: Some("production".to_owned()),
            config_id: Some(checkout),
            limit: 100,
        })
        .await,
        ["cr-a"]
    );
    assert!(
        ids(ChangeRequestQuery {
            environment: Some("nowhere".to_owned()),
            ..all
        })
        .await
        .is_empty()
    );
}

async fn applying_an_approved_request_writes_the_version_and_marks_it_applied(
    store: Arc<dyn Store>,
) {
    let id = config_id("checkout");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    let request = approved_request(store.as_ref(), "cr-1", &id, 1).await;
    let revision = store.latest_revision().await.expect("latest revision");

    let write = applying(version_write(&id, json!({ "v": 2 }), 1), &request);
    let (checksum, created_at) = (write.version.checksum.clone(), write.version.created_at);
    let committed = store.append_version(write).await.expect("apply");
    assert_eq!(committed.version, 2);
    assert_eq!(committed.event.revision, revision + 1);
    assert_eq!(committed.event.kind, kind::CONFIG_UPDATED);
    let follow_up = committed.follow_up.clone().expect("a follow-up change");
    assert_eq!(follow_up.revision, revision + 2);
    assert_eq!(follow_up.kind, kind::CHANGE_REQUEST_APPLIED);
    assert_eq!(follow_up.config_id, "checkout");
    assert_eq!(follow_up.version, 2);
    assert_eq!(follow_up.checksum, checksum);
    assert_eq!(follow_up.actor, "dave");
    assert_eq!(follow_up.at, created_at);
    assert_eq!(
        store.changes_since(revision, 10).await.expect("changes"),
        [committed.event.clone(), follow_up]
    );

    let head = store.head(&id).await.expect("head").expect("exists");
    assert_eq!(head.latest.version, 2);
    assert_eq!(head.latest.document.config, json!({ "v": 2 }));
    let applied = store
        .change_request("cr-1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        applied,
        ChangeRequest {
            status: ChangeRequestStatus::Applied,
            applied_version: Some(2),
            updated_at: created_at,
            ..request
        }
    );

    let records = store.audit(all_audit()).await.expect("audit");
    assert_eq!(
        (
            records[0].revision,
            records[0].action.as_str(),
            records[0].version
        ),
        (revision + 2, "change_request.apply", Some(2))
    );
    assert_eq!(
        (records[1].revision, records[1].action.as_str()),
        (revision + 1, "config.put")
    );
}

async fn applying_a_request_that_is_not_approved_is_a_concurrent_modification_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("checkout");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    let pending = change_request("cr-pending", &id, &["production"], now());
    store
        .put_change_request(request_write(&pending, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("create pending");
    let approved = approved_request(store.as_ref(), "cr-approved", &id, 1).await;
    store
        .append_version(applying(
            version_write(&id, json!({ "v": 2 }), 1),
            &approved,
        ))
        .await
        .expect("apply once");
    let absent = ChangeRequest {
        id: "cr-absent".to_owned(),
        ..pending.clone()
    };

    let before = observe(store.as_ref(), &id).await;
    let requests_before = (
        store.change_request("cr-pending").await.expect("read"),
        store.change_request("cr-approved").await.expect("read"),
    );
    // Pending, already applied, and unknown.
    for request in [&pending, &approved, &absent] {
        let error = store
            .append_version(applying(
                version_write(&id, json!({ "v": "lost" }), 2),
                request,
            ))
            .await
            .expect_err("only an approved request applies");
        assert!(
            matches!(error, Error::ConcurrentModification { .. }),
            "{error:?}"
        );
    }
    assert_eq!(observe(store.as_ref(), &id).await, before);
    assert_eq!(before.versions, [2, 1]);
    assert_eq!(
        (
            store.change_request("cr-pending").await.expect("read"),
            store.change_request("cr-approved").await.expect("read"),
        ),
        requests_before
    );
    assert!(
        store
            .change_request("cr-absent")
            .await
            .expect("read")
            .is_none()
    );

    // The version's own rules still come first.
    let fresh = approved_request(store.as_ref(), "cr-fresh", &id, 2).await;
    let error = store
        .append_version(applying(
            version_write(&id, json!({ "v": "lost" }), 1),
            &fresh,
        ))
        .await
        .expect_err("stale expected_live");
    assert!(matches!(error, Error::VersionConflict { .. }), "{error:?}");
    assert_eq!(
        store.change_request("cr-fresh").await.expect("read"),
        Some(fresh),
        "a refused write leaves the request approved"
    );
}

async fn deleting_through_an_approved_request_marks_it_applied_and_only_then(
    store: Arc<dyn Store>,
) {
    let id = config_id("checkout");
    store
        .append_version(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    let v2 = version_write(&id, json!({ "v": 2 }), 1);
    let v2_checksum = v2.version.checksum.clone();
    store.append_version(v2).await.expect("v2");
    let pending = ChangeRequest {
        operation: ChangeOperation::Delete,
        base_version: 2,
        ..change_request("cr-pending", &id, &["production"], now())
    };
    store
        .put_change_request(request_write(&pending, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("create pending");
    let delete_applying = |request: &ChangeRequest| DeleteWrite {
        applies: Some(AppliedRequest {
            id: request.id.clone(),
            audit: audit_draft("change_request.apply", "dave", "apply"),
        }),
        ..delete_write(&id, 2)
    };

    let before = observe(store.as_ref(), &id).await;
    let error = store
        .delete_config(delete_applying(&pending))
        .await
        .expect_err("a pending request does not apply");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );
    assert_eq!(observe(store.as_ref(), &id).await, before);
    assert_eq!(
        store.change_request("cr-pending").await.expect("read"),
        Some(pending)
    );

    let approved = approved_request(store.as_ref(), "cr-approved", &id, 2).await;
    let revision = store.latest_revision().await.expect("latest revision");
    let write = delete_applying(&approved);
    let at = write.at;
    let committed = store.delete_config(write).await.expect("delete");
    assert_eq!(committed.version, 2);
    assert_eq!(committed.event.kind, kind::CONFIG_DELETED);
    assert_eq!(committed.event.revision, revision + 1);
    let follow_up = committed.follow_up.expect("a follow-up change");
    assert_eq!(
        (
            follow_up.revision,
            follow_up.kind.as_str(),
            follow_up.config_id.as_str(),
            follow_up.version,
            follow_up.checksum.as_str(),
            follow_up.at,
        ),
        (
            revision + 2,
            kind::CHANGE_REQUEST_APPLIED,
            "checkout",
            2,
            v2_checksum.as_str(),
            at,
        )
    );
    let head = store.head(&id).await.expect("head").expect("exists");
    assert!(head.deleted);
    let applied = store
        .change_request("cr-approved")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(applied.status, ChangeRequestStatus::Applied);
    assert_eq!(applied.applied_version, Some(2));
    assert_eq!(applied.updated_at, at);
}

/// Only for the read cache: authentication reads `cached_tokens()`, so a create and a revoke
/// through the cache must show there at once, in a new map.
async fn cached_tokens_reflect_creates_and_revokes(store: Arc<CachedStore>) {
    let cached = || store.cached_tokens();
    let empty = cached();
    assert!(empty.is_empty());

    let base = now();
    let token = api_token(1, base, 0);
    store
        .create_token(token_write(&token))
        .await
        .expect("create");
    let created = cached();
    assert_eq!(
        created.get(&token.hash).map(|t| t.as_ref()),
        Some(&token),
        "a create shows at once"
    );
    assert!(empty.is_empty(), "a map handed out never changes");

    let at = base + chrono::Duration::seconds(1);
    store
        .revoke_token(token_revoke(&token.id, at))
        .await
        .expect("revoke");
    let revoked = cached();
    assert_eq!(
        revoked.get(&token.hash).and_then(|t| t.revoked_at),
        Some(at),
        "a revoke shows at once"
    );
    assert!(created[&token.hash].revoked_at.is_none());
    assert_eq!(
        revoked
            .values()
            .map(|t| t.as_ref().clone())
            .collect::<Vec<_>>(),
        store.tokens().await.expect("tokens")
    );
}
