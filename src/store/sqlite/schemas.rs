//! The JSON Schemas of configs.

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::documents::write_head;
use super::rows::{metadata, parse_json, parse_time, timestamp, to_json};
use super::{SqliteStore, db_error};
use crate::core::error::Result;
use crate::core::ids::ConfigId;
use crate::core::model::{ConfigDocument, SchemaVersion};
use crate::core::ports::{Committed, SchemaStore, SchemaWrite};
use crate::store::change::Numbered;
use crate::store::{to_i64, to_u64};

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

#[async_trait]
impl SchemaStore for SqliteStore {
    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>> {
        let query = sqlx::query_as(include_str!("queries/schema_latest.sql")).bind(id.as_str());
        self.fetch_one_decoded(query, SchemaRow::decode).await
    }

    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed> {
        self.commit(write).await
    }
}

#[async_trait]
impl Operation for SchemaWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let id = self.config_id.as_str();
        let number = write_head::<ConfigDocument>(tx, &self.config_id)
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
        Ok(self.numbered(number))
    }
}
