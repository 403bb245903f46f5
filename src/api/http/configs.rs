//! `/api/v1/configs`: versions, history, diff, rollback, delete.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, OptionalApiJson, PathId, path_param};
use super::openapi as doc;
use super::query::{PageQuery, optional_environment};
use crate::core::access::Caller;
use crate::core::approvals::model::ChangeRequest;
use crate::core::error::Error;
use crate::core::ids::ConfigId;
use crate::core::model::{AbTest, Canary, ConfigDocument, ConfigVersion, Metadata};
use crate::core::service::Written;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_configs))
        .routes(routes!(get_config, put_config, delete_config))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(diff))
        .routes(routes!(rollback))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutConfigBody {
    pub config: Value,
    #[serde(default)]
    pub overrides: BTreeMap<String, Value>,
    #[serde(default)]
    pub canary: Option<Canary>,
    #[serde(default)]
    pub ab_test: Option<AbTest>,
    pub metadata: Metadata,
    #[serde(default)]
    pub expected_version: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct VersionCreated {
    config_id: ConfigId,
    version: u64,
    checksum: String,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_of: Option<u64>,
}

pub fn version_etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

/// `If-Match: "3"` (or `3`, `W/"3"`) as an expected version; must agree with the body's.
pub fn expected_version(headers: &HeaderMap, body: Option<u64>) -> Result<Option<u64>> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(body);
    };
    let text = raw.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    let from_header: u64 = text.parse().map_err(|_| {
        Error::invalid(
            "If-Match",
            "If-Match must be a version number such as \"3\"",
        )
    })?;
    if body.is_some_and(|b| b != from_header) {
        return Err(
            Error::invalid("/expectedVersion", "expectedVersion and If-Match disagree").into(),
        );
    }
    Ok(Some(from_header))
}

fn created(version: &ConfigVersion) -> Response {
    let body = VersionCreated {
        config_id: version.id.clone(),
        version: version.version,
        checksum: version.checksum.clone(),
        created_at: version.created_at,
        rollback_of: version.rollback_of,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, version_etag(version.version));
    if let Ok(location) = HeaderValue::from_str(&format!(
        "/api/v1/configs/{}/versions/{}",
        version.id, version.version
    )) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// A committed write (201), or the change request it became (202).
pub fn written(result: Written<ConfigVersion>) -> Response {
    match result {
        Written::Done(version) => created(&version),
        Written::Pending(request) => pending(&request),
    }
}

/// 202 with the change request that now waits for approvals.
pub fn pending(request: &ChangeRequest) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(request)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/change-requests/{}", request.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[tracing::instrument(skip_all, fields(config_id = %id))]
#[utoipa::path(
    put,
    path = "/api/v1/configs/{id}",
    tag = "configs",
    operation_id = "putConfig",
    summary = "Write a new version of a config",
    params(doc::ConfigIdPath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = PutConfigBody,
    responses(
        (status = 201, description = "The new version", body = VersionCreated, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"), ("Location" = String, description = "The new version"))),
        (status = 202, description = "The change needs approvals: the change request now waiting", body = crate::core::approvals::model::ChangeRequest, headers(("Location" = String, description = "The change request"))),
        doc::BadRequestNotFoundOrConflict,
        (status = 422, response = doc::Unprocessable)
    )
)]
async fn put_config(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PutConfigBody>,
) -> Result<Response> {
    let expected = expected_version(&headers, body.expected_version)?;
    let doc = ConfigDocument {
        config: body.config,
        overrides: body.overrides,
        canary: body.canary,
        ab_test: body.ab_test,
    };
    let result = state
        .service
        .put_config(&caller, &id, doc, caller.stamp(body.metadata), expected)
        .await?;
    Ok(written(result))
}

#[tracing::instrument(skip_all, fields(config_id = %id))]
#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}",
    tag = "configs",
    operation_id = "getConfig",
    summary = "The latest version of a config",
    params(doc::ConfigIdPath),
    responses(
        (status = 200, description = "The latest version", body = ConfigVersion, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"))),
        doc::BadRequestOrNotFound
    )
)]
async fn get_config(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
) -> Result<Response> {
    let version = state.service.config(&caller, &id).await?;
    let mut response = Json(version.as_ref()).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, version_etag(version.version));
    super::mark_if_stale(&state, &mut response);
    Ok(response)
}

/// The optional body of a delete (configs and flags).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteBody {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    expected_version: Option<u64>,
}

impl DeleteBody {
    /// The delete's metadata (the caller's, stamped; without a body, by the caller alone) and
    /// its expected version (body or `If-Match`).
    pub fn resolve(
        body: Option<Self>,
        headers: &HeaderMap,
        caller: &Caller,
    ) -> Result<(Metadata, Option<u64>)> {
        let body = body.unwrap_or_default();
        let expected = expected_version(headers, body.expected_version)?;
        Ok((caller.metadata_or_own(body.metadata), expected))
    }
}

#[tracing::instrument(skip_all, fields(config_id = %id))]
#[utoipa::path(
    delete,
    path = "/api/v1/configs/{id}",
    tag = "configs",
    operation_id = "deleteConfig",
    summary = "Delete a config (its history and audit stay)",
    params(doc::ConfigIdPath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = Option<DeleteBody>,
    responses(
        (status = 200, description = "Deleted", body = doc::schemas::ConfigDeleted),
        (status = 202, description = "The change needs approvals: the change request now waiting", body = crate::core::approvals::model::ChangeRequest, headers(("Location" = String, description = "The change request"))),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn delete_config(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    headers: HeaderMap,
    OptionalApiJson(body): OptionalApiJson<DeleteBody>,
) -> Result<Response> {
    let (metadata, expected) = DeleteBody::resolve(body, &headers, &caller)?;
    let result = state
        .service
        .delete_config(&caller, &id, metadata, expected)
        .await?;
    Ok(match result {
        Written::Done(version) => {
            Json(serde_json::json!({"configId": id, "version": version, "deleted": true}))
                .into_response()
        }
        Written::Pending(request) => pending(&request),
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    prefix: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/configs",
    tag = "configs",
    operation_id = "listConfigs",
    summary = "List configs",
    params(ListQuery),
    responses(
        (status = 200, description = "Every config the caller may read", body = doc::schemas::Items<crate::core::model::ConfigSummary>),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn list_configs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response> {
    let items = state
        .service
        .list_configs(&caller, query.prefix.as_deref())
        .await?;
    let mut response = Json(serde_json::json!({ "items": items })).into_response();
    super::mark_if_stale(&state, &mut response);
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}/versions",
    tag = "configs",
    operation_id = "listConfigVersions",
    summary = "The history of a config, newest first",
    params(doc::ConfigIdPath, PageQuery),
    responses(
        (status = 200, description = "One page of versions", body = crate::core::model::Page<ConfigVersion>),
        doc::BadRequestOrNotFound
    )
)]
async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response> {
    let page = state
        .service
        .versions(&caller, &id, page.cursor, page.limit()?)
        .await?;
    Ok(Json(page).into_response())
}

pub fn version_number(raw: &str, field: &str) -> Result<u64> {
    raw.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::invalid(field, format!("{field} must be a positive integer")).into())
}

#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}/versions/{version}",
    tag = "configs",
    operation_id = "getConfigVersion",
    summary = "One version of a config",
    params(doc::ConfigIdPath, ("version" = u64, Path, description = "A version number, 1 or more")),
    responses(
        (status = 200, description = "The version", body = ConfigVersion, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"))),
        doc::BadRequestOrNotFound
    )
)]
async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    params: RawPathParams,
) -> Result<Response> {
    let raw = path_param(&params, "version");
    let version = state
        .service
        .version(&caller, &id, version_number(raw, "version")?)
        .await?;
    let etag = version_etag(version.version);
    let mut response = Json(version).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    from: Option<u64>,
    to: Option<u64>,
    environment: Option<String>,
}

/// `to` defaults to the latest version and `from` to the one before it.
#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}/diff",
    tag = "configs",
    operation_id = "diffConfig",
    summary = "The RFC 6902 patch between two versions",
    params(doc::ConfigIdPath, DiffQuery),
    responses(
        (status = 200, description = "The patch from `from` to `to`", body = crate::core::configs::DiffResult),
        doc::BadRequestOrNotFound
    )
)]
async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    ApiQuery(query): ApiQuery<DiffQuery>,
) -> Result<Response> {
    let environment = optional_environment(query.environment.as_deref())?;
    let result = state
        .service
        .diff(&caller, &id, query.from, query.to, environment.as_ref())
        .await?;
    Ok(Json(result).into_response())
}

/// `{targetVersion, metadata, expectedVersion?}` (configs and flags).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackBody {
    pub target_version: u64,
    pub metadata: Metadata,
    #[serde(default)]
    pub expected_version: Option<u64>,
}

#[tracing::instrument(skip_all, fields(config_id = %id))]
#[utoipa::path(
    post,
    path = "/api/v1/configs/{id}/rollback",
    tag = "configs",
    operation_id = "rollbackConfig",
    summary = "A new version equal to an earlier one",
    params(doc::ConfigIdPath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = RollbackBody,
    responses(
        (status = 201, description = "The new version", body = VersionCreated, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"), ("Location" = String, description = "The new version"))),
        (status = 202, description = "The change needs approvals: the change request now waiting", body = crate::core::approvals::model::ChangeRequest, headers(("Location" = String, description = "The change request"))),
        doc::BadRequestNotFoundOrConflict,
        (status = 422, response = doc::Unprocessable)
    )
)]
async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<Response> {
    let expected = expected_version(&headers, body.expected_version)?;
    let version = state
        .service
        .rollback(
            &caller,
            &id,
            body.target_version,
            caller.stamp(body.metadata),
            expected,
        )
        .await?;
    Ok(written(version))
}
