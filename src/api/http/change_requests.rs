//! `/api/v1/change-requests`: changes to protected environments waiting for approvals.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::Result;
use super::extract::{ApiQuery, OptionalApiJson, path_param};
use super::openapi as doc;
use crate::core::access::Caller;
use crate::core::approvals::model::ChangeRequestStatus;
use crate::core::approvals::{self, model::Subject};
use crate::core::error::Error;
use crate::core::ids::{ConfigId, Environment, FlagKey};
use crate::core::model::Metadata;
use crate::core::ports::ChangeRequestQuery;
use crate::core::service::page_limit;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(cancel))
        .routes(routes!(apply))
}

fn id_of(params: &RawPathParams) -> String {
    path_param(params, "id").to_owned()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    /// `pending` when not given; `all` for every status.
    status: Option<String>,
    environment: Option<String>,
    config_id: Option<String>,
    flag_key: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/change-requests",
    tag = "change-requests",
    operation_id = "listChangeRequests",
    summary = "Change requests (pending unless `status` says otherwise)",
    params(ListQuery),
    responses(
        (status = 200, description = "The matching change requests", body = doc::schemas::Items<crate::core::approvals::model::ChangeRequest>),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response> {
    let status = match query.status.as_deref() {
        None => Some(ChangeRequestStatus::Pending),
        Some(text) => ChangeRequestStatus::filter(text)?,
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
                prefixes: Vec::new(),
            },
        )
        .await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/change-requests/{id}",
    tag = "change-requests",
    operation_id = "getChangeRequest",
    summary = "One change request",
    params(doc::ChangeRequestIdPath),
    responses(
        (status = 200, description = "The change request", body = crate::core::approvals::model::ChangeRequest),
        (status = 404, response = doc::NotFound)
    )
)]
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
#[derive(Deserialize, Default, utoipa::ToSchema)]
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

/// What every decision route takes: the caller, the change request in the path, the actor and
/// the reason (empty when none is given; only a rejection or a cancellation keeps it).
struct Decided {
    caller: Caller,
    id: String,
    actor: Metadata,
    reason: String,
}

impl FromRequest<AppState> for Decided {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let params = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let OptionalApiJson(body) =
            OptionalApiJson::<Decision>::from_request(Request::from_parts(parts, body), state)
                .await
                .map_err(IntoResponse::into_response)?;
        let decision = body.unwrap_or_default();
        let actor = decision
            .actor(&caller)
            .map_err(IntoResponse::into_response)?;
        Ok(Decided {
            id: id_of(&params),
            reason: decision.reason.unwrap_or_default(),
            caller,
            actor,
        })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/change-requests/{id}/approve",
    tag = "change-requests",
    operation_id = "approveChangeRequest",
    summary = "Approve (applied once enough approvals are in)",
    params(doc::ChangeRequestIdPath),
    request_body = Option<Decision>,
    responses(
        (status = 200, description = "The change request after the decision", body = crate::core::approvals::model::ChangeRequest),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn approve(State(state): State<AppState>, decided: Decided) -> Result<Response> {
    let request = state
        .service
        .approve(&decided.caller, &decided.id, &decided.actor)
        .await?;
    Ok(Json(request).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/change-requests/{id}/reject",
    tag = "change-requests",
    operation_id = "rejectChangeRequest",
    summary = "Reject, with a reason",
    params(doc::ChangeRequestIdPath),
    request_body = Option<Decision>,
    responses(
        (status = 200, description = "The change request after the decision", body = crate::core::approvals::model::ChangeRequest),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn reject(State(state): State<AppState>, decided: Decided) -> Result<Response> {
    let request = state
        .service
        .reject(
            &decided.caller,
            &decided.id,
            &decided.reason,
            &decided.actor,
        )
        .await?;
    Ok(Json(request).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/change-requests/{id}/cancel",
    tag = "change-requests",
    operation_id = "cancelChangeRequest",
    summary = "Cancel (by its author)",
    params(doc::ChangeRequestIdPath),
    request_body = Option<Decision>,
    responses(
        (status = 200, description = "The change request after the decision", body = crate::core::approvals::model::ChangeRequest),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn cancel(State(state): State<AppState>, decided: Decided) -> Result<Response> {
    let request = state
        .service
        .cancel(
            &decided.caller,
            &decided.id,
            &decided.reason,
            &decided.actor,
        )
        .await?;
    Ok(Json(request).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/change-requests/{id}/apply",
    tag = "change-requests",
    operation_id = "applyChangeRequest",
    summary = "Apply an approved change request",
    params(doc::ChangeRequestIdPath),
    request_body = Option<Decision>,
    responses(
        (status = 200, description = "The change request after the decision", body = crate::core::approvals::model::ChangeRequest),
        doc::BadRequestNotFoundOrConflict
    )
)]
async fn apply(State(state): State<AppState>, decided: Decided) -> Result<Response> {
    let request = approvals::apply(
        &state.service,
        &state.flags,
        &state.deployments,
        &decided.caller,
        &decided.id,
        &decided.actor,
    )
    .await?;
    Ok(Json(request).into_response())
}
