//! `/api/v1/change-requests`: changes to protected environments waiting for approvals.

use axum::extract::{RawPathParams, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::AppState;
use super::error::Result;
use super::extract::{ApiQuery, OptionalApiJson, path_param};
use crate::core::access::{Caller, Permission};
use crate::core::approvals::model::{ChangeRequest, ChangeRequestStatus};
use crate::core::error::Error;
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::Metadata;
use crate::core::ports::ChangeRequestQuery;
use crate::core::service::page_limit;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/change-requests", get(list))
        .route("/api/v1/change-requests/{id}", get(show))
        .route("/api/v1/change-requests/{id}/approve", post(approve))
        .route("/api/v1/change-requests/{id}/reject", post(reject))
        .route("/api/v1/change-requests/{id}/cancel", post(cancel))
        .route("/api/v1/change-requests/{id}/apply", post(apply))
}

fn id_of(params: &RawPathParams) -> String {
    path_param(params, "id").to_owned()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    /// `pending` when not given; `all` for every status.
    status: Option<String>,
    environment: Option<String>,
    config_id: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response> {
    let status = match query.status.as_deref() {
        None => Some(ChangeRequestStatus::Pending),
        Some("all") => None,
        Some(text) => Some(ChangeRequestStatus::parse(text).ok_or_else(|| {
            Error::invalid(
                "status",
                "status is pending, approved, rejected, cancelled, applied or all",
            )
        })?),
    };
    if let Some(env) = &query.environment {
        Environment::parse(env)?;
    }
    let config_id = query
        .config_id
        .as_deref()
        .map(ConfigId::parse)
        .transpose()?;
    let mut items = state
        .service
        .change_requests(ChangeRequestQuery {
            status,
            environment: query.environment,
            config_id,
            limit: page_limit(query.limit)?,
        })
        .await?;
    items.retain(|request| caller.allows_resource(request.config_id.as_str()));
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// The request, if the caller's scope reaches its config (refusals are recorded).
async fn scoped(state: &AppState, caller: &Caller, id: &str) -> Result<ChangeRequest> {
    let request = state.service.change_request(id).await?;
    if let Err(error) = caller.require_resource(request.config_id.as_str()) {
        return Err(super::access::denied(state, caller, "change request", error).await);
    }
    Ok(request)
}

/// An environment-scoped approver decides only on changes within its environments.
async fn within_environments(
    state: &AppState,
    caller: &Caller,
    request: &ChangeRequest,
    action: &str,
) -> Result<()> {
    for env in &request.environments {
        if let Err(error) = caller.require_environment(env) {
            let operation = format!("{action} change request");
            return Err(super::access::denied(state, caller, &operation, error).await);
        }
    }
    Ok(())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Response> {
    let request = scoped(&state, &caller, &id_of(&params)).await?;
    Ok(Json(request).into_response())
}

/// `{metadata?, reason?}`: who acts (the authenticated identity when access control is on)
/// and why.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Decision {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    reason: Option<String>,
}

impl Decision {
    fn actor(&self, caller: &Caller) -> Result<Metadata> {
        let metadata = match (&caller.0, &self.metadata) {
            (Some(_), metadata) => caller.stamp(metadata.clone().unwrap_or_default()),
            (None, Some(metadata)) => metadata.clone(),
            (None, None) => {
                return Err(Error::invalid(
                    "/metadata",
                    "without access control the actor must be named in metadata.actor",
                )
                .into());
            }
        };
        crate::core::validation::check_metadata(&metadata)?;
        Ok(metadata)
    }
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    OptionalApiJson(body): OptionalApiJson<Decision>,
) -> Result<Response> {
    let id = id_of(&params);
    let request = scoped(&state, &caller, &id).await?;
    within_environments(&state, &caller, &request, "approve").await?;
    let actor = body.unwrap_or_default().actor(&caller)?;
    let request = state.service.approve(&id, &actor).await?;
    Ok(Json(request).into_response())
}

async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    OptionalApiJson(body): OptionalApiJson<Decision>,
) -> Result<Response> {
    let id = id_of(&params);
    let request = scoped(&state, &caller, &id).await?;
    within_environments(&state, &caller, &request, "reject").await?;
    let body = body.unwrap_or_default();
    let actor = body.actor(&caller)?;
    let reason = body.reason.unwrap_or_default();
    let request = state.service.reject(&id, &reason, &actor).await?;
    Ok(Json(request).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    OptionalApiJson(body): OptionalApiJson<Decision>,
) -> Result<Response> {
    let id = id_of(&params);
    scoped(&state, &caller, &id).await?;
    let body = body.unwrap_or_default();
    let actor = body.actor(&caller)?;
    let may_cancel_others = caller
        .0
        .as_ref()
        .is_some_and(|identity| identity.has(Permission::ManageTokens));
    let reason = body.reason.unwrap_or_default();
    let request = state
        .service
        .cancel(&id, &reason, &actor, may_cancel_others)
        .await?;
    Ok(Json(request).into_response())
}

async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    OptionalApiJson(body): OptionalApiJson<Decision>,
) -> Result<Response> {
    let id = id_of(&params);
    scoped(&state, &caller, &id).await?;
    let actor = body.unwrap_or_default().actor(&caller)?;
    let request = state.service.apply(&id, &actor).await?;
    Ok(Json(request).into_response())
}
