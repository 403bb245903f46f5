//! API tokens and the record of denied attempts.

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::rows::{parse_json, parse_optional_time, parse_time, timestamp, to_json};
use super::{SqliteStore, db_error};
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
    created_at: String,
    created_by: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
}

impl TokenRow {
    fn decode(self) -> Result<ApiToken> {
        Ok(ApiToken {
            id: self.id,
            name: self.name,
            roles: parse_json(&self.roles)?,
            scopes: parse_json(&self.scopes)?,
            hash: self.hash,
            created_at: parse_time(&self.created_at)?,
            created_by: self.created_by,
            expires_at: parse_optional_time(self.expires_at.as_deref())?,
            revoked_at: parse_optional_time(self.revoked_at.as_deref())?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DenialRow {
    id: i64,
    at: String,
    actor: String,
    operation: String,
    resource: Option<String>,
    reason: String,
}

impl DenialRow {
    fn decode(self) -> Result<Denial> {
        Ok(Denial {
            id: to_u64(self.id),
            at: parse_time(&self.at)?,
            actor: self.actor,
            operation: self.operation,
            resource: self.resource,
            reason: self.reason,
        })
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
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
            .bind(timestamp(denial.at))
            .bind(&denial.actor)
            .bind(&denial.operation)
            .bind(&denial.resource)
            .bind(&denial.reason)
            .execute(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn denials(&self, before: Option<u64>, limit: u32) -> Result<Vec<Denial>> {
        let query = sqlx::query_as(include_str!("queries/denials.sql"))
            .bind(before.map_or(i64::MAX, to_i64))
            .bind(i64::from(limit));
        self.fetch_decoded(query, DenialRow::decode).await
    }
}

#[async_trait]
impl Operation for TokenWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let token = &self.token;
        let inserted = sqlx::query(include_str!("queries/token_insert.sql"))
            .bind(&token.id)
            .bind(&token.name)
            .bind(to_json(&token.roles)?)
            .bind(to_json(&token.scopes)?)
            .bind(&token.hash)
            .bind(timestamp(token.created_at))
            .bind(&token.created_by)
            .bind(token.expires_at.map(timestamp))
            .bind(token.revoked_at.map(timestamp))
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
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let revoked_at: Option<Option<String>> =
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
            .bind(timestamp(self.at))
            .bind(&self.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change::from(self))
    }
}
