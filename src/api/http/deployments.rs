//! `/api/v1/deployments…`: staged deployments — start one, read them and their logs, act on
//! them — and `/api/v1/configs/{id}/releases`, the version each environment serves.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::configs::pending;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, OptionalApiJson, PathId, PathParams};
use super::openapi as doc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::core::access::Caller;
use crate::core::deployments::NewDeployment;
use crate::core::deployments::model::StrategyRef;
use crate::core::deployments::service::page_cursor;
use crate::core::deployments::transitions::Action;
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::Metadata;
use crate::core::ports::DeploymentQuery;
use crate::core::service::Written;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(describe))
        .routes(routes!(log))
        .routes(routes!(act))
        .routes(routes!(releases))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewDeploymentBody)]
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

#[utoipa::path(
    post,
    path = "/api/v1/deployments",
    tag = "deployments",
    operation_id = "createDeployment",
    summary = "Start a staged deployment of a config version",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The deployment", body = crate::core::deployments::model::Deployment),
        (status = 202, description = "The change needs approvals: the change request now waiting", body = crate::core::approvals::model::ChangeRequest, headers(("Location" = String, description = "The change request"))),
        doc::BadRequestNotFoundOrConflict
    )
)]
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

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListParams {
    config_id: Option<ConfigId>,
    environment: Option<Environment>,
    #[serde(default)]
    active: bool,
    limit: Option<u32>,
    cursor: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/deployments",
    tag = "deployments",
    operation_id = "listDeployments",
    summary = "Deployments, newest first",
    params(ListParams),
    responses(
        (status = 200, description = "One page of deployments", body = doc::schemas::Listing<crate::core::deployments::model::Deployment>),
        (status = 400, response = doc::BadRequest)
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}",
    tag = "deployments",
    operation_id = "getDeployment",
    summary = "One deployment",
    params(doc::DeploymentIdPath),
    responses(
        (status = 200, description = "The deployment", body = crate::core::deployments::model::Deployment),
        (status = 404, response = doc::NotFound)
    )
)]
async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response> {
    Ok(Json(state.deployments.get(&caller, &id).await?).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}/log",
    tag = "deployments",
    operation_id = "getDeploymentLog",
    summary = "A deployment's log of steps and gate results",
    params(doc::DeploymentIdPath),
    responses(
        (status = 200, description = "The log, oldest first", body = doc::schemas::Items<crate::core::deployments::model::LogEntry>),
        (status = 404, response = doc::NotFound)
    )
)]
async fn log(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response> {
    let entries = state.deployments.log(&caller, &id).await?;
    Ok(Json(serde_json::json!({ "items": entries })).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = DeploymentActionBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/{action}",
    tag = "deployments",
    operation_id = "actOnDeployment",
    summary = "Promote, pause, resume, abort or roll back a deployment",
    params(doc::DeploymentIdPath, ("action" = String, Path, description = "`promote`, `pause`, `resume`, `abort` or `rollback`")),
    request_body = Option<ActionBody>,
    responses(
        (status = 200, description = "The deployment after the action", body = crate::core::deployments::model::Deployment),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn act(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, action)): PathParams<(String, String)>,
    OptionalApiJson(body): OptionalApiJson<ActionBody>,
) -> Result<Response> {
    let action = Action::parse(&action)?;
    let metadata = caller.metadata_or_own(body.and_then(|b| b.metadata));
    let deployment = state
        .deployments
        .act(&caller, &id, action, metadata)
        .await?;
    Ok(Json(deployment).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}/releases",
    tag = "deployments",
    operation_id = "listReleases",
    summary = "The version each environment serves",
    params(doc::ConfigIdPath),
    responses(
        (status = 200, description = "Each environment's released version", body = doc::schemas::Releases),
        doc::BadRequestOrNotFound
    )
)]
async fn releases(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
) -> Result<Response> {
    let releases = state.deployments.releases(&caller, &id).await?;
    Ok(Json(serde_json::json!({ "configId": id, "items": releases })).into_response())
}
