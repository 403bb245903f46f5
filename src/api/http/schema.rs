//! `/api/v1/configs/{id}/schema`: register, read, and check a candidate against it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::Result;
use super::extract::{ApiJson, PathId};
use super::openapi as doc;
use crate::core::access::Caller;
use crate::core::ids::ConfigId;
use crate::core::model::{ConfigDocument, Metadata};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_schema, get_schema))
        .routes(routes!(validate))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutSchemaBody {
    schema: Value,
    metadata: Metadata,
}

#[tracing::instrument(skip_all, fields(config_id = %id))]
#[utoipa::path(
    put,
    path = "/api/v1/configs/{id}/schema",
    tag = "schemas",
    operation_id = "putSchema",
    summary = "Register the JSON Schema of a config (the current config must satisfy it)",
    params(doc::ConfigIdPath),
    request_body = PutSchemaBody,
    responses(
        (status = 201, description = "The new schema version", body = crate::core::model::SchemaVersion),
        doc::BadRequestOrNotFound,
        (status = 422, response = doc::Unprocessable)
    )
)]
async fn put_schema(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    ApiJson(body): ApiJson<PutSchemaBody>,
) -> Result<Response> {
    let schema = state
        .service
        .put_schema(&caller, &id, body.schema, caller.stamp(body.metadata))
        .await?;
    Ok((StatusCode::CREATED, Json(schema)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}/schema",
    tag = "schemas",
    operation_id = "getSchema",
    summary = "The registered JSON Schema of a config",
    params(doc::ConfigIdPath),
    responses(
        (status = 200, description = "The current schema version", body = crate::core::model::SchemaVersion),
        doc::BadRequestOrNotFound
    )
)]
async fn get_schema(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
) -> Result<Response> {
    let schema = state.service.schema(&caller, &id).await?;
    Ok(Json(schema).into_response())
}

/// A candidate: the same fields as a config write, without metadata.
#[utoipa::path(
    post,
    path = "/api/v1/configs/{id}/schema/validate",
    tag = "schemas",
    operation_id = "validateConfig",
    summary = "Check a candidate config against the schema (writes nothing)",
    params(doc::ConfigIdPath),
    request_body = ConfigDocument,
    responses(
        (status = 200, description = "Whether the candidate and each of its views satisfy the schema", body = crate::core::configs::ValidationReport),
        doc::BadRequestOrNotFound
    )
)]
async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    ApiJson(candidate): ApiJson<ConfigDocument>,
) -> Result<Response> {
    let report = state.service.validate(&caller, &id, &candidate).await?;
    Ok(Json(report).into_response())
}
