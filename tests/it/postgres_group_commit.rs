//! Group commit on PostgreSQL: writes queued while a commit is in flight are committed together
//! in one transaction, each keeping its own expectations and its own result, with gap-free
//! revisions in commit order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};
use summit_config::core::checksum::checksum;
use summit_config::core::error::Error;
use summit_config::core::ids::ConfigId;
use summit_config::core::model::{AuditDraft, ConfigDocument, Metadata, NewVersion};
use summit_config::core::ports::{
    AppliedRequest, AuditQuery, ChangeLog, Committed, ConfigWrite, DeleteWrite, Documents,
    NotificationStore, SchemaStore, SchemaWrite, VersionWrite,
};
use summit_config::core::service::now;
use summit_config::core::versioned::Document;
use summit_config::store::PostgresStore;
use summit_config::store::postgres::CHANGES_CHANNEL;
use tokio::task::JoinHandle;

use crate::common::postgres;
use crate::conformance::notifications::{put, webhook};

fn id(text: &str) -> ConfigId {
    ConfigId::parse(text).unwrap()
}

fn audit(action: &'static str) -> AuditDraft {
    AuditDraft {
        actor: "alice".to_owned(),
        action,
        environments: vec!["*".to_owned()],
        message: Some("group commit".to_owned()),
        on_behalf_of: None,
        details: Default::default(),
    }
}

fn version_write(config_id: &str, expected_live: u64) -> ConfigWrite {
    let config = json!({"owner": config_id, "expected": expected_live});
    VersionWrite {
        version: NewVersion {
            id: id(config_id),
            checksum: checksum(&config),
            document: ConfigDocument {
                config,
                overrides: BTreeMap::new(),
                canary: None,
                ab_test: None,
            },
            metadata: Metadata {
                actor: "alice".to_owned(),
                ..Default::default()
            },
            created_at: now(),
            rollback_of: None,
        },
        expected_live,
        expected_schema: 0,
        expected_number: None,
        audit: audit("config.put"),
        applies: None,
        announce: Vec::new(),
    }
}

fn schema_write(config_id: &str, expected_live: u64) -> SchemaWrite {
    let schema = json!({"type": "object"});
    SchemaWrite {
        config_id: id(config_id),
        checksum: checksum(&schema),
        schema,
        metadata: Metadata {
            actor: "alice".to_owned(),
            ..Default::default()
        },
        created_at: now(),
        expected_schema: 0,
        expected_live,
        audit: audit("schema.put"),
    }
}

async fn open() -> Option<(Arc<PostgresStore>, String)> {
    let url = postgres::test_database_url().await?;
    let store = PostgresStore::open(&url)
        .await
        .expect("postgres store opens");
    Some((Arc::new(store), url))
}

/// Holds the committer inside a commit: writes `plug` once, then locks its head row from
/// another connection and starts a second write to it, which waits for the row. Everything
/// queued until `release` is committed in the next batch.
struct Plug {
    blocker: PgConnection,
    write: tokio::task::JoinHandle<Result<u64, Error>>,
}

impl Plug {
    async fn insert(store: &Arc<PostgresStore>, url: &str) -> Plug {
        store
            .configs()
            .append(version_write("plug", 0))
            .await
            .unwrap();
        let mut blocker = PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql("BEGIN; SELECT 1 FROM configs WHERE config_id = 'plug' FOR UPDATE")
            .execute(&mut blocker)
            .await
            .unwrap();
        let writer = store.clone();
        let write = tokio::spawn(async move {
            let committed = writer.configs().append(version_write("plug", 1)).await?;
            Ok(committed.event.revision)
        });
        // Until the committer waits for the row lock.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Plug { blocker, write }
    }

    /// Lets the plugged commit finish; returns its revision.
    async fn release(mut self) -> u64 {
        sqlx::raw_sql("COMMIT")
            .execute(&mut self.blocker)
            .await
            .unwrap();
        self.write
            .await
            .unwrap()
            .expect("the plugged write commits")
    }
}

/// Starts `write`; it is queued for the committer at once.
fn queue(store: &Arc<PostgresStore>, write: ConfigWrite) -> JoinHandle<Result<Committed, Error>> {
    let store = store.clone();
    tokio::spawn(async move { store.configs().append(write).await })
}

/// Every revision in the change log, in order.
async fn revisions(store: &PostgresStore) -> Vec<u64> {
    let changes = store.changes_since(0, 1000).await.unwrap();
    changes.iter().map(|change| change.revision).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_each_get_their_own_version_and_gap_free_revisions() {
    let Some((store, _url)) = open().await else {
        return;
    };
    let writes = (0..32).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let config_id = format!("cfg-{n:02}");
            let committed = store.configs().append(version_write(&config_id, 0)).await;
            (config_id, committed.unwrap())
        })
    });
    let mut committed = Vec::new();
    for write in futures::future::join_all(writes).await {
        committed.push(write.unwrap());
    }
    let mut answered: Vec<u64> = committed.iter().map(|(_, c)| c.event.revision).collect();
    answered.sort_unstable();
    assert_eq!(answered, (1..=32).collect::<Vec<_>>());
    assert_eq!(revisions(&store).await, answered);
    for (config_id, write) in &committed {
        assert_eq!(write.version, 1);
        assert_eq!(&write.event.config_id, config_id);
        let head = store.configs().head(&id(config_id)).await.unwrap().unwrap();
        assert_eq!(head.latest.checksum, write.event.checksum);
    }
    let audit = store
        .audit(AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_a_commit_commit_together_and_a_failed_expectation_fails_only_its_write()
 {
    let Some((store, url)) = open().await else {
        return;
    };
    let mut listener = PgListener::connect(&url).await.unwrap();
    listener.listen(CHANGES_CHANNEL).await.unwrap();
    let plug = Plug::insert(&store, &url).await;

    // Queued while the plug's commit waits: two writes race for version 1 of `twin`, a delete
    // of a config that does not exist, and writes that cannot fail (one of them a schema).
    let spawn_write = |write: ConfigWrite| queue(&store, write);
    let twins = [
        spawn_write(version_write("twin", 0)),
        spawn_write(version_write("twin", 0)),
    ];
    let plain: Vec<_> = (0..6)
        .map(|n| spawn_write(version_write(&format!("plain-{n}"), 0)))
        .collect();
    let absent = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .configs()
                .delete(DeleteWrite {
                    id: id("absent"),
                    expected_live: 0,
                    audit: audit("config.delete"),
                    at: now(),
                    applies: None,
                    announce: Vec::new(),
                })
                .await
        })
    };
    let schema = {
        let store = store.clone();
        tokio::spawn(async move { store.put_schema(schema_write("schema-only", 0)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plug.release().await, 2);

    let mut twin_results = Vec::new();
    for twin in twins {
        twin_results.push(twin.await.unwrap());
    }
    let (won, lost): (Vec<_>, Vec<_>) = twin_results.into_iter().partition(Result::is_ok);
    assert_eq!(won.len(), 1, "exactly one of two writes expecting 0 wins");
    assert!(matches!(
        lost[0],
        Err(Error::VersionConflict {
            expected: 0,
            actual: 1
        })
    ));
    for write in plain {
        assert_eq!(write.await.unwrap().unwrap().version, 1);
    }
    assert!(matches!(
        absent.await.unwrap(),
        Err(Error::NotFound {
            resource: "config",
            ..
        })
    ));
    assert_eq!(schema.await.unwrap().unwrap().version, 1);
    let committed = 2 + 1 + 6 + 1;
    // Gap-free and in order, whatever failed between the writes that succeeded.
    assert_eq!(
        revisions(&store).await,
        (1..=committed as u64).collect::<Vec<_>>()
    );

    // One transaction per commit, one notification each: the plug's two, then the batch's.
    let mut payloads = Vec::new();
    while let Ok(Ok(notification)) =
        tokio::time::timeout(Duration::from_millis(500), listener.recv()).await
    {
        payloads.push(notification.payload().to_owned());
    }
    assert_eq!(payloads, ["1", "2", committed.to_string().as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_write_whose_caller_went_away_is_still_committed_whole() {
    let Some((store, url)) = open().await else {
        return;
    };
    let plug = Plug::insert(&store, &url).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        store.configs().append(version_write("abandoned", 0)),
    )
    .await;
    assert!(abandoned.is_err(), "the write waits behind the plug");
    plug.release().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while revisions(&store).await.len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(revisions(&store).await, [1, 2, 3]);
    let head = store
        .configs()
        .head(&id("abandoned"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.latest.version, 1);
    let audit = store
        .audit(AuditQuery {
            subject: Some(summit_config::core::ports::AuditSubject::Config(id(
                "abandoned",
            ))),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].revision, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failing_after_writing_its_version_leaves_nothing_of_it_and_the_batch_commits() {
    let Some((store, url)) = open().await else {
        return;
    };
    let plug = Plug::insert(&store, &url).await;
    // Applies a change request that does not exist: its version row is written before the
    // claim finds no approved request, so only a rollback removes it.
    let claiming = queue(
        &store,
        VersionWrite {
            applies: Some(AppliedRequest {
                id: "no-such-request".to_owned(),
                audit: audit("change_request.applied"),
            }),
            ..version_write("claiming", 0)
        },
    );
    let plain: Vec<_> = (0..3)
        .map(|n| queue(&store, version_write(&format!("plain-{n}"), 0)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plug.release().await, 2);

    assert!(matches!(
        claiming.await.unwrap(),
        Err(Error::ConcurrentModification { .. })
    ));
    for write in plain {
        assert_eq!(write.await.unwrap().unwrap().version, 1);
    }
    assert!(
        store
            .configs()
            .head(&id("claiming"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .configs()
            .version(&id("claiming"), 1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(revisions(&store).await, [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_created_in_a_batch_hears_only_the_changes_after_its_own() {
    let Some((store, url)) = open().await else {
        return;
    };
    let plug = Plug::insert(&store, &url).await;
    let spawn_write = |config_id: &str| queue(&store, version_write(config_id, 0));
    // Queued in this order behind the plug, so committed in one batch in this order.
    let before = spawn_write("before-hook");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let created = {
        let store = store.clone();
        tokio::spawn(async move { store.put_webhook(put(webhook("hook"), None)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = spawn_write("after-hook");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plug.release().await, 2);

    let before = before.await.unwrap().unwrap().event.revision;
    let created = created.await.unwrap().unwrap().event.revision;
    let after = after.await.unwrap().unwrap().event.revision;
    assert_eq!([before, created, after], [3, 4, 5]);
    let webhooks = store.webhooks().await.unwrap();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0].since_revision, created - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reading_the_change_log_that_fails_after_a_failed_write_keeps_the_batch_whole() {
    let Some((store, url)) = open().await else {
        return;
    };
    store
        .put_webhook(put(webhook("taken"), None))
        .await
        .unwrap();
    let plug = Plug::insert(&store, &url).await;
    let spawn_write = |config_id: &str| queue(&store, version_write(config_id, 0));
    // In this order: a write that commits, one that fails (so the batch is committed with
    // savepoints), a webhook create that records the first write's change before it and then
    // fails (its id is taken), and a write that commits.
    let first = spawn_write("first");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let conflict = spawn_write("first");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taken = {
        let store = store.clone();
        tokio::spawn(async move { store.put_webhook(put(webhook("taken"), None)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let last = spawn_write("last");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plug.release().await, 3);

    assert_eq!(first.await.unwrap().unwrap().event.revision, 4);
    assert!(conflict.await.unwrap().is_err());
    assert!(taken.await.unwrap().is_err());
    assert_eq!(last.await.unwrap().unwrap().event.revision, 5);
    assert_eq!(revisions(&store).await, [1, 2, 3, 4, 5]);
    let changes = store.changes_since(3, 10).await.unwrap();
    assert_eq!(changes[0].config_id, "first");
    assert_eq!(changes[1].config_id, "last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_writes_of_different_configs_in_one_batch_keep_their_own_rows_whatever_their_heads()
{
    let Some((store, url)) = open().await else {
        return;
    };
    // Heads of every shape: one live at version 1, one deleted at version 1, none for the rest.
    store
        .configs()
        .append(version_write("live", 0))
        .await
        .unwrap();
    store
        .configs()
        .append(version_write("gone", 0))
        .await
        .unwrap();
    store
        .configs()
        .delete(DeleteWrite {
            id: id("gone"),
            expected_live: 1,
            audit: audit("config.delete"),
            at: now(),
            applies: None,
            announce: Vec::new(),
        })
        .await
        .unwrap();
    let plug = Plug::insert(&store, &url).await;

    // Queued while the plug's commit waits, so they are one batch: each with its own message
    // (or none) and one a rollback, to show no column is taken from a neighbour.
    let mut live = version_write("live", 1);
    live.version.metadata.message = Some("the live one".to_owned());
    live.version.rollback_of = Some(1);
    let fresh: Vec<_> = (0..5)
        .map(|n| {
            let mut write = version_write(&format!("fresh-{n}"), 0);
            write.version.metadata.message = (n % 2 == 0).then(|| format!("fresh {n}"));
            write
        })
        .collect();
    let mut writes = vec![live, version_write("gone", 0)];
    writes.extend(fresh);
    let sent = writes.clone();
    let queued: Vec<_> = writes
        .into_iter()
        .map(|write| queue(&store, write))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plug.release().await, 5);

    for (write, sent) in queued.into_iter().zip(sent) {
        let config_id = sent.version.id.as_str();
        // A fresh config's first version; the others' second.
        let number = if config_id.starts_with("fresh") { 1 } else { 2 };
        let committed = write.await.unwrap().unwrap();
        assert_eq!(committed.version, number, "{config_id}");
        assert_eq!(committed.event.config_id, config_id);
        let head = store
            .configs()
            .head(&sent.version.id)
            .await
            .unwrap()
            .unwrap();
        assert!(!head.deleted, "{config_id}");
        let stored = &head.latest;
        assert_eq!(stored.version, number, "{config_id}");
        assert_eq!(stored.document.config["owner"], config_id);
        assert_eq!(stored.checksum, sent.version.checksum, "{config_id}");
        assert_eq!(
            stored.metadata.message, sent.version.metadata.message,
            "{config_id}"
        );
        assert_eq!(stored.rollback_of, sent.version.rollback_of, "{config_id}");
    }
    // The plug's two commits (after three setup revisions), then the batch's seven.
    assert_eq!(revisions(&store).await, (1..=12).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_last_write_failed_after_recording_the_others_still_announces_its_newest_revision()
 {
    let Some((store, url)) = open().await else {
        return;
    };
    let mut listener = PgListener::connect(&url).await.unwrap();
    listener.listen(CHANGES_CHANNEL).await.unwrap();
    store
        .put_webhook(put(webhook("taken"), None))
        .await
        .unwrap();
    let plug = Plug::insert(&store, &url).await;
    // A write that commits, then a webhook create that records that write's change before it
    // and fails (its id is taken): nothing is left to record at the end of the transaction,
    // which must still announce the first write's revision.
    let first = queue(&store, version_write("first", 0));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taken = {
        let store = store.clone();
        tokio::spawn(async move { store.put_webhook(put(webhook("taken"), None)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plug.release().await, 3);
    assert_eq!(first.await.unwrap().unwrap().event.revision, 4);
    assert!(taken.await.unwrap().is_err());

    let mut payloads = Vec::new();
    while let Ok(Ok(notification)) =
        tokio::time::timeout(Duration::from_millis(500), listener.recv()).await
    {
        payloads.push(notification.payload().to_owned());
    }
    assert_eq!(payloads, ["1", "2", "3", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_record_reads_its_details_from_its_change_which_cannot_be_changed() {
    let Some((store, url)) = open().await else {
        return;
    };
    let first = version_write("detailed", 0);
    let mut second = version_write("detailed", 1);
    second.audit.details = second
        .version
        .document
        .describe(Some((1, &first.version.document)))
        .unwrap()
        .details;
    store.configs().append(first).await.unwrap();
    store.configs().append(second).await.unwrap();
    let audit = store
        .audit(AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let changes = store.changes_since(0, 10).await.unwrap();
    assert_eq!(audit.len(), 2);
    // Newest first; the second version's patch replaces the expected live version.
    assert_eq!(audit[0].revision, 2);
    assert_eq!(
        serde_json::to_value(&audit[0].details).unwrap(),
        serde_json::to_value(&changes[1].details).unwrap()
    );
    assert!(
        serde_json::to_string(&audit[0].details)
            .unwrap()
            .contains("/config/expected"),
        "{:?}",
        audit[0].details
    );

    // Stored once: in the change log, not in the audit row.
    let mut connection = PgConnection::connect(&url).await.unwrap();
    let copies: i64 = sqlx::query_scalar("SELECT count(*) FROM audit WHERE details IS NOT NULL")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(copies, 0);
    for statement in [
        "UPDATE changes SET details = '{}' WHERE revision = 2",
        "DELETE FROM changes WHERE revision = 2",
    ] {
        let refused = sqlx::raw_sql(statement)
            .execute(&mut connection)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("append-only"),
            "{statement}: {refused}"
        );
    }
}

/// A batch whose write lock times out (another replica held it past `lock_timeout`) fails with
/// `unavailable` and leaves no connection behind inside the aborted transaction: the reads and
/// writes after it, over every connection the pool has, all work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_timeout_fails_its_batch_and_leaves_every_connection_usable() {
    let Some((store, url)) = open().await else {
        return;
    };
    store
        .configs()
        .append(version_write("before", 0))
        .await
        .unwrap();
    // The advisory lock every commit takes (`begin_write.sql`), held as another replica would.
    const WRITE_LOCK: i64 = 0x5375_6d6d_6974;
    let mut holder = PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(WRITE_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    let refused = store.configs().append(version_write("timed-out", 0)).await;
    assert!(
        matches!(refused, Err(Error::Unavailable { .. })),
        "a write that cannot take the lock in time is unavailable: {refused:?}"
    );
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(WRITE_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    // Eight readers at once, five reads each: the pool lends every connection it has, the one
    // the failed batch used included, several times over.
    let readers = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                let versions = store.configs().versions(&id("before"), None, 10).await;
                assert_eq!(versions.expect("a read after the lock timeout").len(), 1);
            }
        })
    });
    for reader in readers.collect::<Vec<_>>() {
        reader.await.unwrap();
    }
    for n in 0..5 {
        store
            .configs()
            .append(version_write(&format!("after-{n}"), 0))
            .await
            .expect("a write after the lock timeout");
    }
    assert_eq!(
        store
            .configs()
            .head(&id("timed-out"))
            .await
            .unwrap()
            .map(|h| h.deleted),
        None,
        "nothing of the timed-out write was committed"
    );
}
