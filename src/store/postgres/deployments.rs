//! Deployments, their logs and releases.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;

use super::commit::{Change, Operation};
use super::{PostgresStore, db_error};
use crate::core::deployments::model::{Deployment, LogEntry, Release};
use crate::core::error::Result;
use crate::core::ids::{ConfigId, Environment};
use crate::core::ports::deployments::{deployment_active, deployment_changed};
use crate::core::ports::{Committed, DeploymentQuery, DeploymentStore, DeploymentWrite};
use crate::store::deployment_rows::{ReleaseRow, decode_deployment, decode_entry, encode, micros};
use crate::store::to_i64;

#[async_trait]
impl DeploymentStore for PostgresStore {
    async fn write_deployment(&self, write: DeploymentWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn deployment(&self, id: &str) -> Result<Option<Deployment>> {
        let document: Option<String> = sqlx::query_scalar(include_str!("queries/deployment.sql"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        document.as_deref().map(decode_deployment).transpose()
    }

    async fn deployments(&self, query: &DeploymentQuery) -> Result<Vec<Deployment>> {
        let documents: Vec<String> = sqlx::query_scalar(include_str!("queries/deployments.sql"))
            .bind(query.config_id.as_ref().map(ConfigId::as_str))
            .bind(query.environment.as_ref().map(Environment::as_str))
            .bind(query.active_only)
            .bind(query.before.map(micros))
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        documents.iter().map(|d| decode_deployment(d)).collect()
    }

    async fn deployment_log(&self, id: &str) -> Result<Vec<LogEntry>> {
        let entries: Vec<String> = sqlx::query_scalar(include_str!("queries/deployment_log.sql"))
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        entries.iter().map(|e| decode_entry(e)).collect()
    }

    async fn keep_releases(&self, releases: Vec<Release>) -> Result<()> {
        for release in &releases {
            sqlx::query(include_str!("queries/release_keep.sql"))
                .bind(release.config_id.as_str())
                .bind(release.environment.as_str())
                .bind(to_i64(release.version))
                .bind(release.deployment_id.as_deref())
                .bind(micros(release.released_at))
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    async fn forget_releases(&self, config: &ConfigId) -> Result<()> {
        sqlx::query(include_str!("queries/releases_forget.sql"))
            .bind(config.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn releases(&self, config: Option<&ConfigId>) -> Result<Vec<Release>> {
        let query = sqlx::query_as::<_, ReleaseRow>(include_str!("queries/releases.sql"))
            .bind(config.map(ConfigId::as_str));
        self.fetch_decoded(query, ReleaseRow::decode).await
    }
}

#[async_trait]
impl Operation for DeploymentWrite {
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
        let deployment = &self.deployment;
        let document = encode(deployment)?;
        if self.expect_seq == 0 {
            let active: Option<String> =
                sqlx::query_scalar(include_str!("queries/deployment_active.sql"))
                    .bind(deployment.config_id.as_str())
                    .bind(deployment.environment.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            if let Some(active) = active {
                return Err(deployment_active(
                    &deployment.config_id,
                    &deployment.environment,
                    &active,
                ));
            }
            sqlx::query(include_str!("queries/deployment_insert.sql"))
                .bind(&deployment.id)
                .bind(deployment.config_id.as_str())
                .bind(deployment.environment.as_str())
                .bind(deployment.state.is_active())
                .bind(to_i64(deployment.seq))
                .bind(micros(deployment.created_at))
                .bind(&document)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        } else {
            let done = sqlx::query(include_str!("queries/deployment_update.sql"))
                .bind(&deployment.id)
                .bind(deployment.state.is_active())
                .bind(to_i64(deployment.seq))
                .bind(&document)
                .bind(to_i64(self.expect_seq))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            if done.rows_affected() == 0 {
                return Err(deployment_changed(&deployment.id));
            }
        }
        sqlx::query(include_str!("queries/deployment_log_insert.sql"))
            .bind(&deployment.id)
            .bind(to_i64(self.entry.seq))
            .bind(encode(&self.entry)?)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(version) = self.release {
            sqlx::query(include_str!("queries/release_upsert.sql"))
                .bind(deployment.config_id.as_str())
                .bind(deployment.environment.as_str())
                .bind(to_i64(version))
                .bind(&deployment.id)
                .bind(micros(self.at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        Ok(Change::from(self))
    }
}
