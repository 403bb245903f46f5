//! `/api/v1/deployments…`: staged deployments — start one, read them and their logs, act on
//! them — and `/api/v1/configs/{id}/releases`, the version each environment serves.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::configs::pending;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, ConfigIdPath, OptionalApiJson};
use super::{AppState, metadata_or_caller};
use crate::core::access::Caller;
use crate::core::deployments::NewDeployment;
use crate::core::deployments::model::StrategyRef;
use crate::core::deployments::service::page_cursor;
use crate::core::deployments::transitions::Action;
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::Metadata;
use crate::core::ports::DeploymentQuery;
use crate::core::service::Written;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deployments", get(list).post(create))
        .route("/api/v1/deployments/{id}", get(describe))
        .route("/api/v1/deployments/{id}/log", get(log))
        .route("/api/v1/deployments/{id}/{action}", post(act))
        .route("/api/v1/configs/{id}/releases", get(releases))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    config_id: ConfigId,
    environment: Environment,
    version: u64,
    /// A strategy's name, or a strategy.
    strategy: StrategyRef,
    #[serde(default)]
    instances: Option<Vec<String>>,
    metadata: Metadata,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response> {
    let deployment = state
        .deployments
        .create(
            &caller,
            NewDeployment {
                config_id: body.config_id,
                environment: body.environment,
                version: body.version,
                strategy: body.strategy,
                instances: body.instances,
                metadata: caller.stamp(body.metadata),
            },
        )
        .await?;
    Ok(match deployment {
        Written::Done(deployment) => (StatusCode::CREATED, Json(deployment)).into_response(),
        // A protected environment: 202 with the change request that starts it once approved.
        Written::Pending(request) => pending(&request),
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListParams {
    config_id: Option<ConfigId>,
    environment: Option<Environment>,
    #[serde(default)]
    active: bool,
    limit: Option<u32>,
    cursor: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response> {
    let query = DeploymentQuery {
        config_id: params.config_id,
        environment: params.environment,
        active_only: params.active,
        before: params.cursor.map(page_cursor).transpose()?,
        limit: 0,
    };
    let page = state.deployments.list(&caller, query, params.limit).await?;
    Ok(
        Json(serde_json::json!({ "items": page.items, "nextCursor": page.next_cursor }))
            .into_response(),
    )
}

async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(Json(state.deployments.get(&caller, &id).await?).into_response())
}

async fn log(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let entries = state.deployments.log(&caller, &id).await?;
    Ok(Json(serde_json::json!({ "items": entries })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    metadata: Option<Metadata>,
}

async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    OptionalApiJson(body): OptionalApiJson<ActionBody>,
) -> Result<Response> {
    let action = Action::parse(&action)?;
    let metadata = metadata_or_caller(&caller, body.and_then(|b| b.metadata));
    let deployment = state
        .deployments
        .act(&caller, &id, action, metadata)
        .await?;
    Ok(Json(deployment).into_response())
}

async fn releases(
    State(state): State<AppState>,
    caller: Caller,
    ConfigIdPath(id): ConfigIdPath,
) -> Result<Response> {
    let releases = state.deployments.releases(&caller, &id).await?;
    Ok(Json(serde_json::json!({ "configId": id, "items": releases })).into_response())
}
