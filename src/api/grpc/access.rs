//! Access control for gRPC: a tower layer in front of the services that authenticates the
//! `authorization: Bearer …` metadata, limits the identity's rate, checks the RPC's
//! permission, records denied attempts, and hands the `Caller` to the handlers (which check
//! scopes against the ids in the message). Health and reflection stay open.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{self, Request, Response};
use futures::future::BoxFuture;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::core::access::{AccessService, Caller, Permission};
use crate::core::error::Error;

#[derive(Clone)]
pub struct AccessLayer {
    pub access: Arc<AccessService>,
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessGuard<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessGuard {
            inner,
            access: self.access.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessGuard<S> {
    inner: S,
    access: Arc<AccessService>,
}

/// The permission an RPC needs (`/package.Service/Method`); `None` for open services.
fn permission_for(path: &str) -> Option<Permission> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    match service {
        "summit.config.v1.ConfigService" => Some(match method {
            "RegisterSchema" | "PutConfig" | "DeleteConfig" | "Rollback" => Permission::Write,
            "RecordApplied" => Permission::ReportApplied,
            _ => Permission::Read,
        }),
        "summit.config.v1.FlagService" => Some(match method {
            "PutFlag" | "DeleteFlag" | "RollbackFlag" => Permission::Write,
            _ => Permission::Read,
        }),
        // grpc.health.v1, reflection: open, like REST's probes.
        _ => None,
    }
}

/// The message of a PERMISSION_DENIED answer (trailers-only: the status is in the headers).
fn permission_denied(response: &Response<Body>) -> Option<String> {
    let headers = response.headers();
    if headers.get("grpc-status")?.as_bytes() != b"7"
        || headers.contains_key("summit-denial-recorded")
    {
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

impl<S> Service<Request<Body>> for AccessGuard<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was readied serves this call; the fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let access = self.access.clone();
        Box::pin(async move {
            let permission = permission_for(request.uri().path());
            let (Some(permission), true) = (permission, access.enabled()) else {
                request.extensions_mut().insert(Caller(None));
                return inner.call(request).await;
            };
            let credential = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, credential)| credential.to_owned());
            let identity = match access.authenticate(credential.as_deref()) {
                Ok(identity) => identity,
                Err(error) => {
                    metrics::counter!("summit_auth_failures_total").increment(1);
                    return Ok(refuse(error));
                }
            };
            if let Err(error) = access.check_rate(&identity) {
                return Ok(refuse(error));
            }
            if let Err(error) = identity.require(permission) {
                if let Error::Forbidden { reason, .. } = &error {
                    access
                        .record_denial(&identity.name, request.uri().path(), None, reason)
                        .await;
                }
                return Ok(refuse(error));
            }
            let (actor, path) = (identity.name.clone(), request.uri().path().to_owned());
            request.extensions_mut().insert(Caller(Some(identity)));
            let response = inner.call(request).await?;
            // A handler's scope refusal (an id or environment outside the token's scopes) is
            // recorded like the gate's own.
            if let Some(reason) = permission_denied(&response) {
                access.record_denial(&actor, &path, None, &reason).await;
            }
            Ok(response)
        })
    }
}
