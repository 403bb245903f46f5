//! Access control for gRPC: a tower layer in front of the services that authenticates the
//! `authorization: Bearer …` metadata, limits the identity's rate, checks the RPC's
//! permission, records denied attempts, and hands the `Caller` to the handlers (which check
//! scopes against the ids in the message). Health and reflection stay open.

use std::sync::Arc;

use axum::http::{Request, Response};
use tonic::Status;
use tonic::body::Body;

use super::layer::{Answer, AroundCall, CallLayer, InnerService};
use crate::core::access::{AccessService, Caller};
use crate::core::error::Error;

/// The layer that lets a call through only for a caller `access` admits.
pub fn layer(access: Arc<AccessService>) -> CallLayer<AccessGuard> {
    CallLayer(AccessGuard {
        access,
        unrestricted: Caller::unrestricted(),
    })
}

#[derive(Clone)]
pub struct AccessGuard {
    access: Arc<AccessService>,
    /// Every caller when access control is off.
    unrestricted: Caller,
}

/// Set by `error.rs` on a refusal the core already recorded; removed here before the answer
/// leaves the server.
pub const DENIAL_RECORDED: &str = "summit-denial-recorded";

/// Set by `error.rs` on a refusal that names a config id or flag key; removed here likewise.
pub const DENIAL_RESOURCE: &str = "summit-denial-resource";

/// Services anyone may call, like REST's probes: health and reflection.
fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// The message of a PERMISSION_DENIED answer (trailers-only: the status is in the headers).
fn permission_denied(response: &Response<Body>) -> Option<String> {
    let headers = response.headers();
    if headers.get("grpc-status")?.as_bytes() != b"7" {
        return None;
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default();
    // grpc-message is percent-encoded (gRPC over HTTP/2 spec).
    Some(
        percent_encoding::percent_decode_str(message)
            .decode_utf8()
            .map_or_else(|_| "permission denied".to_owned(), |m| m.into_owned()),
    )
}

fn refuse(error: Error) -> Response<Body> {
    Status::from(error).into_http()
}

impl AroundCall for AccessGuard {
    fn around<S: InnerService>(
        &self,
        inner: &mut S,
        mut request: Request<Body>,
    ) -> Answer<S::Error> {
        // The clone that was readied serves this call; the fresh clone waits for the next.
        let clone = inner.clone();
        let mut inner = std::mem::replace(inner, clone);
        let access = self.access.clone();
        let unrestricted = self.unrestricted.clone();
        Box::pin(async move {
            if is_open(request.uri().path()) {
                return inner.call(request).await;
            }
            let caller = if access.enabled() {
                let credential = crate::api::http::access::bearer(request.headers());
                let identity = match access.authenticate(credential) {
                    Ok(identity) => identity,
                    Err(error) => {
                        metrics::counter!("summit_auth_failures_total").increment(1);
                        return Ok(refuse(error));
                    }
                };
                if let Err(error) = access.check_rate(&identity) {
                    return Ok(refuse(error));
                }
                Caller(identity)
            } else {
                unrestricted
            };
            let (actor, path) = (
                caller.identity().name.clone(),
                request.uri().path().to_owned(),
            );
            request.extensions_mut().insert(caller);
            let mut response = inner.call(request).await?;
            // The core's refusals (a missing permission, an id or environment outside the
            // caller's scopes) are recorded here, once; those the core recorded itself say so
            // in a header that never leaves the server.
            let recorded = response.headers_mut().remove(DENIAL_RECORDED).is_some();
            let resource = response
                .headers_mut()
                .remove(DENIAL_RESOURCE)
                .and_then(|value| value.to_str().ok().map(str::to_owned));
            if !recorded && let Some(reason) = permission_denied(&response) {
                access
                    .record_denial(&actor, &path, resource.as_deref(), &reason)
                    .await;
            }
            Ok(response)
        })
    }
}
