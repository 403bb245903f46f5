//! Core errors as RFC 9457 problem+json: one exhaustive table from error code to status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::core::error::{Error, ErrorCode, Violation};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A refusal not yet in the denied-attempts record, carried on the response for the access
/// layer (response extensions never reach the client).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: String,
    pub resource: Option<String>,
}

/// A core error on its way to an HTTP client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::SchemaViolation => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidSchema => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::VersionConflict => StatusCode::CONFLICT,
        ErrorCode::ConcurrentModification => StatusCode::CONFLICT,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::SecretUnresolved => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::SecretProviderFailed => StatusCode::BAD_GATEWAY,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An RFC 9457 problem document (`application/problem+json`), the body of every error.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Problem<'a> {
    /// `https://summit-config.dev/problems/{code}`.
    #[serde(rename = "type")]
    kind: String,
    /// The status's reason phrase.
    title: &'a str,
    status: u16,
    /// What went wrong, for people.
    detail: String,
    /// The stable machine code: `invalid_input`, `schema_violation`, `invalid_schema`,
    /// `not_found`, `version_conflict`, `concurrent_modification`, `conflict`,
    /// `secret_unresolved`, `secret_provider_failed`, `unauthenticated`, `forbidden`,
    /// `rate_limited`, `payload_too_large`, `unavailable`, `internal`, and from the transport
    /// `unsupported_media_type`, `method_not_allowed`.
    code: &'a str,
    /// The parameter or JSON pointer an `invalid_input` is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<&'a str>,
    /// Each violation of a `schema_violation`.
    #[serde(skip_serializing_if = "<[Violation]>::is_empty")]
    errors: &'a [Violation],
    /// The current version, on a `version_conflict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    current_version: Option<u64>,
    /// The secret provider and reference a `secret_*` problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reference: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let status = status_of(code);
        let detail = match &self.0 {
            Error::Internal { detail } => {
                tracing::error!(%detail, "internal error");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let violations = self.0.violations();
        let field = match &self.0 {
            Error::InvalidInput { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let current_version = match &self.0 {
            Error::VersionConflict { actual, .. } => Some(*actual),
            _ => None,
        };
        let (provider, reference) = match &self.0 {
            Error::SecretUnresolved {
                provider,
                reference,
                ..
            }
            | Error::SecretProviderFailed {
                provider,
                reference,
                ..
            } => (Some(provider.as_str()), Some(reference.as_str())),
            _ => (None, None),
        };
        let mut response = problem_response(&Problem {
            kind: problem_type(code.as_str()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code: code.as_str(),
            field,
            errors: &violations,
            current_version,
            provider,
            reference,
        });
        match &self.0 {
            Error::Forbidden {
                reason,
                recorded: false,
                resource,
            } => {
                // For the access layer, which records the refusal once; never sent.
                response.extensions_mut().insert(Refusal {
                    reason: reason.clone(),
                    resource: resource.clone(),
                });
            }
            Error::Unauthenticated { .. } => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"summit-config\""),
                );
            }
            Error::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

fn problem_type(code: &str) -> String {
    format!("https://summit-config.dev/problems/{code}")
}

fn problem_response(problem: &Problem<'_>) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// Problems the HTTP layer raises itself (no core operation ran): 405.
pub fn transport_problem(status: StatusCode, code: &str, detail: String) -> Response {
    problem_response(&Problem {
        kind: problem_type(code),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
        field: None,
        errors: &[],
        current_version: None,
        provider: None,
        reference: None,
    })
}
