//! Probes and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::openapi as doc;
use crate::core::error::Error;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(openapi_document))
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    operation_id = "health",
    summary = "Health: the server and its store",
    responses(
        (status = 200, description = "Healthy", body = doc::schemas::Health),
        (status = 503, description = "The store does not answer (`status: degraded`)", body = doc::schemas::Health)
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    let store = state.service.ready().await;
    let status = if store.is_ok() { "ok" } else { "degraded" };
    let code = if store.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let revision = state.service.latest_revision().await.ok();
    (code, Json(json!({"status": status, "store": store.is_ok(), "revision": revision, "version": env!("CARGO_PKG_VERSION")}))).into_response()
}

#[utoipa::path(
    get,
    path = "/live",
    tag = "ops",
    operation_id = "live",
    summary = "Liveness",
    responses(
        (status = 200, description = "The process answers", body = doc::schemas::ProbeStatus)
    )
)]
async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    operation_id = "ready",
    summary = "Readiness: the store answers and the server is not shutting down",
    responses(
        (status = 200, description = "Ready", body = doc::schemas::ProbeStatus),
        (status = 503, response = doc::Unavailable)
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return ApiError(Error::Unavailable {
            reason: "shutting down".into(),
        })
        .into_response();
    }
    match state.service.ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => ApiError(error).into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)
    )
)]
async fn metrics(State(state): State<AppState>) -> Response {
    state.collector.collect().await;
    let body = state.metrics.render();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The OpenAPI document of this API (`docs/openapi.json` holds the same bytes).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "ops",
    operation_id = "openapi",
    summary = "This API's OpenAPI 3.1 document",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)
    )
)]
async fn openapi_document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        super::openapi::json(),
    )
        .into_response()
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    super::error::transport_problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found("route", uri.path()))
}
