//! Configs: heads, versions and schemas.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::rows::{WriteHeadRow, metadata, parse_json, parse_time, timestamp, to_json};
use super::{SqliteStore, db_error};
use crate::core::error::Result;
use crate::core::events::kind;
use crate::core::ids::ConfigId;
use crate::core::model::{ConfigDocument, ConfigHead, ConfigVersion, NewVersion, SchemaVersion};
use crate::core::ports::{Committed, ConfigStore, DeleteWrite, HeadRow, SchemaWrite, VersionWrite};
use crate::store::{to_i64, to_u64};

#[derive(sqlx::FromRow)]
struct VersionRow {
    config_id: String,
    version: i64,
    document: String,
    checksum: String,
    actor: String,
    message: Option<String>,
    created_at: String,
    rollback_of: Option<i64>,
}

impl VersionRow {
    fn decode(self) -> Result<ConfigVersion> {
        Ok(NewVersion {
            config_id: ConfigId::parse(&self.config_id)?,
            document: parse_json::<ConfigDocument>(&self.document)?,
            metadata: metadata(self.actor, self.message),
            checksum: self.checksum,
            created_at: parse_time(&self.created_at)?,
            rollback_of: self.rollback_of.map(to_u64),
        }
        .numbered(to_u64(self.version)))
    }
}

/// A config's newest version and whether the config is deleted.
#[derive(sqlx::FromRow)]
struct HeadVersionRow {
    #[sqlx(flatten)]
    latest: VersionRow,
    deleted: bool,
}

impl HeadVersionRow {
    fn decode(self) -> Result<ConfigHead> {
        Ok(ConfigHead {
            deleted: self.deleted,
            latest: Arc::new(self.latest.decode()?),
        })
    }
}

#[derive(sqlx::FromRow)]
struct SchemaRow {
    config_id: String,
    version: i64,
    schema: String,
    checksum: String,
    actor: String,
    message: Option<String>,
    created_at: String,
}

impl SchemaRow {
    fn decode(self) -> Result<SchemaVersion> {
        Ok(SchemaVersion {
            config_id: ConfigId::parse(&self.config_id)?,
            version: to_u64(self.version),
            schema: parse_json(&self.schema)?,
            checksum: self.checksum,
            metadata: metadata(self.actor, self.message),
            created_at: parse_time(&self.created_at)?,
        })
    }
}

/// The config's head row as this transaction sees it.
async fn write_head(tx: &mut SqliteConnection, id: &ConfigId) -> Result<HeadRow> {
    let row = sqlx::query_as(include_str!("queries/config_write_head.sql"))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(WriteHeadRow::head(row))
}

#[async_trait]
impl ConfigStore for SqliteStore {
    async fn head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        sqlx::query_as(include_str!("queries/config_head.sql"))
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error)?
            .map(HeadVersionRow::decode)
            .transpose()
    }

    async fn heads(&self) -> Result<Vec<ConfigHead>> {
        sqlx::query_as(include_str!("queries/config_heads.sql"))
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(HeadVersionRow::decode)
            .collect()
    }

    async fn version(&self, id: &ConfigId, version: u64) -> Result<Option<ConfigVersion>> {
        sqlx::query_as(include_str!("queries/config_version.sql"))
            .bind(id.as_str())
            .bind(to_i64(version))
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error)?
            .map(VersionRow::decode)
            .transpose()
    }

    async fn versions(
        &self,
        id: &ConfigId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>> {
        sqlx::query_as(include_str!("queries/config_versions.sql"))
            .bind(id.as_str())
            .bind(before.map_or(i64::MAX, to_i64))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(VersionRow::decode)
            .collect()
    }

    async fn append_version(&self, write: VersionWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn delete_config(&self, write: DeleteWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>> {
        sqlx::query_as(include_str!("queries/schema_latest.sql"))
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error)?
            .map(SchemaRow::decode)
            .transpose()
    }

    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed> {
        self.commit(write).await
    }
}

#[async_trait]
impl Operation for VersionWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let v = &self.version;
        let id = v.config_id.as_str();
        let number = write_head(tx, &v.config_id)
            .await?
            .check_version_write(self)?;
        sqlx::query(include_str!("queries/config_head_upsert.sql"))
            .bind(id)
            .bind(to_i64(number))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(include_str!("queries/config_version_insert.sql"))
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
        Ok(Change {
            kind: kind::CONFIG_UPDATED,
            subject: id,
            version: number,
            checksum: v.checksum.clone(),
            audit: &self.audit,
            at: v.created_at,
            applies: self.applies.as_ref(),
        })
    }
}

#[async_trait]
impl Operation for DeleteWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let id = self.config_id.as_str();
        let latest = write_head(tx, &self.config_id).await?.check_delete(self)?;
        let checksum: String =
            sqlx::query_scalar(include_str!("queries/config_version_checksum.sql"))
                .bind(id)
                .bind(to_i64(latest))
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        sqlx::query(include_str!("queries/config_mark_deleted.sql"))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change {
            kind: kind::CONFIG_DELETED,
            subject: id,
            version: latest,
            checksum,
            audit: &self.audit,
            at: self.at,
            applies: self.applies.as_ref(),
        })
    }
}

#[async_trait]
impl Operation for SchemaWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let id = self.config_id.as_str();
        let number = write_head(tx, &self.config_id)
            .await?
            .check_schema_write(self)?;
        sqlx::query(include_str!("queries/schema_head_upsert.sql"))
            .bind(id)
            .bind(to_i64(number))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(include_str!("queries/schema_insert.sql"))
            .bind(id)
            .bind(to_i64(number))
            .bind(to_json(&self.schema)?)
            .bind(&self.checksum)
            .bind(&self.metadata.actor)
            .bind(&self.metadata.message)
            .bind(timestamp(self.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change {
            kind: kind::SCHEMA_UPDATED,
            subject: id,
            version: number,
            checksum: self.checksum.clone(),
            audit: &self.audit,
            at: self.created_at,
            applies: None,
        })
    }
}
