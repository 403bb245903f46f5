//! Flag evaluation over REST: `POST /api/v1/feature-flags/evaluate` (also answered ahead of the
//! router, `evaluate_direct`) and the batch, `POST /api/v1/feature-flags/evaluate/batch`.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::http::error::Result;
use crate::api::http::extract::{ContextBody, OnePassJson, RefusesDuplicates};
use crate::api::http::openapi as doc;
use crate::api::http::{AppState, json_answer, mark_if_stale};
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::flags::service::{EvaluationScope, MAX_BATCH};
use crate::core::flags::{Evaluation, EvaluationContext};
use crate::core::ids::{Environment, FlagKey};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(evaluate_one))
        .routes(routes!(evaluate_batch))
}

/// One evaluation as the REST API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationBody<'a> {
    flag_key: &'a str,
    /// The flag version evaluated (absent when the flag was not found).
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
}

impl<'a> From<&'a Evaluation> for EvaluationBody<'a> {
    fn from(evaluation: &'a Evaluation) -> Self {
        let version = (evaluation.version > 0).then_some(evaluation.version);
        match &evaluation.outcome {
            Ok(resolution) => EvaluationBody {
                flag_key: &evaluation.key,
                version,
                value: Some(&resolution.value),
                variant: Some(&resolution.variant),
                reason: resolution.reason.as_str(),
                error_code: None,
                error_message: None,
            },
            Err(failure) => EvaluationBody {
                flag_key: &evaluation.key,
                version,
                value: None,
                variant: None,
                reason: "ERROR",
                error_code: Some(failure.code.as_str()),
                error_message: Some(&failure.message),
            },
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EvaluateBody {
    flag_key: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    context: Option<ContextBody>,
}

impl RefusesDuplicates for EvaluateBody {}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EvaluateBatchBody {
    /// All flags (meant for `service`) when absent.
    #[serde(default)]
    flag_keys: Option<Vec<String>>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    context: Option<ContextBody>,
}

impl RefusesDuplicates for EvaluateBatchBody {}

/// The evaluation context of a body's `context` member (absent means empty).
fn context_of(context: Option<ContextBody>) -> std::result::Result<EvaluationContext, Error> {
    context.map_or_else(
        || Ok(EvaluationContext::default()),
        |c| c.into_context("/context"),
    )
}

fn scope(
    environment: Option<String>,
    service: Option<String>,
) -> std::result::Result<EvaluationScope, Error> {
    let environment = environment
        .as_deref()
        .map(|env| Environment::parse_field(env, "/environment"))
        .transpose()?;
    Ok(EvaluationScope {
        environment,
        service,
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/feature-flags/evaluate",
    tag = "flags",
    operation_id = "evaluateFlag",
    summary = "Evaluate one flag for a context",
    request_body = EvaluateBody,
    responses(
        (status = 200, description = "The evaluation", body = EvaluationBody),
        doc::BadRequestOrNotFound
    )
)]
async fn evaluate_one(
    State(state): State<AppState>,
    caller: Caller,
    OnePassJson(body): OnePassJson<EvaluateBody>,
) -> Result<Response> {
    let key = FlagKey::parse_field(&body.flag_key, "/flagKey")?;
    let scope = scope(body.environment, body.service)?;
    let context = context_of(body.context)?;
    let evaluation = state
        .flags
        .evaluate(&caller, key.as_str(), &scope, &context)
        .await?;
    if evaluation.version == 0 {
        return Err(Error::not_found("flag", key.as_str()).into());
    }
    let mut response = json_answer(&EvaluationBody::from(&evaluation));
    mark_if_stale(&state, &mut response);
    Ok(response)
}

/// `evaluate_one` answered ahead of the router (`direct::serve`, which authenticated the
/// caller, limits the body, keeps the deadline and records a refusal): the same extractor and
/// the same handler.
pub(crate) async fn evaluate_direct(state: AppState, caller: Caller, request: Request) -> Response {
    match OnePassJson::from_request(request, &state).await {
        Ok(body) => evaluate_one(State(state), caller, body)
            .await
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct BatchResults<'a> {
    results: Vec<EvaluationBody<'a>>,
}

#[utoipa::path(
    post,
    path = "/api/v1/feature-flags/evaluate/batch",
    tag = "flags",
    operation_id = "evaluateFlags",
    summary = "Evaluate many flags (all of a service's when `flagKeys` is absent)",
    request_body = EvaluateBatchBody,
    responses(
        (status = 200, description = "One evaluation per flag; a failed one carries `errorCode`", body = BatchResults),
        (status = 400, response = doc::BadRequest)
    )
)]
async fn evaluate_batch(
    State(state): State<AppState>,
    caller: Caller,
    OnePassJson(body): OnePassJson<EvaluateBatchBody>,
) -> Result<Response> {
    if let Some(keys) = &body.flag_keys {
        if keys.len() > MAX_BATCH {
            return Err(Error::invalid(
                "/flagKeys",
                format!("at most {MAX_BATCH} flags per batch"),
            )
            .into());
        }
        for (index, key) in keys.iter().enumerate() {
            FlagKey::parse_field(key, &format!("/flagKeys/{index}"))?;
        }
    }
    let scope = scope(body.environment, body.service)?;
    let context = context_of(body.context)?;
    let evaluations = state
        .flags
        .evaluate_many(&caller, body.flag_keys.as_deref(), &scope, &context)
        .await?;
    let results = evaluations.iter().map(EvaluationBody::from).collect();
    let mut response = Json(BatchResults { results }).into_response();
    mark_if_stale(&state, &mut response);
    Ok(response)
}
