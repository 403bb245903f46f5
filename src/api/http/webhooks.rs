//! `/api/v1/webhooks…`: webhooks (the signing secret is shown once, on create and rotate),
//! their delivery logs, and redelivery. Every route needs `manage-webhooks` (decided in the
//! core).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, OptionalApiJson, PathParams};
use super::openapi as doc;
use super::query::PageQuery;
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::notifications::service::{
    NewWebhook, Rotation, WebhookChange, WebhookView, WithSecret,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(describe, update, remove))
        .routes(routes!(rotate))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookWithSecret)]
#[serde(rename_all = "camelCase")]
struct Shown<'a> {
    #[serde(flatten)]
    webhook: &'a WebhookView,
    /// `whsec_…`: shown this once; the server keeps it sealed.
    secret: &'a str,
}

/// The webhook with its secret, never cached.
fn with_secret(status: StatusCode, shown: &WithSecret) -> Response {
    let body = Shown {
        webhook: &shown.webhook,
        secret: &shown.secret,
    };
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    operation_id = "createWebhook",
    summary = "Create a webhook (its signing secret is shown this once)",
    request_body = crate::core::notifications::service::NewWebhook,
    responses(
        (status = 201, description = "The webhook and its secret; `Cache-Control: no-store`", body = Shown, headers(("Location" = String))),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<Response> {
    let created = state.notifications.create(&caller, body).await?;
    let mut response = with_secret(StatusCode::CREATED, &created);
    if let Ok(location) =
        HeaderValue::from_str(&format!("/api/v1/webhooks/{}", created.webhook.webhook.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    operation_id = "listWebhooks",
    summary = "Webhooks (never their secrets)",
    responses(
        (status = 200, description = "Every webhook", body = doc::schemas::Items<crate::core::notifications::service::WebhookView>)
    )
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let items = state.notifications.list(&caller).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "getWebhook",
    summary = "One webhook",
    params(doc::WebhookIdPath),
    responses(
        (status = 200, description = "The webhook", body = crate::core::notifications::service::WebhookView),
        (status = 404, response = doc::NotFound)
    )
)]
async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response> {
    Ok(Json(state.notifications.get(&caller, &id).await?).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "updateWebhook",
    summary = "Change a webhook's fields",
    params(doc::WebhookIdPath),
    request_body = crate::core::notifications::service::WebhookChange,
    responses(
        (status = 200, description = "The webhook after the change", body = crate::core::notifications::service::WebhookView),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    ApiJson(body): ApiJson<WebhookChange>,
) -> Result<Response> {
    Ok(Json(state.notifications.update(&caller, &id, body).await?).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "deleteWebhook",
    summary = "Delete a webhook",
    params(doc::WebhookIdPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = doc::NotFound)
    )
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response> {
    state.notifications.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    operation_id = "rotateWebhookSecret",
    summary = "A new signing secret (the old one keeps signing during the overlap)",
    params(doc::WebhookIdPath),
    request_body = Option<crate::core::notifications::service::Rotation>,
    responses(
        (status = 200, description = "The webhook and its new secret; `Cache-Control: no-store`", body = Shown),
        doc::BadRequestOrNotFound
    )
)]
async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    OptionalApiJson(body): OptionalApiJson<Rotation>,
) -> Result<Response> {
    let rotated = state
        .notifications
        .rotate(&caller, &id, body.unwrap_or_default())
        .await?;
    Ok(with_secret(StatusCode::OK, &rotated))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    operation_id = "listDeliveries",
    summary = "A webhook's deliveries, newest first",
    params(doc::WebhookIdPath, PageQuery),
    responses(
        (status = 200, description = "One page of deliveries", body = crate::core::model::Page<crate::core::notifications::model::Delivery>),
        doc::BadRequestOrNotFound
    )
)]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response> {
    let page = state
        .notifications
        .deliveries(&caller, &id, page.cursor, page.limit()?)
        .await?;
    Ok(Json(page).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = "webhooks",
    operation_id = "redeliver",
    summary = "Send a delivery again",
    params(doc::WebhookIdPath, ("delivery" = u64, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "The delivery, queued again", body = crate::core::notifications::model::Delivery),
        doc::BadRequestOrNotFound
    )
)]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, delivery)): PathParams<(String, String)>,
) -> Result<Response> {
    let delivery: u64 = delivery
        .parse()
        .map_err(|_| Error::invalid("delivery", "a delivery id is a number"))?;
    let delivery = state
        .notifications
        .redeliver(&caller, &id, delivery)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}
