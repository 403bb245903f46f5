//! `/api/v1/deployment-strategies…`: named, versioned deployment strategies beside the
//! read-only built-ins.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::configs::{DeleteBody, expected_version, version_etag};
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, OptionalApiJson, PathId};
use super::openapi as doc;
use crate::core::access::Caller;
use crate::core::deployments::strategies::NamedStrategy;
use crate::core::deployments::strategy::Strategy;
use crate::core::error::Error;
use crate::core::ids::StrategyName;
use crate::core::model::Metadata;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(describe, put, delete))
        .routes(routes!(versions))
}

#[utoipa::path(
    get,
    path = "/api/v1/deployment-strategies",
    tag = "strategies",
    operation_id = "listStrategies",
    summary = "Stored strategies beside the built-ins",
    responses(
        (status = 200, description = "Every strategy", body = doc::schemas::Items<crate::core::deployments::strategies::NamedStrategy>)
    )
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let items = state.strategies.list(&caller).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/deployment-strategies/{name}",
    tag = "strategies",
    operation_id = "getStrategy",
    summary = "One strategy (a built-in has no version)",
    params(doc::StrategyNamePath),
    responses(
        (status = 200, description = "The strategy", body = crate::core::deployments::strategies::NamedStrategy, headers(("ETag" = String, description = "A stored strategy's version, for `If-Match`"))),
        doc::BadRequestOrNotFound
    )
)]
async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<StrategyName>,
) -> Result<Response> {
    let strategy = state.strategies.get(&caller, &name).await?;
    let version = match &strategy {
        NamedStrategy::Stored(stored) => Some(stored.version.version),
        NamedStrategy::BuiltIn(_) => None,
    };
    let mut response = Json(strategy).into_response();
    if let Some(version) = version {
        // As configs and flags: the version, for If-Match on the next write.
        response
            .headers_mut()
            .insert(header::ETAG, version_etag(version));
    }
    Ok(response)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = StrategyWrite)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutBody {
    strategy: Strategy,
    metadata: Metadata,
    #[serde(default)]
    expected_version: Option<u64>,
}

#[utoipa::path(
    put,
    path = "/api/v1/deployment-strategies/{name}",
    tag = "strategies",
    operation_id = "putStrategy",
    summary = "Write a new version of a strategy",
    params(doc::StrategyNamePath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = PutBody,
    responses(
        (status = 201, description = "The new version", body = crate::core::deployments::strategy::StrategyVersion, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"))),
        (status = 400, response = doc::BadRequest),
        (status = 409, response = doc::Conflict)
    )
)]
async fn put(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<StrategyName>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PutBody>,
) -> Result<Response> {
    let expected = expected_version(&headers, body.expected_version)?;
    let metadata = caller.stamp(body.metadata);
    let version = state
        .strategies
        .put(&caller, &name, body.strategy, metadata, expected)
        .await
        .map_err(in_body)?;
    let mut response = (StatusCode::CREATED, Json(&version)).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, version_etag(version.version));
    Ok(response)
}

/// The strategy's rules name fields inside it; in the request body it sits under `strategy`.
fn in_body(error: Error) -> Error {
    match error {
        Error::InvalidInput { field, message }
            if field.starts_with("/rollout")
                || field.starts_with("/gate")
                || field.starts_with("/finalBakeSecs")
                || field.starts_with("/description") =>
        {
            Error::InvalidInput {
                field: format!("/strategy{field}"),
                message,
            }
        }
        other => other,
    }
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VersionsParams {
    limit: Option<u32>,
    cursor: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/deployment-strategies/{name}/versions",
    tag = "strategies",
    operation_id = "listStrategyVersions",
    summary = "The history of a strategy, newest first",
    params(doc::StrategyNamePath, VersionsParams),
    responses(
        (status = 200, description = "One page of versions", body = doc::schemas::Listing<crate::core::deployments::strategy::StrategyVersion>),
        doc::BadRequestOrNotFound
    )
)]
async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<StrategyName>,
    ApiQuery(params): ApiQuery<VersionsParams>,
) -> Result<Response> {
    let versions = state
        .strategies
        .versions(&caller, &name, params.cursor, params.limit)
        .await?;
    let next_cursor = versions.last().map(|v| v.version).filter(|v| *v > 1);
    Ok(Json(serde_json::json!({ "items": versions, "nextCursor": next_cursor })).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/deployment-strategies/{name}",
    tag = "strategies",
    operation_id = "deleteStrategy",
    summary = "Delete a stored strategy",
    params(doc::StrategyNamePath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = Option<super::configs::DeleteBody>,
    responses(
        (status = 204, description = "Deleted"),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<StrategyName>,
    headers: HeaderMap,
    OptionalApiJson(body): OptionalApiJson<DeleteBody>,
) -> Result<Response> {
    let (metadata, expected) = DeleteBody::resolve(body, &headers, &caller)?;
    state
        .strategies
        .delete(&caller, &name, metadata, expected)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
