//! `/api/v1/tokens` (admin): create (the token text is shown once), list, revoke; and
//! `/api/v1/audit/denied`, the record of refused attempts.

use axum::Json;
use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, path_param};
use super::openapi as doc;
use super::query::PageQuery;
use crate::core::access::Caller;
use crate::core::access::model::ApiToken;
use crate::core::access::service::NewToken;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(denials))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CreatedToken)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    #[serde(flatten)]
    token: &'a ApiToken,
    /// The bearer token: shown this once, never stored (only its SHA-256 is).
    token_text: &'a str,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "access",
    operation_id = "createToken",
    summary = "Create an API token (its text is shown this once)",
    request_body = crate::core::access::service::NewToken,
    responses(
        (status = 201, description = "The token and its text; `Cache-Control: no-store`", body = Created),
        (status = 400, response = doc::BadRequest),
        (status = 409, response = doc::Conflict)
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "access",
    operation_id = "listTokens",
    summary = "API tokens (never their text)",
    responses(
        (status = 200, description = "Every token", body = doc::schemas::Items<crate::core::access::model::ApiToken>)
    )
)]
async fn list_tokens(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let tokens = state.access.tokens(&caller).await?;
    Ok(Json(serde_json::json!({ "items": tokens })).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "access",
    operation_id = "revokeToken",
    summary = "Revoke an API token",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked", body = doc::schemas::TokenRevoked),
        (status = 404, response = doc::NotFound)
    )
)]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Response> {
    let id = path_param(&params, "id").to_owned();
    state.access.revoke_token(&caller, &id).await?;
    Ok(Json(serde_json::json!({"id": id, "revoked": true})).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/denied",
    tag = "access",
    operation_id = "listDenials",
    summary = "Refused attempts, newest first",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of refusals", body = crate::core::model::Page<crate::core::access::model::Denial>),
        (status = 400, response = doc::BadRequest)
    )
)]
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
