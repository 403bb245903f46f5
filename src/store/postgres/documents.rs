//! Versioned documents (configs, flags, secrets): heads and histories, appends and deletes, written once
//! for every kind. Each kind keeps its own tables (`store::document_tables` names them); `Queries`
//! holds a kind's statements.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::commit::{Change, Operation};
use super::rows::{WriteHeadRow, metadata, parse_json, to_json};
use super::{PostgresStore, db_error};
use crate::core::error::{Error, Result};
use crate::core::ports::{Committed, DeleteWrite, DocumentStore, HeadRow, Record, VersionWrite};
use crate::core::versioned::{Document, DocumentId, DocumentKind, Head, NewVersion, Version};
use crate::store::change::Numbered;
use crate::store::document_tables::{PerKind, document_tables};
use crate::store::{to_i64, to_u64};

/// One kind's statements, alike in their parameters and columns.
struct Queries {
    head: &'static str,
    heads: &'static str,
    version: &'static str,
    versions: &'static str,
    write_head: &'static str,
    /// For writes of different documents in one statement, reads each one's head row and, if
    /// the write's expectations hold, upserts it and inserts the version.
    version_insert: &'static str,
    /// Marks the document deleted, returning the removed version's checksum.
    delete: &'static str,
}

impl Queries {
    fn of(kind: DocumentKind) -> Self {
        let tables = document_tables(kind);
        Queries {
            head: tables.statement(include_str!("queries/document_head.sql")),
            heads: tables.statement(include_str!("queries/document_heads.sql")),
            version: tables.statement(include_str!("queries/document_version.sql")),
            versions: tables.statement(include_str!("queries/document_versions.sql")),
            write_head: tables.statement(include_str!("queries/document_write_head.sql")),
            version_insert: tables.statement(include_str!("queries/document_version_insert.sql")),
            delete: tables.statement(include_str!("queries/document_delete.sql")),
        }
    }
}

fn queries<D: Document>() -> &'static Queries {
    static QUERIES: PerKind<Queries> = PerKind::new();
    QUERIES.get(D::KIND, Queries::of)
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: String,
    version: i64,
    body: String,
    checksum: String,
    actor: String,
    message: Option<String>,
    created_at: DateTime<Utc>,
    rollback_of: Option<i64>,
}

impl VersionRow {
    fn decode<D: Document>(self) -> Result<Version<D>> {
        Ok(NewVersion {
            id: D::Id::parse(&self.id)?,
            document: parse_json::<D>(&self.body)?,
            metadata: metadata(self.actor, self.message),
            checksum: self.checksum,
            created_at: self.created_at,
            rollback_of: self.rollback_of.map(to_u64),
        }
        .numbered(to_u64(self.version)))
    }
}

/// A document's newest version and whether the document is deleted.
#[derive(sqlx::FromRow)]
struct HeadVersionRow {
    #[sqlx(flatten)]
    latest: VersionRow,
    deleted: bool,
}

impl HeadVersionRow {
    fn decode<D: Document>(self) -> Result<Head<D>> {
        Ok(Head {
            deleted: self.deleted,
            latest: Arc::new(self.latest.decode()?),
        })
    }
}

/// The head row a version insert saw (zero when there is none), and the number of the version
/// it wrote.
#[derive(sqlx::FromRow)]
struct VersionInsertRow {
    #[sqlx(flatten)]
    head: WriteHeadRow,
    written: Option<i64>,
}

/// The columns of a `*_version_insert.sql`, one array each, one element per write.
struct VersionColumns<'c> {
    ids: Vec<&'c str>,
    bodies: Vec<String>,
    checksums: Vec<&'c str>,
    actors: Vec<&'c str>,
    messages: Vec<Option<&'c str>>,
    created_at: Vec<DateTime<Utc>>,
    rollback_of: Vec<Option<i64>>,
    expected_live: Vec<i64>,
    expected_schema: Vec<i64>,
    expected_number: Vec<Option<i64>>,
}

impl<'c> VersionColumns<'c> {
    fn of<D: Document>(writes: &[&'c VersionWrite<D>]) -> Result<Self> {
        let mut columns = VersionColumns {
            ids: Vec::with_capacity(writes.len()),
            bodies: Vec::with_capacity(writes.len()),
            checksums: Vec::with_capacity(writes.len()),
            actors: Vec::with_capacity(writes.len()),
            messages: Vec::with_capacity(writes.len()),
            created_at: Vec::with_capacity(writes.len()),
            rollback_of: Vec::with_capacity(writes.len()),
            expected_live: Vec::with_capacity(writes.len()),
            expected_schema: Vec::with_capacity(writes.len()),
            expected_number: Vec::with_capacity(writes.len()),
        };
        for write in writes {
            let v = &write.version;
            columns.ids.push(v.id.as_str());
            columns.bodies.push(to_json(&v.document)?);
            columns.checksums.push(&v.checksum);
            columns.actors.push(&v.metadata.actor);
            columns.messages.push(v.metadata.message.as_deref());
            columns.created_at.push(v.created_at);
            columns.rollback_of.push(v.rollback_of.map(to_i64));
            columns.expected_live.push(to_i64(write.expected_live));
            columns.expected_schema.push(to_i64(write.expected_schema));
            columns
                .expected_number
                .push(write.expected_number.map(to_i64));
        }
        Ok(columns)
    }
}

/// Version writes of different documents of one kind, in one statement: each write's result,
/// in order (`Err` when the statement itself failed).
async fn insert_versions<'a, D: Document>(
    tx: &mut PgConnection,
    writes: &[&'a VersionWrite<D>],
) -> Result<Vec<Result<Change<'a>>>> {
    let columns = VersionColumns::of(writes)?;
    let rows: Vec<VersionInsertRow> = sqlx::query_as(queries::<D>().version_insert)
        .bind(columns.ids)
        .bind(columns.bodies)
        .bind(columns.checksums)
        .bind(columns.actors)
        .bind(columns.messages)
        .bind(columns.created_at)
        .bind(columns.rollback_of)
        .bind(columns.expected_live)
        .bind(columns.expected_schema)
        .bind(columns.expected_number)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    if rows.len() != writes.len() {
        return Err(Error::internal(format!(
            "{} writes: {} version inserts answered {} rows",
            D::NAME,
            writes.len(),
            rows.len()
        )));
    }
    Ok(writes
        .iter()
        .zip(rows)
        .map(|(write, row)| write.inserted(row))
        .collect())
}

impl<D: Document> VersionWrite<D> {
    /// What the write changed, from the row its insert answered. The statement wrote only if
    /// the write's expectations held; the shared rule (`check_version_write`) names the
    /// failure, and a disagreement between the two is an internal error (the recipe undoes
    /// whatever was written).
    fn inserted(&self, row: VersionInsertRow) -> Result<Change<'_>> {
        let v = &self.version;
        let number = WriteHeadRow::head(Some(row.head)).check_version_write(self)?;
        if row.written != Some(to_i64(number)) {
            return Err(Error::internal(format!(
                "{} {}: version {number} passed the write's checks but the statement wrote {:?}",
                D::NAME,
                v.id.as_str(),
                row.written
            )));
        }
        Ok(self.numbered(number))
    }
}

/// The document's head row as this transaction sees it.
pub(super) async fn write_head<D: Document>(tx: &mut PgConnection, id: &D::Id) -> Result<HeadRow> {
    let row = sqlx::query_as(queries::<D>().write_head)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(WriteHeadRow::head(row))
}

#[async_trait]
impl<D: Document> DocumentStore<D> for PostgresStore {
    async fn head(&self, id: &D::Id) -> Result<Option<Head<D>>> {
        let query = sqlx::query_as(queries::<D>().head).bind(id.as_str());
        self.fetch_one_decoded(query, HeadVersionRow::decode).await
    }

    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "postgres", db.operation = "heads"))]
    async fn heads(&self) -> Result<Vec<Head<D>>> {
        self.fetch_decoded(sqlx::query_as(queries::<D>().heads), HeadVersionRow::decode)
            .await
    }

    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "postgres", db.operation = "version"))]
    async fn version(&self, id: &D::Id, version: u64) -> Result<Option<Version<D>>> {
        let query = sqlx::query_as(queries::<D>().version)
            .bind(id.as_str())
            .bind(to_i64(version));
        self.fetch_one_decoded(query, VersionRow::decode).await
    }

    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "postgres", db.operation = "versions"))]
    async fn versions(
        &self,
        id: &D::Id,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Version<D>>> {
        let query = sqlx::query_as(queries::<D>().versions)
            .bind(id.as_str())
            .bind(before.map_or(i64::MAX, to_i64))
            .bind(i64::from(limit));
        self.fetch_decoded(query, VersionRow::decode).await
    }

    async fn append(&self, write: VersionWrite<D>) -> Result<Committed> {
        self.commit(write).await
    }

    async fn delete(&self, write: DeleteWrite<D>) -> Result<Committed> {
        self.commit(write).await
    }
}

#[async_trait]
impl<D: Document> Operation for VersionWrite<D> {
    fn announce(&self) -> &[Record] {
        &self.announce
    }

    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
        insert_versions(tx, &[self])
            .await?
            .pop()
            .unwrap_or_else(|| Err(Error::internal("a version insert answered no row")))
    }

    /// Version writes of different documents of kind `D` share one statement.
    fn shares(&self) -> Option<(&'static str, &str)> {
        Some((D::NAME, self.version.id.as_str()))
    }

    async fn apply_run<'a>(
        &'a self,
        tx: &mut PgConnection,
        run: &[&'a dyn Operation],
    ) -> Result<Vec<Result<Change<'a>>>> {
        let writes = run
            .iter()
            .map(|write| {
                (*write as &dyn Any)
                    .downcast_ref::<VersionWrite<D>>()
                    .ok_or_else(|| {
                        Error::internal(format!("a run of {} writes mixed kinds", D::NAME))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        insert_versions(tx, &writes).await
    }
}

#[async_trait]
impl<D: Document> Operation for DeleteWrite<D> {
    fn announce(&self) -> &[Record] {
        &self.announce
    }

    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
        let id = self.id.as_str();
        let latest = write_head::<D>(tx, &self.id).await?.check_delete(self)?;
        let checksum: String = sqlx::query_scalar(queries::<D>().delete)
            .bind(id)
            .bind(to_i64(latest))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change {
            checksum: checksum.into(),
            ..self.numbered(latest)
        })
    }
}
