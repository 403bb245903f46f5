//! The commit recipe, written once for every write of every aggregate: take the write lock →
//! check the write's expectations on its head row and write its rows (the aggregate's
//! `Operation`) → claim the change request it applies → record its change and audit record with
//! the next revision → record the follow-up (`change_request.applied`) → notify → commit.
//! A batch of writes (see `committer`) runs the same recipe in one transaction: first without
//! savepoints (one round trip per write saved), and if any write fails, once more with each
//! write inside its own savepoint.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool};

use super::{CHANGES_CHANNEL, PostgresStore, db_error, rows::to_json};
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, ChangeKind, kind};
use crate::core::model::AuditDraft;
use crate::core::ports::{AppliedRequest, Committed, Record, request_not_approved};
use crate::store::{change_event, to_i64, to_u64};

/// Advisory lock key that serialises writers across replicas.
const WRITE_LOCK_KEY: i64 = 0x5375_6d6d_6974; // "Summit"

/// What a write changed, for the change log and the audit.
pub(super) struct Change<'a> {
    pub kind: ChangeKind,
    /// The config id, flag key or token id the change is about.
    pub subject: &'a str,
    /// The version the write made (or, for a delete, removed).
    pub version: u64,
    pub checksum: String,
    pub audit: &'a AuditDraft,
    pub at: DateTime<Utc>,
    /// The approved change request this write applies.
    pub applies: Option<&'a AppliedRequest>,
}

/// One write of an aggregate: its own part of the recipe.
#[async_trait]
pub(super) trait Operation: Send + Sync + 'static {
    /// Checks the write's expectations against its rows as the transaction sees them (under the
    /// write lock) and writes them; says what changed. On error the recipe undoes whatever it
    /// wrote.
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>>;

    /// Changes recorded after this one in the same transaction (see `VersionWrite::announce`).
    fn announce(&self) -> &[Record] {
        &[]
    }
}

impl PostgresStore {
    /// Commits one write through the recipe, together with whatever other writes are queued
    /// when the committer gets to it.
    pub(super) async fn commit(&self, write: impl Operation) -> Result<Committed> {
        self.committer.commit(Box::new(write)).await
    }
}

/// Commits `writes` in one transaction: each write keeps its own expectations and result (a
/// failed write is rolled back, the others go on), revisions are numbered consecutively in the
/// order given. `Err` when the transaction itself fails: then nothing of any write was committed.
pub(super) async fn commit_batch(
    pool: &PgPool,
    writes: &[&dyn Operation],
) -> Result<Vec<Result<Committed>>> {
    if writes.len() > 1 {
        // Usually every write's expectations hold: then savepoints are round trips for nothing.
        // A write may fail after writing some of its rows, so a failure anywhere undoes the
        // whole attempt and the batch is committed again with each write isolated.
        if let Some(results) = commit_unless_one_fails(pool, writes).await? {
            return Ok(results);
        }
    }
    commit_isolated(pool, writes).await
}

/// The write lock, taken first by every transaction that writes.
async fn lock(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query(include_str!("queries/write_lock.sql"))
        .bind(WRITE_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(tx)
}

/// Commits every write, or (`None`) nothing at all as soon as one fails.
async fn commit_unless_one_fails(
    pool: &PgPool,
    writes: &[&dyn Operation],
) -> Result<Option<Vec<Result<Committed>>>> {
    let mut tx = lock(pool).await?;
    let mut committed = Vec::with_capacity(writes.len());
    for write in writes {
        match stage(&mut tx, *write).await {
            Ok(write) => committed.push(write),
            Err(_) => {
                tx.rollback().await.map_err(db_error)?;
                return Ok(None);
            }
        }
    }
    notify_and_commit(tx, committed.last().map(newest_revision)).await?;
    Ok(Some(committed.into_iter().map(Ok).collect()))
}

/// Commits `writes`, each inside its own savepoint when there are several.
async fn commit_isolated(
    pool: &PgPool,
    writes: &[&dyn Operation],
) -> Result<Vec<Result<Committed>>> {
    let mut tx = lock(pool).await?;
    // A write alone needs no savepoint: if it fails, the transaction is rolled back.
    let mut savepoint = (writes.len() > 1).then_some(Savepoint::None);
    let mut results = Vec::with_capacity(writes.len());
    let mut newest = None;
    for write in writes {
        if let Some(state) = savepoint {
            state.enter(&mut tx).await?;
        }
        let result = stage(&mut tx, *write).await;
        match &result {
            Ok(committed) => {
                newest = Some(newest_revision(committed));
                savepoint = savepoint.map(|_| Savepoint::Used);
            }
            Err(_) => {
                if savepoint.is_some() {
                    savepoint = Some(Savepoint::rollback(&mut tx).await?);
                }
            }
        }
        results.push(result);
    }
    notify_and_commit(tx, newest).await?;
    Ok(results)
}

/// The last revision a committed write recorded.
fn newest_revision(committed: &Committed) -> u64 {
    committed
        .announced
        .last()
        .or(committed.follow_up.as_ref())
        .unwrap_or(&committed.event)
        .revision
}

/// Commits, announcing revision `newest` to the other replicas; with no revision (every write
/// failed its checks) there is nothing to commit.
async fn notify_and_commit(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    newest: Option<u64>,
) -> Result<()> {
    let Some(newest) = newest else {
        return tx.rollback().await.map_err(db_error);
    };
    sqlx::query(include_str!("queries/notify.sql"))
        .bind(CHANGES_CHANNEL)
        .bind(newest.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

/// The savepoint isolating each write of a batch from the others.
#[derive(Clone, Copy)]
enum Savepoint {
    /// None taken yet.
    None,
    /// Taken, and nothing written since (a failed write was rolled back to it).
    Clean,
    /// Taken, and a write succeeded after it.
    Used,
}

impl Savepoint {
    /// Makes sure a clean savepoint precedes the next write (one round trip at most).
    async fn enter(self, tx: &mut PgConnection) -> Result<()> {
        let statement = match self {
            Savepoint::None => "SAVEPOINT write",
            Savepoint::Used => "RELEASE SAVEPOINT write; SAVEPOINT write",
            Savepoint::Clean => return Ok(()),
        };
        sqlx::raw_sql(statement)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn rollback(tx: &mut PgConnection) -> Result<Savepoint> {
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT write")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Savepoint::Clean)
    }
}

/// One write's part of the transaction, after the lock: its rows, the request it applies, its
/// change and audit record, the follow-up.
async fn stage(tx: &mut PgConnection, write: &dyn Operation) -> Result<Committed> {
    let change = write.apply(tx).await?;
    if let Some(applies) = change.applies {
        claim_request(tx, applies, change.version, change.at).await?;
    }
    let event = record_change(tx, &change, change.kind, change.audit).await?;
    let follow_up = match change.applies {
        Some(applies) => {
            let applied = kind::CHANGE_REQUEST_APPLIED;
            Some(record_change(tx, &change, applied, &applies.audit).await?)
        }
        None => None,
    };
    let mut announced = Vec::with_capacity(write.announce().len());
    for record in write.announce() {
        let change = super::changelog::as_change(record);
        announced.push(record_change(tx, &change, change.kind, change.audit).await?);
    }
    Ok(Committed {
        version: change.version,
        event,
        follow_up,
        announced,
    })
}

/// Marks the change request a write applies as applied as `version`, if it is still approved
/// (else nothing may be written).
async fn claim_request(
    tx: &mut PgConnection,
    applies: &AppliedRequest,
    version: u64,
    at: DateTime<Utc>,
) -> Result<()> {
    let done = sqlx::query(include_str!("queries/change_request_claim.sql"))
        .bind(to_i64(version))
        .bind(at)
        .bind(&applies.id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    if done.rows_affected() == 0 {
        return Err(request_not_approved(&applies.id));
    }
    Ok(())
}

/// Records `kind` about `change`'s subject with the next revision, and its audit record.
async fn record_change(
    tx: &mut PgConnection,
    change: &Change<'_>,
    kind: ChangeKind,
    audit: &AuditDraft,
) -> Result<ChangeEvent> {
    let revision: i64 = sqlx::query_scalar(include_str!("queries/change_insert.sql"))
        .bind(kind.as_str())
        .bind(change.subject)
        .bind(to_i64(change.version))
        .bind(&change.checksum)
        .bind(&audit.actor)
        .bind(&audit.message)
        .bind(change.at)
        .bind(audit.action)
        .bind(to_json(&audit.environments)?)
        .bind(&audit.on_behalf_of)
        .bind(to_json(&audit.details)?)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(change_event(
        to_u64(revision),
        kind,
        change.subject,
        change.version,
        &change.checksum,
        audit,
        change.at,
    ))
}
