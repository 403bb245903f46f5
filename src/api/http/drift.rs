//! Applied-state reports and drift.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::AppState;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, ConfigIdPath};
use crate::core::access::Caller;
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
    caller: Caller,
    ConfigIdPath(id): ConfigIdPath,
    ApiJson(report): ApiJson<AppliedReport>,
) -> Result<Response> {
    let drift = state.service.record_applied(&caller, &id, report).await?;
    Ok(Json(drift).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DriftQuery {
    environment: Option<String>,
}

async fn config_drift(
    State(state): State<AppState>,
    caller: Caller,
    ConfigIdPath(id): ConfigIdPath,
    ApiQuery(query): ApiQuery<DriftQuery>,
) -> Result<Response> {
    let environment = query
        .environment
        .as_deref()
        .map(Environment::parse)
        .transpose()?;
    Ok(Json(
        state
            .service
            .drift(&caller, &id, environment.as_ref())
            .await?,
    )
    .into_response())
}

async fn drift_report(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    Ok(Json(state.service.drift_report(&caller).await?).into_response())
}
