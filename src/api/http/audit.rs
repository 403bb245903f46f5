//! Audit trail (read-only: no route edits or deletes it).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::Result;
use super::extract::{ApiQuery, PathId};
use super::openapi as doc;
use super::query::PageQuery;
use crate::core::access::Caller;
use crate::core::ids::ConfigId;
use crate::core::ports::AuditSubject;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(all_audit))
        .routes(routes!(config_audit))
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    operation_id = "listAudit",
    summary = "The audit trail of everything, newest first",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of audit records", body = crate::core::model::Page<crate::core::model::AuditRecord>),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn all_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response> {
    let records = state
        .service
        .audit(&caller, None, page.cursor, page.limit()?)
        .await?;
    Ok(Json(records).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}/audit",
    tag = "audit",
    operation_id = "listConfigAudit",
    summary = "The audit trail of one config, newest first",
    params(doc::ConfigIdPath, PageQuery),
    responses(
        (status = 200, description = "One page of audit records", body = crate::core::model::Page<crate::core::model::AuditRecord>),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn config_audit(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response> {
    let records = state
        .service
        .audit(
            &caller,
            Some(AuditSubject::Config(id)),
            page.cursor,
            page.limit()?,
        )
        .await?;
    Ok(Json(records).into_response())
}
