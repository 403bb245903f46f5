//! The error answers as reusable response components, each a problem document
//! (`application/problem+json`, schema `Problem`); `super::error::status_of` is the table from
//! error code to status.

use utoipa::PartialSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{RefOr, Response, ResponseBuilder};

use super::{problem_response, problem_response_with};

macro_rules! problem {
    ($(#[$doc:meta])* $name:ident, $description:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), problem_response($description))
            }
        }
    };
}

problem!(
    BadRequest,
    "Bad input (`invalid_input`): `field` names the parameter or JSON pointer; nothing changed"
);
problem!(
    Forbidden,
    "The credential may not do this (`forbidden`): a missing permission, or an id or \
     environment outside its scopes; the attempt is recorded (`GET /api/v1/audit/denied`)"
);
problem!(NotFound, "The resource does not exist (`not_found`)");
problem!(
    Conflict,
    "`version_conflict` (`expectedVersion` / `If-Match` differs; `currentVersion` tells the \
     current one), `concurrent_modification` (safe to retry) or `conflict` (the current state \
     forbids it); nothing changed"
);
problem!(
    PayloadTooLarge,
    "The body is larger than the server's limit (`payload_too_large`)"
);
problem!(
    UnsupportedMediaType,
    "The body is declared as a media type that is not JSON (`unsupported_media_type`)"
);
problem!(
    Unprocessable,
    "`schema_violation` (`errors` lists each violation), `invalid_schema`, or \
     `secret_unresolved` (`provider`, `reference`); nothing changed"
);
problem!(
    Internal,
    "An internal error (`internal`); the detail is logged, never sent"
);
problem!(
    BadGateway,
    "A secret provider failed (`secret_provider_failed`: `provider`, `reference`); it may \
     succeed later"
);
problem!(
    Unavailable,
    "The store is unreachable or the server is shutting down (`unavailable`), or the request \
     ran past the server's deadline (then the answer has no body)"
);

/// No credential, or one that is unknown, expired or revoked (`unauthenticated`).
pub struct Unauthorized;

impl<'s> utoipa::ToResponse<'s> for Unauthorized {
    fn response() -> (&'s str, RefOr<Response>) {
        let challenge = HeaderBuilder::new()
            .schema(Some(<String as PartialSchema>::schema()))
            .description(Some("`Bearer realm=\"summit-config\"`"))
            .build();
        let builder = ResponseBuilder::new()
            .description(
                "No credential, or one that is unknown, expired or revoked (`unauthenticated`)",
            )
            .header("WWW-Authenticate", challenge);
        ("Unauthorized", problem_response_with(builder))
    }
}

/// The identity's request rate is over its limit (`rate_limited`).
pub struct TooManyRequests;

impl<'s> utoipa::ToResponse<'s> for TooManyRequests {
    fn response() -> (&'s str, RefOr<Response>) {
        let retry_after = HeaderBuilder::new()
            .schema(Some(<u64 as PartialSchema>::schema()))
            .description(Some("Seconds to wait before the next request"))
            .build();
        let builder = ResponseBuilder::new()
            .description("The identity's request rate is over its limit (`rate_limited`)")
            .header("Retry-After", retry_after);
        ("TooManyRequests", problem_response_with(builder))
    }
}

/// 400 and 404: the refusals of a route that names a resource and reads input.
#[derive(utoipa::IntoResponses)]
pub enum BadRequestOrNotFound {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
}

/// 400, 404 and 409: the refusals of a write to a resource that may have moved on.
#[derive(utoipa::IntoResponses)]
pub enum BadRequestNotFoundOrConflict {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 409)]
    Conflict(#[ref_response] Conflict),
}
