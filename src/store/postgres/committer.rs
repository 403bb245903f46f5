//! The committer: one task per store that owns the write path. Writes are queued; the committer
//! takes everything queued (up to `MAX_BATCH`) and commits it through the recipe as one
//! transaction, so writes that arrive while a commit is in flight share the next commit (one
//! lock, one fsync) instead of each queueing for the write lock.
//!
//! A batch begins while the one before it commits: its request for the write lock then waits
//! in the database, which grants it the moment the commit ends, instead of in this process,
//! which would hear of the commit, answer its writers and only then begin the next. Two batches
//! are in flight at most, and the lock keeps their commits in order.
//!
//! The committer keeps its connections between commits that follow each other closely: the
//! pool tests a connection with a round trip each time it lends it and each time it gets it
//! back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use parking_lot::Mutex;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::commit::{Ending, Operation, commit_batch};
use super::db_error;
use crate::core::error::{Error, Result};
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
    pub(super) fn start(pool: PgPool) -> Committer {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(pool, receiver));
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

/// Connections of batches that ended, each with the time it went idle.
type Kept = Arc<Mutex<Vec<(PoolConnection<Postgres>, Instant)>>>;

async fn run(pool: PgPool, mut queue: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let kept: Kept = Arc::default();
    // Resolves once the batch in flight is ending (or has failed).
    let mut in_flight: Option<oneshot::Receiver<()>> = None;
    loop {
        // Writes queue up meanwhile: the next batch takes them all.
        if let Some(ending) = in_flight.take() {
            let _ = ending.await;
        }
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let (ending, ended) = oneshot::channel();
        in_flight = Some(ended);
        let taken = std::mem::take(&mut batch);
        // A task of its own, so that a panicking write fails its batch, not every later write.
        tokio::spawn(commit_in_turn(
            pool.clone(),
            kept.clone(),
            taken,
            Some(ending),
        ));
    }
}

/// Commits one batch on a kept connection (or one from the pool), answers its writers and
/// keeps the connection if the transaction went through.
async fn commit_in_turn(pool: PgPool, kept: Kept, taken: Vec<Queued>, ending: Ending) {
    let connection = {
        let mut kept = kept.lock();
        kept.retain(|(_, idle_since)| idle_since.elapsed() < KEEP_IDLE);
        kept.pop().map(|(connection, _)| connection)
    };
    let batch = async {
        let mut connection = connection;
        let writes: Vec<&dyn Operation> = taken.iter().map(|queued| &*queued.write).collect();
        let spans = taken.iter().map(|q| q.span.clone()).collect();
        let transaction = async {
            let connection = match &mut connection {
                Some(connection) => connection,
                None => connection.insert(pool.acquire().await.map_err(db_error)?),
            };
            commit_batch(connection, &writes, ending).await
        };
        let outcome = crate::store::commit_observed("postgresql", spans, transaction).await;
        // After a failed transaction the pool decides whether the connection still works.
        let connection = connection.filter(|_| outcome.is_ok());
        answer(taken, outcome);
        connection
    };
    match std::panic::AssertUnwindSafe(batch).catch_unwind().await {
        Ok(Some(connection)) => kept.lock().push((connection, Instant::now())),
        Ok(None) => {}
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            tracing::error!(panic = message, "a PostgreSQL commit panicked");
        }
    }
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
