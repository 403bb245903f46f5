//! The secret store beyond its versioned documents: re-wrapping a stored version.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;

use super::commit::{Change, Operation};
use super::rows::to_json;
use super::{PostgresStore, db_error};
use crate::core::error::{Error, Result};
use crate::core::ports::{Committed, Rewrap, SecretStore};
use crate::store::to_i64;

#[async_trait]
impl SecretStore for PostgresStore {
    async fn rewrap(&self, rewrap: Rewrap) -> Result<Committed> {
        self.commit(rewrap).await
    }
}

#[async_trait]
impl Operation for Rewrap {
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
        let updated = sqlx::query(include_str!("queries/secret_rewrap.sql"))
            .bind(to_json(&self.document)?)
            .bind(&self.checksum)
            .bind(self.name.as_str())
            .bind(to_i64(self.version))
            .bind(&self.expected_checksum)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(Error::concurrent(format!(
                "secret {} v{} changed (or is gone) since it was read; retry",
                self.name, self.version
            )));
        }
        Ok(Change::from(self))
    }
}
