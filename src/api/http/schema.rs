//! `/api/v1/configs/{id}/schema`: register, read, and check a candidate against it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::AppState;
use super::error::Result;
use super::extract::{ApiJson, ConfigIdPath};
use crate::core::access::Caller;
use crate::core::model::{ConfigDocument, Metadata};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/configs/{id}/schema",
            put(put_schema).get(get_schema),
        )
        .route("/api/v1/configs/{id}/schema/validate", post(validate))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutSchemaBody {
    schema: Value,
    metadata: Metadata,
}

#[tracing::instrument(skip_all, fields(config_id = %id))]
async fn put_schema(
    State(state): State<AppState>,
    caller: Caller,
    ConfigIdPath(id): ConfigIdPath,
    ApiJson(body): ApiJson<PutSchemaBody>,
) -> Result<Response> {
    let schema = state
        .service
        .put_schema(&caller, &id, body.schema, caller.stamp(body.metadata))
        .await?;
    Ok((StatusCode::CREATED, Json(schema)).into_response())
}

async fn get_schema(
    State(state): State<AppState>,
    caller: Caller,
    ConfigIdPath(id): ConfigIdPath,
) -> Result<Response> {
    let schema = state.service.schema(&caller, &id).await?;
    Ok(Json(schema).into_response())
}

/// A candidate: the same fields as a config write, without metadata.
async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    ConfigIdPath(id): ConfigIdPath,
    ApiJson(candidate): ApiJson<ConfigDocument>,
) -> Result<Response> {
    let report = state.service.validate(&caller, &id, &candidate).await?;
    Ok(Json(report).into_response())
}
