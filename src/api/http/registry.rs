//! `/api/v1/registry…`: the service registry. Register, heartbeat, deregister (the `register`
//! permission, scoped by service); discover, balanced URL, listings (reading); health checks
//! and maintenance (writing).

use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::{ApiJson, ApiQuery, OptionalApiJson, path_param};
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::ids::{Environment, InstanceId, ServiceName};
use crate::core::registry::model::{Heartbeat, Registration};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/registry/register", post(register))
        .route("/api/v1/registry/deregister", post(deregister))
        .route("/api/v1/registry/services", get(services))
        .route("/api/v1/registry/services/{service}", get(service))
        .route("/api/v1/registry/discover/{service}", get(discover))
        .route("/api/v1/registry/services/{service}/url", get(balanced_url))
        .route(
            "/api/v1/registry/services/{service}/health",
            post(check_health),
        )
        .route(
            "/api/v1/registry/services/{service}/instances/{id}/heartbeat",
            put(heartbeat),
        )
        .route(
            "/api/v1/registry/services/{service}/instances/{id}/maintenance",
            put(maintenance_on).delete(maintenance_off),
        )
}

/// A `{service}` path segment that is a valid service name.
struct ServicePath(ServiceName);

impl<S: Send + Sync> FromRequestParts<S> for ServicePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| Error::invalid("service", r.body_text()))?;
        Ok(ServicePath(ServiceName::parse_field(
            path_param(&params, "service"),
            "service",
        )?))
    }
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

async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(registration): ApiJson<Registration>,
) -> Result<Response> {
    let instance = state.registry.register(&caller, registration).await?;
    Ok((StatusCode::CREATED, Json(instance)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeregisterBody {
    service_name: String,
    instance_id: String,
}

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

async fn services(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let services = state.registry.services(&caller)?;
    Ok(Json(json!({ "services": services })).into_response())
}

async fn service(
    State(state): State<AppState>,
    caller: Caller,
    ServicePath(service): ServicePath,
) -> Result<Response> {
    let instances = state.registry.service(&caller, &service).await?;
    Ok(Json(json!({ "serviceName": service, "instances": instances })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DiscoverParams {
    environment: Option<String>,
}

impl DiscoverParams {
    fn environment(&self) -> Result<Option<Environment>> {
        Ok(self
            .environment
            .as_deref()
            .map(|e| Environment::parse_field(e, "environment"))
            .transpose()?)
    }
}

async fn discover(
    State(state): State<AppState>,
    caller: Caller,
    ServicePath(service): ServicePath,
    ApiQuery(params): ApiQuery<DiscoverParams>,
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

async fn balanced_url(
    State(state): State<AppState>,
    caller: Caller,
    ServicePath(service): ServicePath,
    ApiQuery(params): ApiQuery<DiscoverParams>,
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

async fn check_health(
    State(state): State<AppState>,
    caller: Caller,
    ServicePath(service): ServicePath,
) -> Result<Response> {
    let results = state.registry.check_service(&caller, &service).await?;
    Ok(Json(json!({ "serviceName": service, "results": results })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MaintenanceBody {
    #[serde(default)]
    reason: Option<String>,
}

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
