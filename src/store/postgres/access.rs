//! API tokens and the record of denied attempts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::commit::{Change, Operation};
use super::rows::{parse_json, to_json};
use super::{PostgresStore, db_error};
use crate::core::access::model::{ApiToken, Denial};
use crate::core::error::{Error, Result};
use crate::core::ports::{
    AccessStore, Committed, TokenRevoke, TokenWrite, token_already_revoked, token_exists,
};
use crate::store::{to_i64, to_u64};

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    roles: String,
    scopes: String,
    hash: String,
    created_at: DateTime<Utc>,
    created_by: String,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn decode(self) -> Result<ApiToken> {
        Ok(ApiToken {
            id: self.id,
            name: self.name,
            roles: parse_json(&self.roles)?,
            scopes: parse_json(&self.scopes)?,
            hash: self.hash,
            created_at: self.created_at,
            created_by: self.created_by,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DenialRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    operation: String,
    resource: Option<String>,
    reason: String,
}

impl From<DenialRow> for Denial {
    fn from(row: DenialRow) -> Self {
        Denial {
            id: to_u64(row.id),
            at: row.at,
            actor: row.actor,
            operation: row.operation,
            resource: row.resource,
            reason: row.reason,
        }
    }
}

#[async_trait]
impl AccessStore for PostgresStore {
    async fn create_token(&self, write: TokenWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn revoke_token(&self, write: TokenRevoke) -> Result<Committed> {
        self.commit(write).await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.fetch_decoded(
            sqlx::query_as(include_str!("queries/tokens.sql")),
            TokenRow::decode,
        )
        .await
    }

    async fn record_denial(&self, denial: Denial) -> Result<()> {
        sqlx::query(include_str!("queries/denial_insert.sql"))
            .bind(denial.at)
            .bind(&denial.actor)
            .bind(&denial.operation)
            .bind(&denial.resource)
            .bind(&denial.reason)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn denials(&self, before: Option<u64>, limit: u32) -> Result<Vec<Denial>> {
        let rows: Vec<DenialRow> = sqlx::query_as(include_str!("queries/denials.sql"))
            .bind(before.map_or(i64::MAX, to_i64))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Denial::from).collect())
    }
}

#[async_trait]
impl Operation for TokenWrite {
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
        let token = &self.token;
        let inserted = sqlx::query(include_str!("queries/token_insert.sql"))
            .bind(&token.id)
            .bind(&token.name)
            .bind(to_json(&token.roles)?)
            .bind(to_json(&token.scopes)?)
            .bind(&token.hash)
            .bind(token.created_at)
            .bind(&token.created_by)
            .bind(token.expires_at)
            .bind(token.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(token_exists(&token.id));
        }
        Ok(Change::from(self))
    }
}

#[async_trait]
impl Operation for TokenRevoke {
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
        let revoked_at: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar(include_str!("queries/token_revoked_at.sql"))
                .bind(&self.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        match revoked_at {
            None => return Err(Error::not_found("token", self.id.as_str())),
            Some(Some(_)) => return Err(token_already_revoked(&self.id)),
            Some(None) => {}
        }
        sqlx::query(include_str!("queries/token_revoke.sql"))
            .bind(self.at)
            .bind(&self.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change::from(self))
    }
}
