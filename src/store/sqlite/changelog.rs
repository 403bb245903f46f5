//! The change log (one revision per committed change) and the audit trail. Both are written
//! only by the commit recipe (`commit`).

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::rows::{parse_json, parse_time};
use super::{SqliteStore, db_error};
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, ChangeKind};
use crate::core::model::AuditRecord;
use crate::core::ports::{AuditQuery, ChangeLog, Committed, Record};
use crate::store::{to_i64, to_u64};

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    revision: i64,
    at: String,
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
            at: parse_time(&self.at)?,
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
    at: String,
    environments: String,
    details: String,
}

impl ChangeRow {
    fn decode(self) -> Result<ChangeEvent> {
        Ok(ChangeEvent {
            revision: to_u64(self.revision),
            kind: ChangeKind::parse(&self.kind)?,
            config_id: self.config_id,
            version: to_u64(self.version),
            checksum: self.checksum,
            actor: self.actor,
            message: self.message,
            at: parse_time(&self.at)?,
            environments: parse_json(&self.environments)?,
            details: parse_json(&self.details)?,
        })
    }
}

#[async_trait]
impl ChangeLog for SqliteStore {
    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "sqlite", db.operation = "audit"))]
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        let subject_id = query.subject.as_ref().map(|s| s.id());
        let subject_is_flag = query.subject.as_ref().map(|s| s.is_flag());
        let query = sqlx::query_as(include_str!("queries/audit.sql"))
            .bind(query.before.map_or(i64::MAX, to_i64))
            .bind(subject_id)
            .bind(subject_id)
            .bind(subject_is_flag)
            .bind(subject_is_flag)
            .bind(subject_id)
            .bind(i64::from(query.limit));
        self.fetch_decoded(query, AuditRow::decode).await
    }

    #[tracing::instrument(level = "debug", name = "store.query", skip_all, fields(db.system = "sqlite", db.operation = "changes_since"))]
    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>> {
        let query = sqlx::query_as(include_str!("queries/changes_since.sql"))
            .bind(to_i64(revision))
            .bind(i64::from(limit));
        self.fetch_decoded(query, ChangeRow::decode).await
    }

    async fn record(&self, record: Record) -> Result<Committed> {
        self.commit(record).await
    }

    async fn latest_revision(&self) -> Result<u64> {
        let revision: Option<i64> = sqlx::query_scalar(include_str!("queries/latest_revision.sql"))
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(revision.map_or(0, to_u64))
    }
}

#[async_trait]
impl Operation for Record {
    async fn apply<'a>(&'a self, _tx: &mut SqliteConnection) -> Result<Change<'a>> {
        Ok(Change::from(self))
    }
}
