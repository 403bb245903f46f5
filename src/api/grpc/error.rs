//! Core errors as gRPC statuses: one exhaustive table from error code to status code. The
//! stable machine code, the field and any violations travel in metadata and details.

use tonic::{Code, Status};

use crate::core::error::{Error, ErrorCode};

pub fn code_of(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidInput => Code::InvalidArgument,
        ErrorCode::SchemaViolation => Code::InvalidArgument,
        ErrorCode::InvalidSchema => Code::InvalidArgument,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::VersionConflict => Code::Aborted,
        ErrorCode::ConcurrentModification => Code::Aborted,
        ErrorCode::Conflict => Code::FailedPrecondition,
        ErrorCode::SecretUnresolved => Code::FailedPrecondition,
        ErrorCode::SecretProviderFailed => Code::Unavailable,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::Forbidden => Code::PermissionDenied,
        ErrorCode::RateLimited => Code::ResourceExhausted,
        ErrorCode::PayloadTooLarge => Code::ResourceExhausted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let code = error.code();
        let message = match &error {
            Error::Internal { detail } => {
                tracing::error!(%detail, "internal error");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut status = Status::new(code_of(code), message);
        let metadata = status.metadata_mut();
        // Violations as JSON in binary metadata (the details trailer is reserved for a
        // google.rpc.Status protobuf, which other gRPC implementations parse strictly).
        let violations = error.violations();
        if !violations.is_empty() {
            let json = serde_json::to_vec(&violations).unwrap_or_default();
            metadata.insert_bin(
                "summit-violations-bin",
                tonic::metadata::MetadataValue::from_bytes(&json),
            );
        }
        if let Ok(value) = code.as_str().parse() {
            metadata.insert("summit-code", value);
        }
        if let Error::InvalidInput { field, .. } = &error {
            // ASCII metadata carries printable ASCII only (the parse would let other bytes
            // through): a field naming a non-ASCII member (`document.configJson/größe`) goes
            // in binary metadata, as UTF-8.
            let printable = field.bytes().all(|b| (0x20..0x7f).contains(&b));
            match field.parse().ok().filter(|_| printable) {
                Some(value) => {
                    metadata.insert("summit-field", value);
                }
                None => {
                    metadata.insert_bin(
                        "summit-field-bin",
                        tonic::metadata::MetadataValue::from_bytes(field.as_bytes()),
                    );
                }
            }
        }
        if let Error::Forbidden {
            resource: Some(resource),
            ..
        } = &error
            && let Ok(value) = resource.parse()
        {
            // For the access layer's record; removed before the answer leaves the server.
            metadata.insert(super::access::DENIAL_RESOURCE, value);
        }
        if let Error::Forbidden { recorded: true, .. } = &error {
            // The gate records handler refusals unless the core already did.
            metadata.insert(
                super::access::DENIAL_RECORDED,
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
        if let Error::RateLimited { retry_after_secs } = &error
            && let Ok(value) = retry_after_secs.to_string().parse()
        {
            metadata.insert("retry-after", value);
        }
        if let Error::VersionConflict { actual, .. } = &error
            && let Ok(value) = actual.to_string().parse()
        {
            metadata.insert("summit-current-version", value);
        }
        status
    }
}

/// How tonic begins the status of a request message over `max_decoding_message_size`.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// tonic answers a request message over the limit with OUT_OF_RANGE, where gRPC's status
/// codes (and every other implementation) say RESOURCE_EXHAUSTED; REST answers the same
/// refusal 413 `payload_too_large`. Makes tonic's answer this server's: RESOURCE_EXHAUSTED
/// with `summit-code: payload_too_large`, tonic's message kept (it names both sizes).
pub fn too_large_as_resource_exhausted(headers: &mut axum::http::HeaderMap) {
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == b"11");
    if !out_of_range {
        return;
    }
    // `grpc-message` is percent-encoded (tonic encodes the spaces).
    let too_large = headers.get("grpc-message").is_some_and(|message| {
        percent_encoding::percent_decode(message.as_bytes())
            .decode_utf8_lossy()
            .starts_with(TOO_LARGE)
    });
    if !too_large {
        return;
    }
    let code = ErrorCode::PayloadTooLarge;
    headers.insert(
        "grpc-status",
        axum::http::HeaderValue::from(code_of(code) as i32),
    );
    headers.insert(
        "summit-code",
        axum::http::HeaderValue::from_static(code.as_str()),
    );
}
