//! `/api/v1/registry…`: the service registry. Register, heartbeat, deregister (the `register`
//! permission, scoped by service); discover, balanced URL, listings (reading); health checks
//! and maintenance (writing).

use axum::Json;
use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::{ApiJson, ApiQuery, OptionalApiJson, PathId, path_param};
use super::openapi as doc;
use super::query::EnvironmentQuery;
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::ids::{InstanceId, ServiceName};
use crate::core::registry::model::{Heartbeat, Registration};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(deregister))
        .routes(routes!(services))
        .routes(routes!(service))
        .routes(routes!(discover))
        .routes(routes!(balanced_url))
        .routes(routes!(check_health))
        .routes(routes!(heartbeat))
        .routes(routes!(maintenance_on, maintenance_off))
}

/// `{service}` and `{id}` path segments.
struct InstancePath(ServiceName, InstanceId);

impl<S: Send + Sync> FromRequestParts<S> for InstancePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| Error::invalid("id", r.body_text()))?;
        Ok(InstancePath(
            ServiceName::parse_field(path_param(&params, "service"), "service")?,
            InstanceId::parse_field(path_param(&params, "id"), "id")?,
        ))
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/registry/register",
    tag = "registry",
    operation_id = "registerInstance",
    summary = "Register (or re-register) an instance",
    request_body = crate::core::registry::model::Registration,
    responses(
        (status = 201, description = "The registered instance", body = crate::core::registry::model::Instance),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(registration): ApiJson<Registration>,
) -> Result<Response> {
    let instance = state.registry.register(&caller, registration).await?;
    Ok((StatusCode::CREATED, Json(instance)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeregisterBody {
    service_name: String,
    instance_id: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/registry/deregister",
    tag = "registry",
    operation_id = "deregisterInstance",
    summary = "Remove an instance",
    request_body = DeregisterBody,
    responses(
        (status = 204, description = "Removed"),
        doc::BadRequestOrNotFound
    )
)]
async fn deregister(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DeregisterBody>,
) -> Result<Response> {
    let service = ServiceName::parse_field(&body.service_name, "/serviceName")?;
    let id = InstanceId::parse_field(&body.instance_id, "/instanceId")?;
    state.registry.deregister(&caller, &service, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/registry/services/{service}/instances/{id}/heartbeat",
    tag = "registry",
    operation_id = "heartbeat",
    summary = "Heartbeat: status and the applied checksum per config",
    params(doc::ServicePath, doc::InstanceIdPath),
    request_body = Option<crate::core::registry::model::Heartbeat>,
    responses(
        (status = 200, description = "The instance's state after the heartbeat", body = doc::schemas::HeartbeatAnswer),
        doc::BadRequestOrNotFound
    )
)]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    InstancePath(service, id): InstancePath,
    OptionalApiJson(body): OptionalApiJson<Heartbeat>,
) -> Result<Response> {
    let instance = state
        .registry
        .heartbeat(&caller, &service, &id, body.unwrap_or_default())
        .await?;
    Ok(Json(json!({
        "serviceName": instance.service_name,
        "instanceId": instance.instance_id,
        "status": instance.status,
        "healthy": instance.healthy(),
        "lastHeartbeat": instance.last_heartbeat,
        "expiresAt": instance.expires_at(),
    }))
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/registry/services",
    tag = "registry",
    operation_id = "listServices",
    summary = "Registered services",
    responses(
        (status = 200, description = "Each service with its instance counts", body = doc::schemas::ServiceList)
    )
)]
async fn services(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let services = state.registry.services(&caller)?;
    Ok(Json(json!({ "services": services })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/registry/services/{service}",
    tag = "registry",
    operation_id = "getService",
    summary = "The instances of a service",
    params(doc::ServicePath),
    responses(
        (status = 200, description = "The service's instances", body = doc::schemas::ServiceInstances),
        doc::BadRequestOrNotFound
    )
)]
async fn service(
    State(state): State<AppState>,
    caller: Caller,
    PathId(service): PathId<ServiceName>,
) -> Result<Response> {
    let instances = state.registry.service(&caller, &service).await?;
    Ok(Json(json!({ "serviceName": service, "instances": instances })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/registry/discover/{service}",
    tag = "registry",
    operation_id = "discover",
    summary = "The healthy instances of a service",
    params(doc::ServicePath, EnvironmentQuery),
    responses(
        (status = 200, description = "The instances a caller may use", body = crate::core::registry::model::Discovery),
        doc::BadRequestOrNotFound
    )
)]
async fn discover(
    State(state): State<AppState>,
    caller: Caller,
    PathId(service): PathId<ServiceName>,
    ApiQuery(params): ApiQuery<EnvironmentQuery>,
) -> Result<Response> {
    let discovery =
        state
            .registry
            .discover_json(&caller, &service, params.environment()?.as_ref())?;
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        discovery,
    )
        .into_response();
    if state.service.serving_stale() {
        response
            .headers_mut()
            .insert("summit-stale", axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/v1/registry/services/{service}/url",
    tag = "registry",
    operation_id = "balancedUrl",
    summary = "One healthy instance's URL, chosen by weight",
    params(doc::ServicePath, EnvironmentQuery),
    responses(
        (status = 200, description = "The chosen instance", body = doc::schemas::BalancedUrl),
        doc::BadRequestOrNotFound
    )
)]
async fn balanced_url(
    State(state): State<AppState>,
    caller: Caller,
    PathId(service): PathId<ServiceName>,
    ApiQuery(params): ApiQuery<EnvironmentQuery>,
) -> Result<Response> {
    let instance = state
        .registry
        .pick(&caller, &service, params.environment()?.as_ref())?;
    Ok(Json(json!({
        "serviceName": instance.service_name,
        "instanceId": instance.instance_id,
        "url": instance.service_url,
        "weight": instance.weight,
    }))
    .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/registry/services/{service}/health",
    tag = "registry",
    operation_id = "checkServiceHealth",
    summary = "Check the health URL of each instance now",
    params(doc::ServicePath),
    responses(
        (status = 200, description = "Each instance's check", body = doc::schemas::HealthResults),
        doc::BadRequestOrNotFound
    )
)]
async fn check_health(
    State(state): State<AppState>,
    caller: Caller,
    PathId(service): PathId<ServiceName>,
) -> Result<Response> {
    let results = state.registry.check_service(&caller, &service).await?;
    Ok(Json(json!({ "serviceName": service, "results": results })).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MaintenanceBody {
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(
    put,
    path = "/api/v1/registry/services/{service}/instances/{id}/maintenance",
    tag = "registry",
    operation_id = "startMaintenance",
    summary = "Take an instance out of discovery for maintenance",
    params(doc::ServicePath, doc::InstanceIdPath),
    request_body = Option<MaintenanceBody>,
    responses(
        (status = 200, description = "The instance", body = crate::core::registry::model::Instance),
        doc::BadRequestOrNotFound
    )
)]
async fn maintenance_on(
    State(state): State<AppState>,
    caller: Caller,
    InstancePath(service, id): InstancePath,
    OptionalApiJson(body): OptionalApiJson<MaintenanceBody>,
) -> Result<Response> {
    let reason = body.unwrap_or_default().reason;
    let instance = state
        .registry
        .set_maintenance(&caller, &service, &id, true, reason)
        .await?;
    Ok(Json(instance).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/registry/services/{service}/instances/{id}/maintenance",
    tag = "registry",
    operation_id = "endMaintenance",
    summary = "End an instance's maintenance",
    params(doc::ServicePath, doc::InstanceIdPath),
    responses(
        (status = 200, description = "The instance", body = crate::core::registry::model::Instance),
        doc::BadRequestOrNotFound
    )
)]
async fn maintenance_off(
    State(state): State<AppState>,
    caller: Caller,
    InstancePath(service, id): InstancePath,
) -> Result<Response> {
    let instance = state
        .registry
        .set_maintenance(&caller, &service, &id, false, None)
        .await?;
    Ok(Json(instance).into_response())
}
