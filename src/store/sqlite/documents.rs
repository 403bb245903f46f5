//! Versioned documents (configs, flags, secrets): heads and histories, appends and deletes, written once
//! for every kind. Each kind keeps its own tables (`store::document_tables` names them); `Queries`
//! holds a kind's statements.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::rows::{WriteHeadRow, metadata, parse_json, parse_time, timestamp, to_json};
use super::{SqliteStore, db_error};
use crate::core::error::Result;
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
    head_upsert: &'static str,
    version_insert: &'static str,
    version_checksum: &'static str,
    mark_deleted: &'static str,
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
            head_upsert: tables.statement(include_str!("queries/document_head_upsert.sql")),
            version_insert: tables.statement(include_str!("queries/document_version_insert.sql")),
            version_checksum: tables
                .statement(include_str!("queries/document_version_checksum.sql")),
            mark_deleted: tables.statement(include_str!("queries/document_mark_deleted.sql")),
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
    created_at: String,
    rollback_of: Option<i64>,
}

impl VersionRow {
    fn decode<D: Document>(self) -> Result<Version<D>> {
        Ok(NewVersion {
            id: D::Id::parse(&self.id)?,
            document: parse_json::<D>(&self.body)?,
            metadata: metadata(self.actor, self.message),
            checksum: self.checksum,
            created_at: parse_time(&self.created_at)?,
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

/// The document's head row as this transaction sees it.
pub(super) async fn write_head<D: Document>(
    tx: &mut SqliteConnection,
    id: &D::Id,
) -> Result<HeadRow> {
    let row = sqlx::query_as(queries::<D>().write_head)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(WriteHeadRow::head(row))
}

#[async_trait]
impl<D: Document> DocumentStore<D> for SqliteStore {
    async fn head(&self, id: &D::Id) -> Result<Option<Head<D>>> {
        let query = sqlx::query_as(queries::<D>().head).bind(id.as_str());
        self.fetch_one_decoded(query, HeadVersionRow::decode).await
    }

    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "sqlite", db.operation = "heads"))]
    async fn heads(&self) -> Result<Vec<Head<D>>> {
        self.fetch_decoded(sqlx::query_as(queries::<D>().heads), HeadVersionRow::decode)
            .await
    }

    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "sqlite", db.operation = "version"))]
    async fn version(&self, id: &D::Id, version: u64) -> Result<Option<Version<D>>> {
        let query = sqlx::query_as(queries::<D>().version)
            .bind(id.as_str())
            .bind(to_i64(version));
        self.fetch_one_decoded(query, VersionRow::decode).await
    }

    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "sqlite", db.operation = "versions"))]
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

    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let q = queries::<D>();
        let v = &self.version;
        let id = v.id.as_str();
        let number = write_head::<D>(tx, &v.id)
            .await?
            .check_version_write(self)?;
        sqlx::query(q.head_upsert)
            .bind(id)
            .bind(to_i64(number))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(q.version_insert)
            .bind(id)
            .bind(to_i64(number))
            .bind(to_json(&v.document)?)
            .bind(&v.checksum)
            .bind(&v.metadata.actor)
            .bind(&v.metadata.message)
            .bind(timestamp(v.created_at))
            .bind(v.rollback_of.map(to_i64))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(self.numbered(number))
    }
}

#[async_trait]
impl<D: Document> Operation for DeleteWrite<D> {
    fn announce(&self) -> &[Record] {
        &self.announce
    }

    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let q = queries::<D>();
        let id = self.id.as_str();
        let latest = write_head::<D>(tx, &self.id).await?.check_delete(self)?;
        let checksum: String = sqlx::query_scalar(q.version_checksum)
            .bind(id)
            .bind(to_i64(latest))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(q.mark_deleted)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change {
            checksum: checksum.into(),
            ..self.numbered(latest)
        })
    }
}
