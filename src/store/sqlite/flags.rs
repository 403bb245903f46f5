//! Flag definitions and their versions.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::rows::{WriteHeadRow, metadata, parse_json, parse_time, timestamp, to_json};
use super::{SqliteStore, db_error};
use crate::core::error::Result;
use crate::core::events::kind;
use crate::core::flags::{FlagDefinition, FlagHead, FlagVersion, NewFlagVersion};
use crate::core::ids::FlagKey;
use crate::core::ports::{Committed, FlagDeleteWrite, FlagStore, FlagWrite, HeadRow};
use crate::store::{to_i64, to_u64};

#[derive(sqlx::FromRow)]
struct FlagVersionRow {
    flag_key: String,
    version: i64,
    definition: String,
    checksum: String,
    actor: String,
    message: Option<String>,
    created_at: String,
    rollback_of: Option<i64>,
}

impl FlagVersionRow {
    fn decode(self) -> Result<FlagVersion> {
        Ok(NewFlagVersion {
            key: FlagKey::parse(&self.flag_key)?,
            definition: parse_json::<FlagDefinition>(&self.definition)?,
            metadata: metadata(self.actor, self.message),
            checksum: self.checksum,
            created_at: parse_time(&self.created_at)?,
            rollback_of: self.rollback_of.map(to_u64),
        }
        .numbered(to_u64(self.version)))
    }
}

/// A flag's newest version and whether the flag is deleted.
#[derive(sqlx::FromRow)]
struct FlagHeadVersionRow {
    #[sqlx(flatten)]
    latest: FlagVersionRow,
    deleted: bool,
}

impl FlagHeadVersionRow {
    fn decode(self) -> Result<FlagHead> {
        Ok(FlagHead {
            deleted: self.deleted,
            latest: Arc::new(self.latest.decode()?),
        })
    }
}

/// The flag's head row as this transaction sees it.
async fn write_head(tx: &mut SqliteConnection, key: &FlagKey) -> Result<HeadRow> {
    let row = sqlx::query_as(include_str!("queries/flag_write_head.sql"))
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(WriteHeadRow::head(row))
}

#[async_trait]
impl FlagStore for SqliteStore {
    async fn flag_heads(&self) -> Result<Vec<FlagHead>> {
        sqlx::query_as(include_str!("queries/flag_heads.sql"))
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(FlagHeadVersionRow::decode)
            .collect()
    }

    async fn flag_head(&self, key: &FlagKey) -> Result<Option<FlagHead>> {
        sqlx::query_as(include_str!("queries/flag_head.sql"))
            .bind(key.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error)?
            .map(FlagHeadVersionRow::decode)
            .transpose()
    }

    async fn flag_version(&self, key: &FlagKey, version: u64) -> Result<Option<FlagVersion>> {
        sqlx::query_as(include_str!("queries/flag_version.sql"))
            .bind(key.as_str())
            .bind(to_i64(version))
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error)?
            .map(FlagVersionRow::decode)
            .transpose()
    }

    async fn flag_versions(
        &self,
        key: &FlagKey,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<FlagVersion>> {
        sqlx::query_as(include_str!("queries/flag_versions.sql"))
            .bind(key.as_str())
            .bind(before.map_or(i64::MAX, to_i64))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(FlagVersionRow::decode)
            .collect()
    }

    async fn append_flag_version(&self, write: FlagWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn delete_flag(&self, write: FlagDeleteWrite) -> Result<Committed> {
        self.commit(write).await
    }
}

#[async_trait]
impl Operation for FlagWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let v = &self.version;
        let key = v.key.as_str();
        let number = write_head(tx, &v.key).await?.check_flag_write(self)?;
        sqlx::query(include_str!("queries/flag_head_upsert.sql"))
            .bind(key)
            .bind(to_i64(number))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(include_str!("queries/flag_version_insert.sql"))
            .bind(key)
            .bind(to_i64(number))
            .bind(to_json(&v.definition)?)
            .bind(&v.checksum)
            .bind(&v.metadata.actor)
            .bind(&v.metadata.message)
            .bind(timestamp(v.created_at))
            .bind(v.rollback_of.map(to_i64))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change {
            kind: kind::FLAG_UPDATED,
            subject: key,
            version: number,
            checksum: v.checksum.clone(),
            audit: &self.audit,
            at: v.created_at,
            applies: None,
        })
    }
}

#[async_trait]
impl Operation for FlagDeleteWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let key = self.key.as_str();
        let latest = write_head(tx, &self.key).await?.check_flag_delete(self)?;
        let checksum: String =
            sqlx::query_scalar(include_str!("queries/flag_version_checksum.sql"))
                .bind(key)
                .bind(to_i64(latest))
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        sqlx::query(include_str!("queries/flag_mark_deleted.sql"))
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change {
            kind: kind::FLAG_DELETED,
            subject: key,
            version: latest,
            checksum,
            audit: &self.audit,
            at: self.at,
            applies: None,
        })
    }
}
