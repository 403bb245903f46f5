//! Change requests (approvals).

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::rows::{parse_json, parse_time, timestamp, to_json};
use super::{SqliteStore, db_error};
use crate::core::approvals::model::{ChangeRequest, ChangeRequestStatus, Subject};
use crate::core::error::{Error, Result};
use crate::core::ports::{
    ChangeRequestQuery, ChangeRequestStore, ChangeRequestWrite, Committed, request_changed,
    request_exists,
};
use crate::store::{to_i64, to_u64};

#[derive(sqlx::FromRow)]
struct ChangeRequestRow {
    id: String,
    subject_kind: String,
    config_id: String,
    operation: String,
    base_version: i64,
    environments: String,
    required_approvals: i64,
    approvals: String,
    status: String,
    requested_by: String,
    on_behalf_of: Option<String>,
    message: Option<String>,
    reason: Option<String>,
    applied_version: Option<i64>,
    created_at: String,
    updated_at: String,
}

impl ChangeRequestRow {
    fn decode(self) -> Result<ChangeRequest> {
        let status = ChangeRequestStatus::parse(&self.status).ok_or_else(|| {
            Error::internal(format!("stored change request status {:?}", self.status))
        })?;
        Ok(ChangeRequest {
            id: self.id,
            subject: Subject::parse(&self.subject_kind, &self.config_id)?,
            operation: parse_json(&self.operation)?,
            base_version: to_u64(self.base_version),
            environments: parse_json(&self.environments)?,
            required_approvals: u32::try_from(self.required_approvals).unwrap_or(u32::MAX),
            approvals: parse_json(&self.approvals)?,
            status,
            requested_by: self.requested_by,
            on_behalf_of: self.on_behalf_of,
            message: self.message,
            reason: self.reason,
            applied_version: self.applied_version.map(to_u64),
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
        })
    }
}

#[async_trait]
impl ChangeRequestStore for SqliteStore {
    async fn put_change_request(&self, write: ChangeRequestWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>> {
        let query = sqlx::query_as(include_str!("queries/change_request.sql")).bind(id);
        self.fetch_one_decoded(query, ChangeRequestRow::decode)
            .await
    }

    async fn change_requests(&self, query: ChangeRequestQuery) -> Result<Vec<ChangeRequest>> {
        let status = query.status.map(ChangeRequestStatus::as_str);
        let kind = query.subject.as_ref().map(Subject::kind_name);
        let subject = query.subject.as_ref().map(Subject::as_str);
        let query = sqlx::query_as(include_str!("queries/change_requests.sql"))
            .bind(status)
            .bind(status)
            .bind(kind)
            .bind(kind)
            .bind(subject)
            .bind(&query.environment)
            .bind(&query.environment)
            .bind(to_json(&query.prefixes)?)
            .bind(to_json(&query.prefixes)?)
            .bind(i64::from(query.limit));
        self.fetch_decoded(query, ChangeRequestRow::decode).await
    }
}

#[async_trait]
impl Operation for ChangeRequestWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let request = &self.request;
        match self.expected {
            None => insert(tx, request).await?,
            Some((status, approvals)) => update(tx, request, status, approvals).await?,
        }
        Ok(Change::from(self))
    }
}

/// Inserts a new request; its id must be new.
async fn insert(tx: &mut SqliteConnection, request: &ChangeRequest) -> Result<()> {
    let inserted = sqlx::query(include_str!("queries/change_request_insert.sql"))
        .bind(&request.id)
        .bind(request.subject.as_str())
        .bind(to_json(&request.operation)?)
        .bind(to_i64(request.base_version))
        .bind(to_json(&request.environments)?)
        .bind(i64::from(request.required_approvals))
        .bind(to_json(&request.approvals)?)
        .bind(request.status.as_str())
        .bind(&request.requested_by)
        .bind(&request.on_behalf_of)
        .bind(&request.message)
        .bind(&request.reason)
        .bind(request.applied_version.map(to_i64))
        .bind(timestamp(request.created_at))
        .bind(timestamp(request.updated_at))
        .bind(request.subject.kind_name())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    if inserted.rows_affected() == 0 {
        return Err(request_exists(&request.id));
    }
    Ok(())
}

/// Records a request's progress if it still has the expected status and number of approvals.
async fn update(
    tx: &mut SqliteConnection,
    request: &ChangeRequest,
    status: ChangeRequestStatus,
    approvals: usize,
) -> Result<()> {
    let updated = sqlx::query(include_str!("queries/change_request_update.sql"))
        .bind(request.status.as_str())
        .bind(to_json(&request.approvals)?)
        .bind(&request.reason)
        .bind(request.applied_version.map(to_i64))
        .bind(timestamp(request.updated_at))
        .bind(&request.id)
        .bind(status.as_str())
        .bind(i64::try_from(approvals).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    let exists: Option<i64> = sqlx::query_scalar(include_str!("queries/change_request_exists.sql"))
        .bind(&request.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    Err(match exists {
        Some(_) => request_changed(&request.id),
        None => Error::not_found("change request", request.id.as_str()),
    })
}
