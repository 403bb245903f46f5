//! Audit trail (read-only: no route edits or deletes it).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use super::configs::PageQuery;
use super::error::Result;
use super::extract::{ApiQuery, ConfigIdPath};
use crate::core::access::Caller;
use crate::core::ports::AuditSubject;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit", get(all_audit))
        .route("/api/v1/configs/{id}/audit", get(config_audit))
}

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

async fn config_audit(
    State(state): State<AppState>,
    caller: Caller,
    ConfigIdPath(id): ConfigIdPath,
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
