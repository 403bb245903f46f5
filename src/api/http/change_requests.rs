//! `/api/v1/change-requests`: changes to protected environments waiting for approvals.

use axum::extract::{RawPathParams, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::AppState;
use super::error::Result;
use super::extract::{ApiQuery, OptionalApiJson, path_param};
use crate::core::access::Caller;
use crate::core::approvals::model::ChangeRequestStatus;
use crate::core::approvals::{self, model::Subject};
use crate::core::error::Error;
use crate::core::ids::{ConfigId, Environment, FlagKey};
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
    flag_key: Option<String>,
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
    let subject = match (query.config_id.as_deref(), query.flag_key.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "flagKey",
                "name a config (configId) or a flag (flagKey), not both",
            )
            .into());
        }
        (Some(id), None) => Some(Subject::Config(ConfigId::parse(id)?)),
        (None, Some(key)) => Some(Subject::Flag(FlagKey::parse_field(key, "flagKey")?)),
        (None, None) => None,
    };
    let items = state
        .service
        .change_requests(
            &caller,
            ChangeRequestQuery {
                status,
                environment: query.environment,
                subject,
                limit: page_limit(query.limit)?,
            },
        )
        .await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Response> {
    let request = state
        .service
        .change_request(&caller, &id_of(&params))
        .await?;
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
        let unrestricted = caller.identity().unrestricted;
        let metadata = match (unrestricted, &self.metadata) {
            (false, metadata) => caller.stamp(metadata.clone().unwrap_or_default()),
            (true, Some(metadata)) => metadata.clone(),
            (true, None) => {
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
    let actor = body.unwrap_or_default().actor(&caller)?;
    let request = state.service.approve(&caller, &id, &actor).await?;
    Ok(Json(request).into_response())
}

async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    OptionalApiJson(body): OptionalApiJson<Decision>,
) -> Result<Response> {
    let id = id_of(&params);
    let body = body.unwrap_or_default();
    let actor = body.actor(&caller)?;
    let reason = body.reason.unwrap_or_default();
    let request = state.service.reject(&caller, &id, &reason, &actor).await?;
    Ok(Json(request).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    OptionalApiJson(body): OptionalApiJson<Decision>,
) -> Result<Response> {
    let id = id_of(&params);
    let body = body.unwrap_or_default();
    let actor = body.actor(&caller)?;
    let reason = body.reason.unwrap_or_default();
    let request = state.service.cancel(&caller, &id, &reason, &actor).await?;
    Ok(Json(request).into_response())
}

async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    OptionalApiJson(body): OptionalApiJson<Decision>,
) -> Result<Response> {
    let id = id_of(&params);
    let actor = body.unwrap_or_default().actor(&caller)?;
    let request = approvals::apply(
        &state.service,
        &state.flags,
        &state.deployments,
        &caller,
        &id,
        &actor,
    )
    .await?;
    Ok(Json(request).into_response())
}
