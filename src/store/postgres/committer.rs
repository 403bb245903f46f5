//! The committer: one task per store that owns the write path. Writes are queued; the committer
//! takes everything queued (up to `MAX_BATCH`) and commits it through the recipe as one
//! transaction, so writes that arrive while a commit is in flight share the next commit (one
//! lock, one fsync) instead of each queueing for the write lock.
//!
//! The committer keeps its connection between commits that follow each other closely: the pool
//! tests a connection with a round trip each time it lends it and each time it gets it back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::commit::{Operation, commit_batch};
use super::committed_here::CommittedLog;
use super::db_error;
use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;
use crate::core::ports::Committed;

/// Writes per transaction at most: a backend caches 64 subtransaction ids (each write's
/// savepoint takes one); past that, every snapshot taken meanwhile looks them up on disk.
const MAX_BATCH: usize = 64;
/// Writes waiting to be committed; past this, writers wait to be queued.
const QUEUE_CAPACITY: usize = 1024;
/// A connection idle longer than this goes back to the pool, which tests it before the next
/// commit: the database may have closed it or restarted meanwhile, which takes longer than
/// this (a kept connection that died fails its batch with `unavailable`, as a commit cut off
/// by the database would).
const KEEP_IDLE: Duration = Duration::from_millis(50);

struct Queued {
    write: Box<dyn Operation>,
    reply: oneshot::Sender<Result<Committed>>,
    /// The writer's `store.commit` span, for the batch's span.
    span: tracing::Span,
}

pub(super) struct Committer {
    queue: mpsc::Sender<Queued>,
}

impl Committer {
    /// Starts the committer task; it ends once the `Committer` is dropped and the queue drained.
    pub(super) fn start(pool: PgPool, committed: Arc<CommittedLog>) -> Committer {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(pool, receiver, committed));
        Committer { queue }
    }

    /// Queues `write` and waits for its result. A queued write is committed, or not, as a whole
    /// whether or not its caller is still waiting.
    #[tracing::instrument(level = "debug", name = "store.commit", skip_all, fields(db.system = "postgresql"))]
    pub(super) async fn commit(&self, write: Box<dyn Operation>) -> Result<Committed> {
        let (reply, result) = oneshot::channel();
        let span = crate::store::writer_span();
        self.queue
            .send(Queued { write, reply, span })
            .await
            .map_err(|_| Error::internal("the PostgreSQL committer has stopped"))?;
        result.await.map_err(|_| {
            Error::internal("the PostgreSQL commit ended without an answer (a bug: it panicked)")
        })?
    }
}

async fn run(pool: PgPool, mut queue: mpsc::Receiver<Queued>, committed: Arc<CommittedLog>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut kept: Option<(PoolConnection<Postgres>, Instant)> = None;
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let pool = pool.clone();
        let taken = std::mem::take(&mut batch);
        let connection = kept
            .take()
            .filter(|(_, idle_since)| idle_since.elapsed() < KEEP_IDLE)
            .map(|(connection, _)| connection);
        committed.begin();
        let log = committed.clone();
        // A task of its own, so that a panicking write fails its batch, not every later write.
        let batch_done = tokio::spawn(async move {
            let mut connection = connection;
            let writes: Vec<&dyn Operation> = taken.iter().map(|queued| &*queued.write).collect();
            let spans = taken.iter().map(|q| q.span.clone()).collect();
            let transaction = async {
                let connection = match &mut connection {
                    Some(connection) => connection,
                    None => connection.insert(pool.acquire().await.map_err(db_error)?),
                };
                commit_batch(connection, &writes).await
            };
            let outcome = crate::store::commit_observed("postgresql", spans, transaction).await;
            // After a failed transaction the connection is closed, not handed back to the pool:
            // its session may still be inside a transaction sqlx does not count (a BEGIN whose
            // write lock timed out, `begin_write.sql`), and would fail whatever it ran next.
            let connection = connection.and_then(|mut connection| {
                if outcome.is_ok() {
                    return Some(connection);
                }
                connection.close_on_drop();
                None
            });
            if let Ok(results) = &outcome {
                log.keep(changes_of(results));
            }
            log.settle();
            answer(taken, outcome);
            connection
        });
        match batch_done.await {
            Ok(connection) => kept = connection.map(|connection| (connection, Instant::now())),
            Err(error) => {
                committed.settle();
                tracing::error!(%error, "a PostgreSQL commit panicked");
            }
        }
    }
}

/// Every change a committed batch recorded (`Committed::events` of each committed write).
fn changes_of(results: &[Result<Committed>]) -> Vec<ChangeEvent> {
    results
        .iter()
        .flatten()
        .flat_map(Committed::events)
        .cloned()
        .collect()
}

/// Sends every queued write its result: its own, or the transaction's failure.
fn answer(batch: Vec<Queued>, outcome: Result<Vec<Result<Committed>>>) {
    match outcome {
        Ok(results) => {
            for (queued, result) in batch.into_iter().zip(results) {
                let _ = queued.reply.send(result);
            }
        }
        Err(error) => {
            for queued in batch {
                let _ = queued.reply.send(Err(copy_of(&error)));
            }
        }
    }
}

/// The failure of a transaction, once for each of its writes.
fn copy_of(error: &Error) -> Error {
    match error {
        Error::Unavailable { reason } => Error::Unavailable {
            reason: reason.clone(),
        },
        Error::Internal { detail } => Error::Internal {
            detail: detail.clone(),
        },
        other => Error::internal(other),
    }
}
