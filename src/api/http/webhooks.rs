//! `/api/v1/webhooks…`: webhooks (the signing secret is shown once, on create and rotate),
//! their delivery logs, and redelivery. Every route needs `manage-webhooks` (decided in the
//! core).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use super::configs::PageQuery;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, OptionalApiJson};
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::notifications::service::{
    NewWebhook, Rotation, WebhookChange, WebhookView, WithSecret,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route(
            "/api/v1/webhooks/{id}",
            get(describe).patch(update).delete(remove),
        )
        .route("/api/v1/webhooks/{id}/rotate-secret", post(rotate))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

#[derive(Serialize)]
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

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let items = state.notifications.list(&caller).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(Json(state.notifications.get(&caller, &id).await?).into_response())
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookChange>,
) -> Result<Response> {
    Ok(Json(state.notifications.update(&caller, &id, body).await?).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    state.notifications.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalApiJson(body): OptionalApiJson<Rotation>,
) -> Result<Response> {
    let rotated = state
        .notifications
        .rotate(&caller, &id, body.unwrap_or_default())
        .await?;
    Ok(with_secret(StatusCode::OK, &rotated))
}

async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response> {
    let page = state
        .notifications
        .deliveries(&caller, &id, page.cursor, page.limit()?)
        .await?;
    Ok(Json(page).into_response())
}

async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery)): Path<(String, String)>,
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
