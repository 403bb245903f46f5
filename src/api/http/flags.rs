//! `/api/v1/feature-flags`: flag versions, history, rollback, audit and evaluation.

mod evaluate;

pub(crate) use evaluate::evaluate_direct;

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::configs::{
    DeleteBody, RollbackBody, expected_version, pending, version_etag, version_number,
};
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, OptionalApiJson, PathId, from_value, path_param};
use super::openapi as doc;
use super::query::PageQuery;
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::flags::{FlagDefinition, FlagVersion};
use crate::core::ids::FlagKey;
use crate::core::model::Metadata;
use crate::core::service::Written;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_flags))
        .merge(evaluate::router())
        .routes(routes!(get_flag, put_flag, delete_flag))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(rollback))
        .routes(routes!(audit))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct FlagCreated<'a> {
    flag_key: &'a FlagKey,
    version: u64,
    checksum: &'a str,
    created_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_of: Option<u64>,
}

fn created(flag: &FlagVersion) -> Response {
    let body = FlagCreated {
        flag_key: &flag.id,
        version: flag.version,
        checksum: &flag.checksum,
        created_at: flag.created_at,
        rollback_of: flag.rollback_of,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, version_etag(flag.version));
    if let Ok(location) = HeaderValue::from_str(&format!(
        "/api/v1/feature-flags/{}/versions/{}",
        flag.id, flag.version
    )) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// The body of a flag write: the definition's fields plus `metadata` and `expectedVersion`.
fn split_write_body(body: Value) -> Result<(FlagDefinition, Metadata, Option<u64>)> {
    let Value::Object(mut fields) = body else {
        return Err(Error::invalid("/", "the body must be a JSON object").into());
    };
    let metadata = fields
        .remove("metadata")
        .ok_or_else(|| Error::invalid("/metadata", "missing field `metadata`"))?;
    let metadata: Metadata = from_value(metadata, "/metadata")?;
    let expected = match fields.remove("expectedVersion") {
        None | Some(Value::Null) => None,
        Some(value) => Some(from_value::<u64>(value, "/expectedVersion")?),
    };
    let definition: FlagDefinition = from_value(Value::Object(fields), "")?;
    Ok((definition, metadata, expected))
}

#[tracing::instrument(skip_all, fields(flag_key = %key))]
#[utoipa::path(
    put,
    path = "/api/v1/feature-flags/{key}",
    tag = "flags",
    operation_id = "putFlag",
    summary = "Write a new version of a flag",
    params(doc::FlagKeyPath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = doc::schemas::FlagWrite,
    responses(
        (status = 201, description = "The new version", body = FlagCreated, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"), ("Location" = String, description = "The new version"))),
        (status = 202, description = "The change needs approvals: the change request now waiting", body = crate::core::approvals::model::ChangeRequest, headers(("Location" = String, description = "The change request"))),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn put_flag(
    State(state): State<AppState>,
    caller: Caller,
    PathId(key): PathId<FlagKey>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response> {
    let (definition, metadata, expected) = split_write_body(body)?;
    let expected = expected_version(&headers, expected)?;
    let flag = state
        .flags
        .put_flag(&caller, &key, definition, caller.stamp(metadata), expected)
        .await?;
    Ok(flag_written(flag))
}

/// A committed flag write (201), or the change request it became (202).
fn flag_written(result: Written<Arc<FlagVersion>>) -> Response {
    match result {
        Written::Done(version) => created(&version),
        Written::Pending(request) => pending(&request),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/feature-flags/{key}",
    tag = "flags",
    operation_id = "getFlag",
    summary = "The latest version of a flag",
    params(doc::FlagKeyPath),
    responses(
        (status = 200, description = "The latest version", body = crate::core::flags::FlagVersion, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"))),
        doc::BadRequestOrNotFound
    )
)]
async fn get_flag(
    State(state): State<AppState>,
    caller: Caller,
    PathId(key): PathId<FlagKey>,
) -> Result<Response> {
    let flag = state.flags.flag(&caller, &key).await?;
    let mut response = Json(flag.as_ref()).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, version_etag(flag.version));
    super::mark_if_stale(&state, &mut response);
    Ok(response)
}

#[tracing::instrument(skip_all, fields(flag_key = %key))]
#[utoipa::path(
    delete,
    path = "/api/v1/feature-flags/{key}",
    tag = "flags",
    operation_id = "deleteFlag",
    summary = "Delete a flag (its history and audit stay)",
    params(doc::FlagKeyPath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = Option<super::configs::DeleteBody>,
    responses(
        (status = 200, description = "Deleted", body = doc::schemas::FlagDeleted),
        (status = 202, description = "The change needs approvals: the change request now waiting", body = crate::core::approvals::model::ChangeRequest, headers(("Location" = String, description = "The change request"))),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn delete_flag(
    State(state): State<AppState>,
    caller: Caller,
    PathId(key): PathId<FlagKey>,
    headers: HeaderMap,
    OptionalApiJson(body): OptionalApiJson<DeleteBody>,
) -> Result<Response> {
    let (metadata, expected) = DeleteBody::resolve(body, &headers, &caller)?;
    match state
        .flags
        .delete_flag(&caller, &key, metadata, expected)
        .await?
    {
        Written::Done(_) => {
            Ok(Json(serde_json::json!({"flagKey": key, "deleted": true})).into_response())
        }
        Written::Pending(request) => Ok(pending(&request)),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    service: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/feature-flags",
    tag = "flags",
    operation_id = "listFlags",
    summary = "List flags",
    params(ListQuery),
    responses(
        (status = 200, description = "Every flag the caller may read", body = doc::schemas::Items<crate::core::flags::FlagVersion>),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn list_flags(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response> {
    let flags = state.flags.flags(&caller, query.service.as_deref()).await?;
    let items: Vec<&FlagVersion> = flags.iter().map(AsRef::as_ref).collect();
    let mut response = Json(serde_json::json!({ "items": items })).into_response();
    super::mark_if_stale(&state, &mut response);
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/v1/feature-flags/{key}/versions",
    tag = "flags",
    operation_id = "listFlagVersions",
    summary = "The history of a flag, newest first",
    params(doc::FlagKeyPath, PageQuery),
    responses(
        (status = 200, description = "One page of versions", body = crate::core::model::Page<crate::core::flags::FlagVersion>),
        doc::BadRequestOrNotFound
    )
)]
async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    PathId(key): PathId<FlagKey>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response> {
    let page = state
        .flags
        .versions(&caller, &key, page.cursor, page.limit()?)
        .await?;
    Ok(Json(page).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/feature-flags/{key}/versions/{version}",
    tag = "flags",
    operation_id = "getFlagVersion",
    summary = "One version of a flag",
    params(doc::FlagKeyPath, ("version" = u64, Path, description = "A version number, 1 or more")),
    responses(
        (status = 200, description = "The version", body = crate::core::flags::FlagVersion, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"))),
        doc::BadRequestOrNotFound
    )
)]
async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    PathId(key): PathId<FlagKey>,
    params: RawPathParams,
) -> Result<Response> {
    let number = version_number(path_param(&params, "version"), "version")?;
    let flag = state.flags.version(&caller, &key, number).await?;
    let etag = version_etag(flag.version);
    let mut response = Json(flag).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

#[tracing::instrument(skip_all, fields(flag_key = %key))]
#[utoipa::path(
    post,
    path = "/api/v1/feature-flags/{key}/rollback",
    tag = "flags",
    operation_id = "rollbackFlag",
    summary = "A new version equal to an earlier one",
    params(doc::FlagKeyPath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = super::configs::RollbackBody,
    responses(
        (status = 201, description = "The new version", body = FlagCreated, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"), ("Location" = String, description = "The new version"))),
        (status = 202, description = "The change needs approvals: the change request now waiting", body = crate::core::approvals::model::ChangeRequest, headers(("Location" = String, description = "The change request"))),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    PathId(key): PathId<FlagKey>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<Response> {
    let expected = expected_version(&headers, body.expected_version)?;
    let flag = state
        .flags
        .rollback(
            &caller,
            &key,
            body.target_version,
            caller.stamp(body.metadata),
            expected,
        )
        .await?;
    Ok(flag_written(flag))
}

#[utoipa::path(
    get,
    path = "/api/v1/feature-flags/{key}/audit",
    tag = "flags",
    operation_id = "listFlagAudit",
    summary = "The audit trail of one flag, newest first",
    params(doc::FlagKeyPath, PageQuery),
    responses(
        (status = 200, description = "One page of audit records", body = crate::core::model::Page<crate::core::model::AuditRecord>),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    PathId(key): PathId<FlagKey>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response> {
    let page = state
        .flags
        .audit(&caller, &key, page.cursor, page.limit()?)
        .await?;
    Ok(Json(page).into_response())
}
