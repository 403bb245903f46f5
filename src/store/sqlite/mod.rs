//! The embedded default: SQLite in WAL mode with `synchronous=FULL`, so an acknowledged write
//! survives a crash. One writer connection serialises writes: every change goes through the
//! commit recipe in `commit`, which commits concurrent writes together (group commit); readers
//! use their own pool.
//!
//! One file per aggregate implements its port; the SQL lives in `queries/`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::core::error::{Error, Result};
use crate::core::ports::{Database, Store};

mod access;
mod applied;
mod approvals;
mod changelog;
mod commit;
mod deployments;
mod documents;
mod notifications;
mod registry;
mod rows;
mod schemas;
mod secrets;

pub struct SqliteStore {
    reader: SqlitePool,
    /// One connection: writes outside the commit recipe (denials, applied state) and the
    /// committer's transactions take turns on it.
    writer: SqlitePool,
    write_queue: commit::WriteQueue,
}

fn db_error(error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::store_unavailable(error)
        }
        sqlx::Error::Database(ref failure) if failure.code().is_some_and(|c| passing(&c)) => {
            Error::store_unavailable(error)
        }
        other => Error::internal(format!("sqlite: {other}")),
    }
}

/// Whether an SQLite result code (extended or primary) is the file's state rather than the
/// statement's fault, so a later attempt may succeed: busy or locked past the busy timeout
/// (a backup, another process), read-only, I/O error, disk full, cannot open.
fn passing(code: &str) -> bool {
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const READONLY: i64 = 8;
    const IOERR: i64 = 10;
    const FULL: i64 = 13;
    const CANTOPEN: i64 = 14;
    code.parse::<i64>()
        .is_ok_and(|code| [BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN].contains(&(code & 0xff)))
}

impl SqliteStore {
    /// Opens (creating the file and its directory if absent) and migrates the database.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("databaseUrl", format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
            && dir != Path::new("")
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::Unavailable {
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| Error::internal(format!("sqlite migration: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        let write_queue = commit::start_committer(writer.clone());
        Ok(SqliteStore {
            reader,
            writer,
            write_queue,
        })
    }

    pub fn shared(self) -> Arc<dyn Store> {
        Arc::new(self)
    }
}

impl Store for SqliteStore {}

#[async_trait]
impl Database for SqliteStore {
    async fn ping(&self) -> Result<()> {
        // Any failure to answer means not ready, never an internal error.
        sqlx::query(include_str!("queries/ping.sql"))
            .execute(&self.reader)
            .await
            .map_err(Error::store_unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod group_commit_tests;
