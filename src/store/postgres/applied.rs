//! What instances report they applied.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, db_error};
use crate::core::error::{Error, Result};
use crate::core::ids::ConfigId;
use crate::core::model::AppliedState;
use crate::core::ports::AppliedStore;
use crate::store::{to_i64, to_u64};

#[derive(sqlx::FromRow)]
struct AppliedRow {
    config_id: String,
    environment: String,
    instance_id: String,
    version: i64,
    checksum: String,
    reported_at: DateTime<Utc>,
}

impl AppliedRow {
    fn decode(self) -> Result<AppliedState> {
        Ok(AppliedState {
            config_id: ConfigId::parse(&self.config_id)?,
            environment: self.environment,
            instance_id: self.instance_id,
            version: to_u64(self.version),
            checksum: self.checksum,
            reported_at: self.reported_at,
        })
    }
}

#[async_trait]
impl AppliedStore for PostgresStore {
    async fn record_applied(&self, state: AppliedState) -> Result<()> {
        sqlx::query(include_str!("queries/applied_upsert.sql"))
            .bind(state.config_id.as_str())
            .bind(&state.environment)
            .bind(&state.instance_id)
            .bind(to_i64(state.version))
            .bind(&state.checksum)
            .bind(state.reported_at)
            .execute(&self.pool)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(db) if db.is_foreign_key_violation() => {
                    Error::not_found("config", state.config_id.as_str())
                }
                _ => db_error(e),
            })?;
        Ok(())
    }

    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>> {
        let query =
            sqlx::query_as(include_str!("queries/applied.sql")).bind(id.map(ConfigId::as_str));
        self.fetch_decoded(query, AppliedRow::decode).await
    }

    async fn sweep_applied(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(include_str!("queries/applied_sweep.sql"))
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }
}
