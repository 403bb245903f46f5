//! Applied-state reports and drift.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, PathId};
use super::openapi as doc;
use super::query::EnvironmentQuery;
use crate::core::access::Caller;
use crate::core::ids::ConfigId;
use crate::core::service::AppliedReport;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_applied))
        .routes(routes!(config_drift))
        .routes(routes!(drift_report))
}

#[utoipa::path(
    post,
    path = "/api/v1/configs/{id}/applied",
    tag = "drift",
    operation_id = "reportApplied",
    summary = "Report the version an instance applied",
    params(doc::ConfigIdPath),
    request_body = AppliedReport,
    responses(
        (status = 200, description = "The config's drift after the report", body = crate::core::drift::ConfigDrift),
        doc::BadRequestOrNotFound
    )
)]
async fn record_applied(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    ApiJson(report): ApiJson<AppliedReport>,
) -> Result<Response> {
    let drift = state.service.record_applied(&caller, &id, report).await?;
    Ok(Json(drift).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}/drift",
    tag = "drift",
    operation_id = "getConfigDrift",
    summary = "Drift of one config's instances",
    params(doc::ConfigIdPath, EnvironmentQuery),
    responses(
        (status = 200, description = "Each reporting instance: in_sync, drifted or stale", body = crate::core::drift::ConfigDrift),
        doc::BadRequestOrNotFound
    )
)]
async fn config_drift(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    ApiQuery(query): ApiQuery<EnvironmentQuery>,
) -> Result<Response> {
    let environment = query.environment()?;
    let drift = state
        .service
        .drift(&caller, &id, environment.as_ref())
        .await?;
    Ok(Json(drift).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/drift",
    tag = "drift",
    operation_id = "getDriftReport",
    summary = "Drift over every config",
    responses(
        (status = 200, description = "Drift of every config with reports", body = crate::core::configs::DriftReport)
    )
)]
async fn drift_report(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    Ok(Json(state.service.drift_report(&caller).await?).into_response())
}
