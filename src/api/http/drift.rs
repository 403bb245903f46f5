//! Applied-state reports and drift.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::AppState;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, ConfigIdPath};
use crate::core::ids::Environment;
use crate::core::service::AppliedReport;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/configs/{id}/applied", post(record_applied))
        .route("/api/v1/configs/{id}/drift", get(config_drift))
        .route("/api/v1/drift", get(drift_report))
}

async fn record_applied(
    State(state): State<AppState>,
    caller: crate::core::access::Caller,
    ConfigIdPath(id): ConfigIdPath,
    ApiJson(report): ApiJson<AppliedReport>,
) -> Result<Response> {
    if let Err(error) = caller.require_environment(&report.environment) {
        let operation = "POST /api/v1/configs/{id}/applied";
        return Err(super::access::denied(&state, &caller, operation, error).await);
    }
    let drift = state.service.record_applied(&id, report).await?;
    Ok(Json(drift).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DriftQuery {
    environment: Option<String>,
}

async fn config_drift(
    State(state): State<AppState>,
    ConfigIdPath(id): ConfigIdPath,
    ApiQuery(query): ApiQuery<DriftQuery>,
) -> Result<Response> {
    let environment = query
        .environment
        .as_deref()
        .map(Environment::parse)
        .transpose()?;
    Ok(Json(state.service.drift(&id, environment.as_ref()).await?).into_response())
}

async fn drift_report(State(state): State<AppState>) -> Result<Response> {
    Ok(Json(state.service.drift_report().await?).into_response())
}
