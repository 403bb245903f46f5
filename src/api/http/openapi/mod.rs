//! The OpenAPI 3.1 document of the REST API. Every route is registered with
//! `utoipa_axum::routes!` from its handler's `#[utoipa::path]`, so the router and this document
//! come from the same registrations (`super::documented_routes`); what every route shares (the
//! bearer scheme, the answers of the access and timeout layers) is added here once.

use std::sync::LazyLock;
use std::time::Duration;

use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{RefOr, Response};

use super::HttpLimits;

pub mod params;
pub mod problems;
pub mod schemas;
#[cfg(test)]
mod tests;

pub use params::*;
pub use problems::*;

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "summit-config",
        description = "Runtime configuration and feature flags: versioned, validated, rolled out \
            gradually, streamed to watchers. Errors are RFC 9457 problem documents \
            (`application/problem+json`, schema `Problem`); the reference with the rules behind \
            each field is docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            Unprocessable,
            TooManyRequests,
            Internal,
            BadGateway,
            Unavailable,
        )
    ),
    tags(
        (name = "configs", description = "Config versions, history, diff, rollback, delete"),
        (name = "schemas", description = "The JSON Schema a config must satisfy"),
        (name = "effective", description = "What an instance gets: base ⊕ override ⊕ canary ⊕ variant"),
        (name = "audit", description = "The append-only audit trail"),
        (name = "drift", description = "Applied state reported by instances, and drift"),
        (name = "watch", description = "Change events as Server-Sent Events or WebSocket messages"),
        (name = "flags", description = "Feature flags and their evaluation (docs/flags.md)"),
        (name = "ofrep", description = "OpenFeature Remote Evaluation Protocol v1 (its own error bodies)"),
        (name = "secrets", description = "The built-in secret store"),
        (name = "registry", description = "The service registry"),
        (name = "deployments", description = "Staged deployments and the released versions"),
        (name = "strategies", description = "Named, versioned deployment strategies"),
        (name = "change-requests", description = "Changes waiting for approvals (docs/access.md)"),
        (name = "access", description = "API tokens and refused attempts (admin)"),
        (name = "webhooks", description = "Webhooks and their deliveries"),
        (name = "ops", description = "Probes, metrics and this document; no credential needed"),
    )
)]
struct ApiDoc;

/// The document's head (info, tags, shared components); the routes add their paths to it.
pub(super) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The whole document, as the server serves it and docs/openapi.json holds it.
pub fn document() -> utoipa::openapi::OpenApi {
    // The limits shape no route; any values build the same document.
    let limits = HttpLimits {
        max_body_bytes: 1,
        request_timeout: Duration::from_secs(1),
    };
    let (_, mut document) = super::documented_routes(&limits);
    add_shared_answers(&mut document);
    document
}

/// The document as pretty-printed JSON with a final newline (made once).
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut text = document()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        text.push('\n');
        text
    });
    &JSON
}

/// Adds what every operation shares: the `Problem` schema, the bearer scheme on every route but
/// the open ones (`access::OPEN_ROUTES`), 401/429 from the access layer, 403 from the access
/// check every core operation makes, 503 from the timeout or an unreachable store, 500 from
/// the panic guard, and 413/415 for a body.
fn add_shared_answers(document: &mut utoipa::openapi::OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    let mut problem = vec![(
        <super::error::Problem as utoipa::ToSchema>::name().into_owned(),
        <super::error::Problem as utoipa::PartialSchema>::schema(),
    )];
    <super::error::Problem as utoipa::ToSchema>::schemas(&mut problem);
    components.schemas.extend(problem);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "`Authorization: Bearer <credential>`: an API token (`sc_…`, from \
                     `POST /api/v1/tokens`), a JWT from the configured issuer, or the admin \
                     token. Without a valid credential: 401 with `WWW-Authenticate`; with one \
                     that may not do the operation: 403. Servers started with \
                     `SUMMIT_NO_AUTH=true` take every request as unrestricted.",
                ))
                .build(),
        ),
    );
    document.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for (path, item) in document.paths.paths.iter_mut() {
        let open = super::access::OPEN_ROUTES.contains(&path.as_str());
        let ofrep = path.starts_with("/ofrep/");
        for operation in operations_mut(item) {
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, name: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(utoipa::openapi::Ref::from_response_name(name)));
            };
            if open {
                add("500", "Internal");
            } else {
                add("401", "Unauthorized");
                add("429", "TooManyRequests");
                // Past authentication OFREP answers in its own shape (declared per route).
                if !ofrep {
                    add("403", "Forbidden");
                    add("500", "Internal");
                    add("503", "Unavailable");
                }
                if operation.request_body.is_some() {
                    add("413", "PayloadTooLarge");
                    if !ofrep {
                        add("415", "UnsupportedMediaType");
                    }
                }
            }
            if open {
                operation.security = Some(Vec::new());
            }
        }
    }
}

fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// A response component answered with a problem document.
pub(crate) fn problem_response(description: &str) -> RefOr<Response> {
    problem_response_with(utoipa::openapi::ResponseBuilder::new().description(description))
}

pub(crate) fn problem_response_with(builder: utoipa::openapi::ResponseBuilder) -> RefOr<Response> {
    builder
        .content(
            "application/problem+json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}
