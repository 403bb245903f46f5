//! The one error type of the core. Transports map it by `code()`, each in one exhaustive match.

use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One field or JSON pointer that failed a check, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// JSON pointer into the checked document (RFC 6901), or a parameter name.
    pub pointer: String,
    pub message: String,
    /// Which effective view failed, e.g. `environment=production,canary`; absent for the base.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field, parameter or body that is malformed or out of range.
    #[error("{message}")]
    InvalidInput { field: String, message: String },
    /// The configuration (or a layer of it) does not satisfy the registered schema.
    #[error("the configuration does not satisfy the registered schema ({} violation(s))", violations.len())]
    SchemaViolation { violations: Vec<Violation> },
    /// The submitted JSON Schema cannot be compiled.
    #[error("invalid JSON Schema at {pointer}: {message}")]
    InvalidSchema { pointer: String, message: String },
    #[error("{resource} '{id}' not found")]
    NotFound { resource: &'static str, id: String },
    /// `expectedVersion` / `If-Match` did not match the current version.
    #[error("version conflict: expected version {expected}, current version is {actual}")]
    VersionConflict { expected: u64, actual: u64 },
    /// Another writer changed something this write depended on; retrying is safe.
    #[error("{message}")]
    ConcurrentModification { message: String },
    /// The request is valid but the current state forbids it (e.g. deleting a flag that
    /// another flag names as a prerequisite).
    #[error("{message}")]
    Conflict { message: String },
    /// A secret reference could not be resolved: the provider has no such secret, field,
    /// version or stage, or the reference is outside its policy. Never carries the value.
    #[error(
        "secret reference at {pointer} ({reference}) could not be resolved by provider \
         '{provider}': {reason}"
    )]
    SecretUnresolved {
        pointer: String,
        provider: String,
        /// The reference as written, `provider:locator`.
        reference: String,
        reason: String,
    },
    /// A secret provider failed (unreachable, no answer in time, an error status, refused
    /// credentials); it may succeed later. Never carries the value or a credential.
    #[error(
        "secret provider '{provider}' failed for the reference at {pointer} ({reference}): {reason}"
    )]
    SecretProviderFailed {
        pointer: String,
        provider: String,
        reference: String,
        reason: String,
    },
    /// No credentials, or credentials that do not identify anyone (never echoed).
    #[error("{reason}")]
    Unauthenticated { reason: String },
    /// The identity lacks the role or scope for the operation. `recorded`: the refusal is
    /// already in the denied-attempts record (the transports record the others).
    #[error("{reason}")]
    /// `resource`: the config id or flag key refused on, when there is one.
    Forbidden {
        reason: String,
        recorded: bool,
        resource: Option<String>,
    },
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Something the operation needs is unavailable (the store, a watcher slot, a secret
    /// provider); it may succeed later. `reason` is shown to clients: never put raw driver
    /// errors in it (log them and use `Error::store_unavailable`).
    #[error("{reason}")]
    Unavailable { reason: String },
    /// A bug or an unexpected store failure. The detail is logged, never shown to clients.
    #[error("internal error")]
    Internal { detail: String },
}

/// Stable machine-readable codes; part of the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidInput,
    SchemaViolation,
    InvalidSchema,
    NotFound,
    VersionConflict,
    ConcurrentModification,
    Conflict,
    SecretUnresolved,
    SecretProviderFailed,
    Unauthenticated,
    Forbidden,
    RateLimited,
    PayloadTooLarge,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::SchemaViolation => "schema_violation",
            ErrorCode::InvalidSchema => "invalid_schema",
            ErrorCode::NotFound => "not_found",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::ConcurrentModification => "concurrent_modification",
            ErrorCode::Conflict => "conflict",
            ErrorCode::SecretUnresolved => "secret_unresolved",
            ErrorCode::SecretProviderFailed => "secret_provider_failed",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidInput { .. } => ErrorCode::InvalidInput,
            Error::SchemaViolation { .. } => ErrorCode::SchemaViolation,
            Error::InvalidSchema { .. } => ErrorCode::InvalidSchema,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::VersionConflict { .. } => ErrorCode::VersionConflict,
            Error::ConcurrentModification { .. } => ErrorCode::ConcurrentModification,
            Error::Conflict { .. } => ErrorCode::Conflict,
            Error::SecretUnresolved { .. } => ErrorCode::SecretUnresolved,
            Error::SecretProviderFailed { .. } => ErrorCode::SecretProviderFailed,
            Error::Unauthenticated { .. } => ErrorCode::Unauthenticated,
            Error::Forbidden { .. } => ErrorCode::Forbidden,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::Unavailable { .. } => ErrorCode::Unavailable,
            Error::Internal { .. } => ErrorCode::Internal,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(resource: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            resource,
            id: id.into(),
        }
    }

    /// The request conflicts with what exists (a taken id, a state that forbids it).
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
        }
    }

    /// What the request was based on changed meanwhile; reading again and retrying may succeed.
    pub fn concurrent(message: impl Into<String>) -> Self {
        Error::ConcurrentModification {
            message: message.into(),
        }
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        Error::Forbidden {
            reason: reason.into(),
            recorded: false,
            resource: None,
        }
    }

    /// A refusal on `resource` (a config id or flag key), for the denied-attempts record.
    pub fn on_resource(self, id: &str) -> Self {
        match self {
            Error::Forbidden {
                reason,
                recorded,
                resource: None,
            } => Error::Forbidden {
                reason,
                recorded,
                resource: Some(id.to_owned()),
            },
            other => other,
        }
    }

    /// The store did not answer; the driver's error is logged here, not shown.
    pub fn store_unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(%cause, "store unavailable");
        Error::Unavailable {
            reason: "the configuration store is unavailable".into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal {
            detail: detail.to_string(),
        }
    }

    /// The field or pointers this error is about, for problem details.
    pub fn violations(&self) -> Vec<Violation> {
        match self {
            Error::InvalidInput { field, message } => vec![Violation {
                pointer: field.clone(),
                message: message.clone(),
                scope: None,
            }],
            Error::SchemaViolation { violations } => violations.clone(),
            Error::InvalidSchema { pointer, message } => vec![Violation {
                pointer: pointer.clone(),
                message: message.clone(),
                scope: None,
            }],
            Error::SecretUnresolved {
                pointer, reason, ..
            }
            | Error::SecretProviderFailed {
                pointer, reason, ..
            } => vec![Violation {
                pointer: pointer.clone(),
                message: reason.clone(),
                scope: None,
            }],
            _ => Vec::new(),
        }
    }
}

/// Runs `write` again (three tries in all) while what it read moved before it wrote
/// (`ConcurrentModification`): each try reads afresh and is judged again.
pub(crate) async fn retrying_when_moved<T, F, Fut>(mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match write().await {
            Err(Error::ConcurrentModification { .. }) if tries < 3 => {}
            other => return other,
        }
    }
}
