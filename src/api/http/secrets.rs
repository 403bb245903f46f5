//! `/api/v1/secrets…`: the built-in secret store. Values go in through `PUT` and come out only
//! through `GET …/value` (audited); everything else shows metadata.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::configs::{DeleteBody, expected_version, version_etag};
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, OptionalApiJson, PathId};
use super::openapi as doc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::ids::SecretName;
use crate::core::model::Metadata;
use crate::core::secrets::model::{SecretSummary, Stage};
use crate::core::secrets::rotation::RotationPolicy;
use crate::core::secrets::service::{PolicyChange, RotateRequest, Selector};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(describe, put, delete))
        .routes(routes!(value))
        .routes(routes!(rotate))
        .routes(routes!(promote))
        .routes(routes!(rewrap))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RewrapBody {
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[utoipa::path(
    post,
    path = "/api/v1/secret-keys/rewrap",
    tag = "secrets",
    operation_id = "rewrapSecrets",
    summary = "Re-seal every stored value under the current key",
    request_body = Option<RewrapBody>,
    responses(
        (status = 200, description = "What was re-sealed", body = crate::core::secrets::service::RewrapReport),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn rewrap(
    State(state): State<AppState>,
    caller: Caller,
    OptionalApiJson(body): OptionalApiJson<RewrapBody>,
) -> Result<Response> {
    let metadata = caller.metadata_or_own(body.unwrap_or_default().metadata);
    let report = state.secrets.rewrap_all(&caller, metadata).await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateBody {
    /// The new value; the rotation policy generates one when absent.
    #[serde(default)]
    value: Option<Value>,
    /// Stage the value as `pending` rather than making it current.
    #[serde(default)]
    pending: bool,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    expected_version: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/api/v1/secrets/{name}/rotate",
    tag = "secrets",
    operation_id = "rotateSecret",
    summary = "Rotate: a given or generated value becomes current (or pending)",
    params(doc::SecretNamePath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = Option<RotateBody>,
    responses(
        (status = 201, description = "The new version's summary (never the value)", body = crate::core::secrets::model::SecretSummary, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"))),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<SecretName>,
    headers: HeaderMap,
    OptionalApiJson(body): OptionalApiJson<RotateBody>,
) -> Result<Response> {
    let body = body.unwrap_or_default();
    let request = RotateRequest {
        value: body.value,
        pending: body.pending,
        expected: expected_version(&headers, body.expected_version)?,
    };
    let metadata = caller.metadata_or_own(body.metadata);
    let summary = state
        .secrets
        .rotate(&caller, &name, request, metadata)
        .await?;
    Ok(created(&summary))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PromoteBody {
    /// The pending version the caller means (refused when another one is pending).
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[utoipa::path(
    post,
    path = "/api/v1/secrets/{name}/promote",
    tag = "secrets",
    operation_id = "promoteSecret",
    summary = "Make the pending version current",
    params(doc::SecretNamePath),
    request_body = Option<PromoteBody>,
    responses(
        (status = 201, description = "The new version's summary (never the value)", body = crate::core::secrets::model::SecretSummary, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"))),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<SecretName>,
    OptionalApiJson(body): OptionalApiJson<PromoteBody>,
) -> Result<Response> {
    let body = body.unwrap_or_default();
    let metadata = caller.metadata_or_own(body.metadata);
    let summary = state
        .secrets
        .promote(&caller, &name, body.version, metadata)
        .await?;
    Ok(created(&summary))
}

/// `201 Created` with the new version's summary and its ETag.
fn created(summary: &SecretSummary) -> Response {
    let mut response = (StatusCode::CREATED, Json(summary)).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, version_etag(summary.version));
    response
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SecretWrite)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutBody {
    value: Value,
    metadata: Metadata,
    #[serde(default)]
    expected_version: Option<u64>,
    /// Absent: keep the policy; `null`: remove it; an object: set it.
    #[serde(default, deserialize_with = "present")]
    rotation: Option<Option<RotationPolicy>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`, by `default`).
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[utoipa::path(
    put,
    path = "/api/v1/secrets/{name}",
    tag = "secrets",
    operation_id = "putSecret",
    summary = "Store a new current value",
    params(doc::SecretNamePath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = PutBody,
    responses(
        (status = 201, description = "The new version's summary (never the value)", body = crate::core::secrets::model::SecretSummary, headers(("ETag" = String, description = "The version, `\"N\"`, for `If-Match`"))),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn put(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<SecretName>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PutBody>,
) -> Result<Response> {
    let expected = expected_version(&headers, body.expected_version)?;
    let policy = match body.rotation {
        None => PolicyChange::Keep,
        Some(None) => PolicyChange::Remove,
        Some(Some(policy)) => PolicyChange::Set(policy),
    };
    let summary = state
        .secrets
        .put(
            &caller,
            &name,
            &body.value,
            caller.stamp(body.metadata),
            policy,
            expected,
        )
        .await?;
    Ok(created(&summary))
}

#[utoipa::path(
    get,
    path = "/api/v1/secrets",
    tag = "secrets",
    operation_id = "listSecrets",
    summary = "Secrets (metadata only)",
    responses(
        (status = 200, description = "Every secret the caller may see", body = doc::schemas::Items<crate::core::secrets::model::SecretSummary>)
    )
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let items = state.secrets.list(&caller).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/secrets/{name}",
    tag = "secrets",
    operation_id = "getSecret",
    summary = "A secret's versions, stages and policy (never the value)",
    params(doc::SecretNamePath),
    responses(
        (status = 200, description = "The secret", body = crate::core::secrets::service::SecretInfo),
        doc::BadRequestOrNotFound
    )
)]
async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<SecretName>,
) -> Result<Response> {
    Ok(Json(state.secrets.describe(&caller, &name).await?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValueQuery {
    stage: Option<String>,
    version: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/secrets/{name}/value",
    tag = "secrets",
    operation_id = "getSecretValue",
    summary = "Read a value (audited; needs manage-secrets)",
    params(doc::SecretNamePath, ValueQuery),
    responses(
        (status = 200, description = "The value; `Cache-Control: no-store`", body = crate::core::secrets::model::SecretValue),
        doc::BadRequestOrNotFound
    )
)]
async fn value(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<SecretName>,
    ApiQuery(query): ApiQuery<ValueQuery>,
) -> Result<Response> {
    let selector = match (query.stage.as_deref(), query.version) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("version", "name a stage or a version, not both").into());
        }
        (_, Some(0)) => return Err(Error::invalid("version", "versions start at 1").into()),
        (_, Some(version)) => Selector::Version(version),
        (Some(stage), None) => Selector::Stage(Stage::parse(stage, "stage")?),
        (None, None) => Selector::Stage(Stage::Current),
    };
    let reader = caller.stamp(Metadata {
        actor: caller.actor_or("anonymous"),
        ..Default::default()
    });
    let value = state
        .secrets
        .value(&caller, &name, selector, &reader)
        .await?;
    let mut response = Json(value).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[utoipa::path(
    delete,
    path = "/api/v1/secrets/{name}",
    tag = "secrets",
    operation_id = "deleteSecret",
    summary = "Delete a secret",
    params(doc::SecretNamePath, ("If-Match" = Option<String>, Header, description = "The expected current version (`\"3\"`); must agree with `expectedVersion`")),
    request_body = Option<super::configs::DeleteBody>,
    responses(
        (status = 200, description = "Deleted", body = doc::schemas::SecretDeleted),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathId(name): PathId<SecretName>,
    headers: HeaderMap,
    OptionalApiJson(body): OptionalApiJson<DeleteBody>,
) -> Result<Response> {
    let (metadata, expected) = DeleteBody::resolve(body, &headers, &caller)?;
    let version = state
        .secrets
        .delete(&caller, &name, metadata, expected)
        .await?;
    Ok(
        Json(serde_json::json!({"name": name, "version": version, "deleted": true}))
            .into_response(),
    )
}
