//! The change log (one revision per committed change) and the audit trail. Both are written by
//! the commit recipe (`commit.rs`); this file reads them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::commit::{Change, Operation};
use super::rows::parse_json;
use super::{PostgresStore, db_error};
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, ChangeKind};
use crate::core::model::AuditRecord;
use crate::core::ports::{AuditQuery, ChangeLog, Committed, Record};
use crate::store::{to_i64, to_u64};

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    revision: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    config_id: String,
    version: Option<i64>,
    environments: String,
    message: Option<String>,
    on_behalf_of: Option<String>,
    details: String,
}

impl AuditRow {
    fn decode(self) -> Result<AuditRecord> {
        Ok(AuditRecord {
            id: to_u64(self.id),
            revision: to_u64(self.revision),
            at: self.at,
            actor: self.actor,
            action: self.action,
            config_id: self.config_id,
            version: self.version.map(to_u64),
            environments: parse_json(&self.environments)?,
            message: self.message,
            on_behalf_of: self.on_behalf_of,
            details: parse_json(&self.details)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    revision: i64,
    kind: String,
    config_id: String,
    version: i64,
    checksum: String,
    actor: String,
    message: Option<String>,
    at: DateTime<Utc>,
    environments: String,
    details: String,
}

impl TryFrom<ChangeRow> for ChangeEvent {
    type Error = crate::core::error::Error;

    fn try_from(row: ChangeRow) -> Result<Self> {
        Ok(ChangeEvent {
            revision: to_u64(row.revision),
            kind: ChangeKind::parse(&row.kind)?,
            config_id: row.config_id,
            version: to_u64(row.version),
            checksum: row.checksum,
            actor: row.actor,
            message: row.message,
            at: row.at,
            environments: parse_json(&row.environments)?,
            details: parse_json(&row.details)?,
        })
    }
}

#[async_trait]
impl ChangeLog for PostgresStore {
    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "postgres", db.operation = "audit"))]
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        let query = sqlx::query_as(include_str!("queries/audit.sql"))
            .bind(query.before.map_or(i64::MAX, to_i64))
            .bind(query.subject.as_ref().map(|s| s.id()))
            .bind(query.subject.as_ref().map(|s| s.is_flag()))
            .bind(i64::from(query.limit));
        self.fetch_decoded(query, AuditRow::decode).await
    }

    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "postgres", db.operation = "changes_since"))]
    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>> {
        let rows: Vec<ChangeRow> = sqlx::query_as(include_str!("queries/changes_since.sql"))
            .bind(to_i64(revision))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(ChangeEvent::try_from).collect()
    }

    async fn record(&self, record: Record) -> Result<Committed> {
        self.commit(record).await
    }

    async fn latest_revision(&self) -> Result<u64> {
        let revision: Option<i64> = sqlx::query_scalar(include_str!("queries/latest_revision.sql"))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(revision.map_or(0, to_u64))
    }
}

#[async_trait]
impl Operation for Record {
    async fn apply<'a>(&'a self, _tx: &mut PgConnection) -> Result<Change<'a>> {
        Ok(Change::from(self))
    }
}
