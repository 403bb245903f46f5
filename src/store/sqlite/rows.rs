//! What the aggregates share about rows: a document's head as a write sees it, who made a
//! version, timestamps stored as RFC 3339 text and JSON stored as text, and reading a query's
//! rows through their row type.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::query::QueryAs;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{FromRow, Sqlite};

use super::{SqliteStore, db_error};
use crate::core::error::{Error, Result};
use crate::core::model::Metadata;
use crate::core::ports::HeadRow;
use crate::store::to_u64;

/// A config's or flag's head row inside a write's transaction (flags have no schema: 0).
#[derive(sqlx::FromRow)]
pub(super) struct WriteHeadRow {
    latest_version: i64,
    deleted: bool,
    schema_version: i64,
}

impl WriteHeadRow {
    /// The head a write is checked against: the default (nothing yet) when there is no row.
    pub(super) fn head(row: Option<WriteHeadRow>) -> HeadRow {
        row.map_or_else(HeadRow::default, |row| HeadRow {
            latest: to_u64(row.latest_version),
            deleted: row.deleted,
            schema: to_u64(row.schema_version),
        })
    }
}

/// Who made a stored version (of a config, flag or schema) and why.
pub(super) fn metadata(actor: String, message: Option<String>) -> Metadata {
    Metadata {
        actor,
        message,
        ..Default::default()
    }
}

/// Stored timestamps are UTC with microseconds, so they sort as text.
pub(super) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::internal(format!("stored timestamp {text:?}: {e}")))
}

pub(super) fn parse_optional_time(text: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    text.map(parse_time).transpose()
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("stored JSON: {e}")))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(Error::internal)
}

impl SqliteStore {
    /// Every row `query` reads (from the readers), each decoded by `decode`, its row type's.
    pub(super) async fn fetch_decoded<R, T>(
        &self,
        query: QueryAs<'_, Sqlite, R, SqliteArguments>,
        decode: impl FnMut(R) -> Result<T>,
    ) -> Result<Vec<T>>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let rows = query.fetch_all(&self.reader).await.map_err(db_error)?;
        rows.into_iter().map(decode).collect()
    }

    /// The row `query` reads (from the readers), if any, decoded by `decode`, its row type's.
    pub(super) async fn fetch_one_decoded<R, T>(
        &self,
        query: QueryAs<'_, Sqlite, R, SqliteArguments>,
        decode: impl FnOnce(R) -> Result<T>,
    ) -> Result<Option<T>>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let row = query.fetch_optional(&self.reader).await.map_err(db_error)?;
        row.map(decode).transpose()
    }
}
