//! `/api/v1/tokens` (admin): create (the token text is shown once), list, revoke; and
//! `/api/v1/audit/denied`, the record of refused attempts.

use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use super::configs::PageQuery;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, path_param};
use crate::core::access::Caller;
use crate::core::access::model::ApiToken;
use crate::core::access::service::NewToken;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/audit/denied", get(denials))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    #[serde(flatten)]
    token: &'a ApiToken,
    /// The bearer token: shown this once, never stored (only its SHA-256 is).
    token_text: &'a str,
}

async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewToken>,
) -> Result<Response> {
    let created = state.access.create_token(&caller, request).await?;
    let body = Created {
        token: &created.token,
        token_text: &created.text,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    // The answer carries a credential: no cache may keep it.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

async fn list_tokens(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let tokens = state.access.tokens(&caller).await?;
    Ok(Json(serde_json::json!({ "items": tokens })).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Response> {
    let id = path_param(&params, "id").to_owned();
    state.access.revoke_token(&caller, &id).await?;
    Ok(Json(serde_json::json!({"id": id, "revoked": true})).into_response())
}

async fn denials(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response> {
    let page = state
        .access
        .denials(&caller, page.cursor, page.limit()?)
        .await?;
    Ok(Json(page).into_response())
}
