//! The OpenFeature Remote Evaluation Protocol (OFREP v1): what standard OpenFeature OFREP
//! providers call. Errors follow the protocol (`{key, errorCode, errorDetails}`), not
//! problem+json. The environment and service come from the context's `environment` and
//! `service` attributes, or else the `Summit-Environment` / `Summit-Service` headers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::effective::not_modified;
use super::extract::{
    ContextBody, RawBody, RefusesDuplicates, UniqueValue, parse_json_once, path_param,
};
use super::openapi as doc;
use crate::core::access::Caller;
use crate::core::effective::document_etag;
use crate::core::error::Error;
use crate::core::flags::service::EvaluationScope;
use crate::core::flags::{Evaluation, EvaluationContext, EvaluationErrorCode, Resolution};
use crate::core::ids::{Environment, FlagKey};

/// The environment and the service of a context without its own `environment` or `service`.
static ENVIRONMENT_HEADER: HeaderName = HeaderName::from_static("summit-environment");
static SERVICE_HEADER: HeaderName = HeaderName::from_static("summit-service");

/// Clients polling the bulk endpoint should wait at least this long between polls.
const MIN_POLLING_INTERVAL_MS: u64 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(evaluate_flag))
        .routes(routes!(evaluate_flags))
        .routes(routes!(configuration))
}

/// An OFREP error response.
struct OfrepError {
    status: StatusCode,
    key: Option<String>,
    code: EvaluationErrorCode,
    details: String,
}

impl OfrepError {
    fn new(code: EvaluationErrorCode, details: impl Into<String>) -> Self {
        let status = match code {
            EvaluationErrorCode::FlagNotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        OfrepError {
            status,
            key: None,
            code,
            details: details.into(),
        }
    }

    fn for_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }
}

impl IntoResponse for OfrepError {
    fn into_response(self) -> Response {
        let mut body = json!({"errorCode": self.code.as_str(), "errorDetails": self.details});
        if let Some(key) = self.key {
            body["key"] = Value::String(key);
        }
        (self.status, Json(body)).into_response()
    }
}

/// Failures of the service itself (store unavailable, internal) keep their problem+json.
enum Failure {
    Protocol(OfrepError),
    Service(super::error::ApiError),
}

impl From<OfrepError> for Failure {
    fn from(error: OfrepError) -> Self {
        Failure::Protocol(error)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Service(super::error::ApiError(error))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Protocol(error) => error.into_response(),
            // OFREP's general error body, with the status (and headers such as Retry-After)
            // the service error maps to.
            Failure::Service(error) => {
                let details = match &error.0 {
                    Error::Internal { .. } => {
                        "an internal error occurred; it has been logged".to_owned()
                    }
                    other => other.to_string(),
                };
                let mut mapped = error.into_response();
                let mut response =
                    (mapped.status(), Json(json!({ "errorDetails": details }))).into_response();
                if let Some(refusal) = mapped.extensions_mut().remove::<super::error::Refusal>() {
                    response.extensions_mut().insert(refusal);
                }
                for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
                    if let Some(value) = mapped.headers().get(&name) {
                        response.headers_mut().insert(name, value.clone());
                    }
                }
                response
            }
        }
    }
}

/// An OFREP request body, read in one pass: the typed read refuses any other member and a
/// repeated one, and `parse_error` names what was wrong with a body it refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    context: Option<ContextBody>,
}

impl RefusesDuplicates for Body {}

/// Why `body`, which the typed read refused, is not `{"context": {...}}`.
fn parse_error(body: &[u8]) -> OfrepError {
    let error = |details: String| OfrepError::new(EvaluationErrorCode::ParseError, details);
    match parse_json_once::<UniqueValue>(body) {
        Err(e) => error(e.to_string()),
        Ok(UniqueValue(Value::Object(members))) => match members.keys().find(|m| *m != "context") {
            Some(unknown) => error(format!(
                "unknown member '{unknown}'; the body is {{\"context\": {{...}}}}"
            )),
            None => error("the body is not {\"context\": {...}}".to_owned()),
        },
        Ok(_) => error("the body must be a JSON object: {\"context\": {...}}".to_owned()),
    }
}

/// The request's context and scope, from `{"context": {...}}` (an empty body is an empty
/// context).
fn request_of(
    body: &Bytes,
    headers: &HeaderMap,
) -> Result<(EvaluationContext, EvaluationScope), OfrepError> {
    let context = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => None,
        // A derived struct would also read an array, by position.
        Some(b'{') => match parse_json_once::<Body>(body) {
            Ok(Body { context }) => context,
            Err(_) => return Err(parse_error(body)),
        },
        Some(_) => return Err(parse_error(body)),
    };
    let invalid = |e: Error| OfrepError::new(EvaluationErrorCode::InvalidContext, e.to_string());
    let context = match context {
        Some(context) => context.into_context("/context").map_err(invalid)?,
        None => EvaluationContext::default(),
    };
    // The context's attribute `name`, or else the header `header`.
    let attribute = |name: &str, header: &HeaderName| -> Result<Option<&str>, OfrepError> {
        match context.attributes.get(name) {
            None => Ok(headers.get(header).and_then(|v| v.to_str().ok())),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(OfrepError::new(
                EvaluationErrorCode::InvalidContext,
                format!("context attribute '{name}' must be a string"),
            )),
        }
    };
    let environment = attribute("environment", &ENVIRONMENT_HEADER)?
        .map(|env| Environment::parse_field(env, "/context/environment"))
        .transpose()
        .map_err(invalid)?;
    let service = attribute("service", &SERVICE_HEADER)?.map(str::to_owned);
    Ok((
        context,
        EvaluationScope {
            environment,
            service,
        },
    ))
}

/// A successful evaluation in OFREP's shape.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OfrepSuccess)]
pub struct Success<'a> {
    key: &'a str,
    value: &'a Value,
    reason: &'static str,
    variant: &'a str,
    metadata: SuccessMetadata,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OfrepSuccessMetadata)]
#[serde(rename_all = "camelCase")]
struct SuccessMetadata {
    flag_version: u64,
}

impl<'a> Success<'a> {
    fn of(evaluation: &'a Evaluation, resolution: &'a Resolution) -> Self {
        Success {
            key: &evaluation.key,
            value: &resolution.value,
            reason: resolution.reason.as_str(),
            variant: &resolution.variant,
            metadata: SuccessMetadata {
                flag_version: evaluation.version,
            },
        }
    }
}

/// One flag of a bulk answer: its success, or its error in OFREP's shape.
#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    Success(Success<'a>),
    #[serde(rename_all = "camelCase")]
    Failure {
        key: &'a str,
        error_code: &'static str,
        error_details: &'a str,
    },
}

impl<'a> From<&'a Evaluation> for Item<'a> {
    fn from(evaluation: &'a Evaluation) -> Self {
        match &evaluation.outcome {
            Ok(resolution) => Item::Success(Success::of(evaluation, resolution)),
            Err(failure) => Item::Failure {
                key: &evaluation.key,
                error_code: failure.code.as_str(),
                error_details: &failure.message,
            },
        }
    }
}

#[derive(Serialize)]
struct Bulk<'a> {
    flags: Vec<Item<'a>>,
}

#[utoipa::path(
    post,
    path = "/ofrep/v1/evaluate/flags/{key}",
    tag = "ofrep",
    operation_id = "ofrepEvaluateFlag",
    summary = "OFREP: evaluate one flag",
    params(doc::FlagKeyPath, ("Summit-Environment" = Option<String>, Header, description = "The environment, when the context has no `environment` attribute"), ("Summit-Service" = Option<String>, Header, description = "The service, when the context has no `service` attribute")),
    request_body = Option<doc::schemas::OfrepRequest>,
    responses(
        (status = 200, description = "The evaluation", body = Success),
        (status = 400, description = "`PARSE_ERROR`, `INVALID_CONTEXT`, `TARGETING_KEY_MISSING`, `TYPE_MISMATCH` or `GENERAL`", body = doc::schemas::OfrepError),
        (status = 404, description = "`FLAG_NOT_FOUND`", body = doc::schemas::OfrepError),
        (status = 403, description = "Refused (OFREP general error)", body = doc::schemas::OfrepGeneralError),
        (status = 500, description = "Internal error (OFREP general error)", body = doc::schemas::OfrepGeneralError),
        (status = 503, description = "Store unavailable (OFREP general error)", body = doc::schemas::OfrepGeneralError)
    )
)]
async fn evaluate_flag(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Failure> {
    evaluate_key(state, caller, path_param(&params, "key"), &headers, body).await
}

/// `evaluate_flag` answered ahead of the router (`direct::serve`, which authenticated the
/// caller, limits the body, keeps the deadline and records a refusal): the same body extractor
/// and the same evaluation, with the key read from the path as `RawPathParams` gives it.
pub(crate) async fn evaluate_direct(
    state: AppState,
    caller: Caller,
    mut request: Request,
) -> Response {
    let key = super::direct::ofrep_key(request.uri().path())
        .unwrap_or_default()
        .into_owned();
    // The body extractor reads no header.
    let headers = std::mem::take(request.headers_mut());
    match RawBody::from_request(request, &state).await {
        Ok(RawBody(body)) => evaluate_key(state, caller, &key, &headers, body)
            .await
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

/// One flag, for the path's `raw` key (percent-decoded).
async fn evaluate_key(
    state: AppState,
    caller: Caller,
    raw: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let key = FlagKey::parse(raw).map_err(|e| {
        OfrepError::new(EvaluationErrorCode::FlagNotFound, e.to_string()).for_key(raw)
    })?;
    let (context, scope) = request_of(&body, headers).map_err(|e| e.for_key(key.as_str()))?;
    let evaluation = state
        .flags
        .evaluate(&caller, key.as_str(), &scope, &context)
        .await?;
    let resolution = match &evaluation.outcome {
        Ok(resolution) => resolution,
        Err(failure) => {
            return Err(OfrepError::new(failure.code, failure.message.clone())
                .for_key(key.as_str())
                .into());
        }
    };
    let mut response = super::json_answer(&Success::of(&evaluation, resolution));
    super::mark_if_stale(&state, &mut response);
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/ofrep/v1/evaluate/flags",
    tag = "ofrep",
    operation_id = "ofrepEvaluateFlags",
    summary = "OFREP: evaluate every flag (bulk)",
    params(("Summit-Environment" = Option<String>, Header, description = "The environment, when the context has no `environment` attribute"), ("Summit-Service" = Option<String>, Header, description = "The service, when the context has no `service` attribute"), ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 when unchanged")),
    request_body = Option<doc::schemas::OfrepRequest>,
    responses(
        (status = 200, description = "Every flag's evaluation", body = doc::schemas::OfrepBulk, headers(("ETag" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag", headers(("ETag" = String))),
        (status = 400, description = "`PARSE_ERROR` or `INVALID_CONTEXT`", body = doc::schemas::OfrepError),
        (status = 403, description = "Refused (OFREP general error)", body = doc::schemas::OfrepGeneralError),
        (status = 500, description = "Internal error (OFREP general error)", body = doc::schemas::OfrepGeneralError),
        (status = 503, description = "Store unavailable (OFREP general error)", body = doc::schemas::OfrepGeneralError)
    )
)]
async fn evaluate_flags(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Failure> {
    let (context, scope) = request_of(&body, &headers)?;
    let evaluations = state
        .flags
        .evaluate_many(&caller, None, &scope, &context)
        .await?;
    let flags = evaluations.iter().map(Item::from).collect();
    let document = serde_json::to_vec(&Bulk { flags }).map_err(Error::internal)?;
    let etag_text = document_etag(&document);
    let etag = HeaderValue::from_str(&etag_text).map_err(Error::internal)?;
    let mut response = match headers.get(header::IF_NONE_MATCH) {
        Some(tags) if not_modified(tags, &etag_text) => StatusCode::NOT_MODIFIED.into_response(),
        _ => {
            let mut response = document.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    };
    response.headers_mut().insert(header::ETAG, etag);
    super::mark_if_stale(&state, &mut response);
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/ofrep/v1/configuration",
    tag = "ofrep",
    operation_id = "ofrepConfiguration",
    summary = "OFREP: the provider configuration",
    responses(
        (status = 200, description = "Capabilities", body = doc::schemas::OfrepConfiguration)
    )
)]
async fn configuration() -> Response {
    Json(json!({
        "name": "summit-config",
        "capabilities": {
            "cacheInvalidation": {
                "polling": {"enabled": true, "minPollingIntervalMs": MIN_POLLING_INTERVAL_MS}
            },
            "flagEvaluation": {
                "supportedTypes": ["boolean", "string", "int", "float", "object"]
            }
        }
    }))
    .into_response()
}
