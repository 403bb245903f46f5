//! The production backend: PostgreSQL, shared by any number of replicas.
//!
//! Every write goes through one commit recipe (`commit`): it takes one transaction-scoped
//! advisory lock and numbers its revisions under it, so revisions are gap-free and commit in
//! order (a reader that sees revision N has seen all below it), and notifies `summit_changes` in
//! the same transaction. One committer task per store runs the recipe for all writes queued
//! meanwhile at once (group commit: one transaction, one fsync, each write with its own
//! expectations and result). A background listener turns notifications into wake-ups for
//! `wait_for_change`; replicas catch up from the change log, so a lost notification or
//! connection costs latency, never an event.
//!
//! One file per aggregate implements its port; the SQL lives in `queries/`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use tokio::sync::Notify;

use crate::core::error::{Error, Result};
use crate::core::ports::{CommittedHere, Database, Store};

mod access;
mod applied;
mod approvals;
mod changelog;
mod commit;
mod committed_here;
mod committer;
mod deployments;
mod documents;
mod notifications;
mod registry;
mod rows;
mod schemas;
mod secrets;

/// Channel every committed change is announced on (payload: the newest revision committed).
pub const CHANGES_CHANNEL: &str = "summit_changes";
/// Advisory lock key of the duties lease (one replica runs sweeps).
const DUTY_LOCK_KEY: i64 = 0x0053_756d_6d69_7401;

pub struct PostgresStore {
    pool: PgPool,
    /// Every write goes through it (group commit).
    committer: committer::Committer,
    /// This replica's committed changes, until its follower has them.
    committed: Arc<committed_here::CommittedLog>,
    changed: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
    /// The connection holding the duties lease, while this replica holds it.
    leader: tokio::sync::Mutex<Option<PgConnection>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn db_error(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Error::store_unavailable(error),
        // 08: connection exceptions; 57P01-57P03: shutting down, crashed or starting; 57014:
        // statement timeout; 55P03: lock timeout; 53: out of resources (e.g. connections);
        // 25006: read-only (a standby during failover).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08")
                    || c.starts_with("57P")
                    || c.starts_with("53")
                    || c == "57014"
                    || c == "55P03"
                    || c == "25006"
            }) =>
        {
            Error::store_unavailable(error)
        }
        _ => Error::internal(format!("postgres: {error}")),
    }
}

impl PostgresStore {
    /// Connects, runs the migrations, and starts listening for changes.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("databaseUrl", format!("invalid PostgreSQL URL: {e}")))?
            .application_name("summit-config")
            // A database that stops answering must fail calls, not hang them: bounded
            // statements, lock waits (the write lock) and idle transactions.
            .options([
                ("statement_timeout", "10s"),
                ("lock_timeout", "5s"),
                ("idle_in_transaction_session_timeout", "30s"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Fail fast when the database is gone: callers get 503, reads keep the cache.
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        migrate(&pool).await?;
        let changed = Arc::new(Notify::new());
        let committed = Arc::new(committed_here::CommittedLog::default());
        let listener = tokio::spawn(listen(pool.clone(), changed.clone(), committed.clone()));
        Ok(PostgresStore {
            committer: committer::Committer::start(pool.clone(), committed.clone()),
            committed,
            pool,
            changed,
            listener,
            leader: tokio::sync::Mutex::new(None),
        })
    }
}

/// Runs the PostgreSQL migrations (also `summit-config migrate`).
pub async fn migrate(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("./migrations/postgres")
        .run(pool)
        .await
        .map_err(|e| Error::internal(format!("postgres migration: {e}")))
}

/// Wakes `wait_for_change` (one waiter: the follower; a wake-up with nobody waiting is kept for
/// its next wait) on every notification, and after every reconnect (a notification
/// may have been missed while the connection was down). Each notification's revision is
/// noted for `committed_here`.
async fn listen(pool: PgPool, changed: Arc<Notify>, committed: Arc<committed_here::CommittedLog>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(CHANGES_CHANNEL).await.is_ok() {
                    changed.notify_one();
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => {
                                if let Ok(revision) = notification.payload().parse() {
                                    committed.announced(revision);
                                }
                                changed.notify_one();
                            }
                            Ok(None) => changed.notify_one(), // reconnected: catch up
                            Err(error) => {
                                tracing::debug!(%error, "change listener lost its connection");
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "change listener cannot connect"),
        }
        changed.notify_one();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl Store for PostgresStore {}

#[async_trait]
impl Database for PostgresStore {
    /// The lease is a session-level advisory lock on a connection kept out of the pool: it is
    /// released when this process (or its connection) dies.
    async fn lead_duties(&self) -> Result<bool> {
        let mut held = self.leader.lock().await;
        if let Some(connection) = held.as_mut() {
            if sqlx::query(include_str!("queries/ping.sql"))
                .execute(&mut *connection)
                .await
                .is_ok()
            {
                return Ok(true);
            }
            *held = None;
        }
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        let taken: bool = sqlx::query_scalar(include_str!("queries/duty_lease.sql"))
            .bind(DUTY_LOCK_KEY)
            .fetch_one(&mut *connection)
            .await
            .map_err(db_error)?;
        // The lease is the session's: its connection leaves the pool. One that did not get the
        // lease holds nothing and goes back (not closed, as replicas without the lease ask
        // every second, in several loops).
        if taken {
            *held = Some(connection.detach());
        }
        Ok(taken)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query(include_str!("queries/ping.sql"))
            .execute(&self.pool)
            .await
            .map_err(Error::store_unavailable)?;
        Ok(())
    }

    fn shared_by_replicas(&self) -> bool {
        true
    }

    async fn wait_for_change(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
    }

    async fn committed_here(&self, revision: u64, limit: u32) -> Option<CommittedHere> {
        self.committed.after(revision, limit).await
    }
}
