//! The commit recipe, written once for every write of every aggregate: begin → check the
//! write's expectations on its head row and write its rows (the aggregate's `Operation`) →
//! claim the change request it applies → record its change and audit record with the next
//! revision → record the follow-up (`change_request.applied`) → commit.
//!
//! Group commit: writes queue for one committer task, which commits every write waiting when it
//! starts a transaction in that one transaction, each write in its own savepoint (its own
//! expectations and result), so concurrent writers share one fsync under `synchronous=FULL`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::rows::{timestamp, to_json};
use super::{SqliteStore, db_error};
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeEvent, ChangeKind, kind};
use crate::core::model::AuditDraft;
use crate::core::ports::{AppliedRequest, Committed, Record, request_not_approved};
use crate::store::{to_i64, to_u64};

pub(super) use crate::store::change::Change;

/// One write of an aggregate: its own part of the recipe.
#[async_trait]
pub(super) trait Operation: Send + Sync + 'static {
    /// Checks the write's expectations against its rows as the transaction sees them and writes
    /// them; says what changed. On error the recipe undoes whatever it wrote.
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>>;

    /// Changes recorded after this one in the same transaction (see `VersionWrite::announce`).
    fn announce(&self) -> &[Record] {
        &[]
    }
}

/// The most writes one transaction commits; later ones wait for the next.
const MAX_BATCH: usize = 64;

/// A write waiting for the committer, and where its result goes.
pub(super) struct QueuedWrite {
    write: Box<dyn Operation>,
    done: oneshot::Sender<Result<Committed>>,
    /// The writer's `store.commit` span, for the batch's span.
    span: tracing::Span,
}

/// Where writes queue for the committer task (which stops when this is dropped).
pub(super) type WriteQueue = mpsc::UnboundedSender<QueuedWrite>;

/// Starts the committer task on the writer pool.
pub(super) fn start_committer(writer: SqlitePool) -> WriteQueue {
    let (queue, queued) = mpsc::unbounded_channel();
    tokio::spawn(run_committer(writer, queued));
    queue
}

impl SqliteStore {
    /// Commits one write through the recipe, together with any others waiting.
    #[tracing::instrument(level = "debug", name = "store.commit", skip_all, fields(db.system = "sqlite"))]
    pub(super) async fn commit(&self, write: impl Operation) -> Result<Committed> {
        let (done, answer) = oneshot::channel();
        let write = Box::new(write);
        let span = crate::store::writer_span();
        self.write_queue
            .send(QueuedWrite { write, done, span })
            .map_err(|_| committer_stopped())?;
        answer.await.map_err(|_| committer_stopped())?
    }
}

fn committer_stopped() -> Error {
    Error::internal("the SQLite committer stopped")
}

/// Takes every queued write (up to `MAX_BATCH`) as one batch, commits it, answers each writer.
async fn run_committer(writer: SqlitePool, mut queued: mpsc::UnboundedReceiver<QueuedWrite>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes: Vec<&dyn Operation> = batch.iter().map(|q| q.write.as_ref()).collect();
        let spans = batch.iter().map(|q| q.span.clone()).collect();
        let results =
            crate::store::commit_observed("sqlite", spans, commit_batch(&writer, &writes)).await;
        drop(writes);
        match results {
            Ok(results) => {
                for (queued, result) in batch.drain(..).zip(results) {
                    let _ = queued.done.send(result);
                }
            }
            Err(error) => {
                for queued in batch.drain(..) {
                    let _ = queued.done.send(Err(batch_failure(&error)));
                }
            }
        }
    }
}

/// What each write of a batch whose transaction failed gets: nothing of it was committed.
fn batch_failure(error: &Error) -> Error {
    match error {
        Error::Unavailable { reason } => Error::Unavailable {
            reason: reason.clone(),
        },
        other => Error::internal(other),
    }
}

/// Commits `writes` in one transaction: each keeps its own expectations and result (a failed
/// write is rolled back to its savepoint, the others go on); revisions are numbered
/// consecutively in the order given. `Err` when the transaction itself fails: then nothing of
/// any write was committed.
async fn commit_batch(
    writer: &SqlitePool,
    writes: &[&dyn Operation],
) -> Result<Vec<Result<Committed>>> {
    let mut tx = writer.begin().await.map_err(db_error)?;
    if let [write] = writes {
        // A write alone needs no savepoint: dropping the transaction on error rolls it back.
        let result = stage(&mut tx, *write).await;
        if result.is_ok() {
            tx.commit().await.map_err(db_error)?;
        }
        return Ok(vec![result]);
    }
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        let mut savepoint = tx.begin().await.map_err(db_error)?;
        let result = stage(&mut savepoint, *write).await;
        match result {
            Ok(_) => savepoint.commit().await.map_err(db_error)?,
            Err(_) => savepoint.rollback().await.map_err(db_error)?,
        }
        results.push(result);
    }
    if results.iter().any(Result::is_ok) {
        tx.commit().await.map_err(db_error)?;
    } else {
        tx.rollback().await.map_err(db_error)?;
    }
    Ok(results)
}

/// One write's part of the transaction: its rows, the request it applies, its change and audit
/// record, the follow-up.
async fn stage(tx: &mut SqliteConnection, write: &dyn Operation) -> Result<Committed> {
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
        let change = Change::from(record);
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
    tx: &mut SqliteConnection,
    applies: &AppliedRequest,
    version: u64,
    at: DateTime<Utc>,
) -> Result<()> {
    let done = sqlx::query(include_str!("queries/change_request_claim.sql"))
        .bind(to_i64(version))
        .bind(timestamp(at))
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
    tx: &mut SqliteConnection,
    change: &Change<'_>,
    kind: ChangeKind,
    audit: &AuditDraft,
) -> Result<ChangeEvent> {
    let at = timestamp(change.at);
    let environments = to_json(&audit.environments)?;
    let details = to_json(&audit.details)?;
    let revision: i64 = sqlx::query_scalar(include_str!("queries/change_insert.sql"))
        .bind(kind.as_str())
        .bind(change.subject)
        .bind(to_i64(change.version))
        .bind(&change.checksum)
        .bind(&audit.actor)
        .bind(&audit.message)
        .bind(&at)
        .bind(&environments)
        .bind(&details)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query(include_str!("queries/audit_insert.sql"))
        .bind(revision)
        .bind(&at)
        .bind(&audit.actor)
        .bind(audit.action)
        .bind(change.subject)
        .bind(to_i64(change.version))
        .bind(&environments)
        .bind(&audit.message)
        .bind(&audit.on_behalf_of)
        .bind(&details)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(change.event(to_u64(revision), kind, audit))
}
