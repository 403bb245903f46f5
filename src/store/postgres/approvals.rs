//! Change requests (approvals).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::commit::{Change, Operation};
use super::rows::{parse_json, to_json};
use super::{PostgresStore, db_error};
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
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[async_trait]
impl ChangeRequestStore for PostgresStore {
    async fn put_change_request(&self, write: ChangeRequestWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>> {
        let query = sqlx::query_as(include_str!("queries/change_request.sql")).bind(id);
        self.fetch_one_decoded(query, ChangeRequestRow::decode)
            .await
    }

    async fn change_requests(&self, query: ChangeRequestQuery) -> Result<Vec<ChangeRequest>> {
        let query = sqlx::query_as(include_str!("queries/change_requests.sql"))
            .bind(query.status.map(ChangeRequestStatus::as_str))
            .bind(query.subject.as_ref().map(Subject::kind_name))
            .bind(query.subject.as_ref().map(Subject::as_str))
            .bind(&query.environment)
            .bind(i64::from(query.limit))
            .bind(&query.prefixes);
        self.fetch_decoded(query, ChangeRequestRow::decode).await
    }
}

#[async_trait]
impl Operation for ChangeRequestWrite {
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
        let request = &self.request;
        match self.expected {
            None => insert(tx, request).await?,
            Some((status, approvals)) => update(tx, request, status, approvals).await?,
        }
        Ok(Change::from(self))
    }
}

/// Inserts a new request; its id must be new.
async fn insert(tx: &mut PgConnection, request: &ChangeRequest) -> Result<()> {
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
        .bind(request.created_at)
        .bind(request.updated_at)
        .bind(request.subject.kind_name())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    if inserted.rows_affected() == 0 {
        return Err(request_exists(&request.id));
    }
    Ok(())
}

/// Records a request's progress if its (status, number of approvals) are still `expected`.
async fn update(
    tx: &mut PgConnection,
    request: &ChangeRequest,
    status: ChangeRequestStatus,
    approvals: usize,
) -> Result<()> {
    let updated = sqlx::query(include_str!("queries/change_request_update.sql"))
        .bind(request.status.as_str())
        .bind(to_json(&request.approvals)?)
        .bind(&request.reason)
        .bind(request.applied_version.map(to_i64))
        .bind(request.updated_at)
        .bind(&request.id)
        .bind(status.as_str())
        .bind(i32::try_from(approvals).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    let exists: Option<i32> = sqlx::query_scalar(include_str!("queries/change_request_exists.sql"))
        .bind(&request.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    Err(match exists {
        Some(_) => request_changed(&request.id),
        None => Error::not_found("change request", request.id.as_str()),
    })
}
