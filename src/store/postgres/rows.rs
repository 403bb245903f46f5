//! What the aggregates share about rows: a document's head as a write sees it, who made a
//! version, JSON columns read and written as text, and reading a query's rows through their row
//! type.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{FromRow, Postgres};

use super::{PostgresStore, db_error};
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

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("stored JSON: {e}")))
}

/// One array parameter (for `unnest`): `field` of every item, in order.
pub(super) fn column<T, U>(items: &[T], field: impl FnMut(&T) -> U) -> Vec<U> {
    items.iter().map(field).collect()
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(Error::internal)
}

impl PostgresStore {
    /// Every row `query` reads (from the pool), each decoded by `decode`, its row type's.
    pub(super) async fn fetch_decoded<R, T>(
        &self,
        query: QueryAs<'_, Postgres, R, PgArguments>,
        decode: impl FnMut(R) -> Result<T>,
    ) -> Result<Vec<T>>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        rows.into_iter().map(decode).collect()
    }

    /// The row `query` reads (from the pool), if any, decoded by `decode`, its row type's.
    pub(super) async fn fetch_one_decoded<R, T>(
        &self,
        query: QueryAs<'_, Postgres, R, PgArguments>,
        decode: impl FnOnce(R) -> Result<T>,
    ) -> Result<Option<T>>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let row = query.fetch_optional(&self.pool).await.map_err(db_error)?;
        row.map(decode).transpose()
    }
}
