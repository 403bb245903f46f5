//! Access control for REST: authenticates the bearer credential, limits the identity's rate,
//! checks the route's permission and the token's scopes (id prefixes from the path,
//! environments from the query), records denied attempts, and hands the `Caller` to handlers.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, Either};
use tower::{Layer, Service};

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::core::access::{Caller, Identity, Permission};
use crate::core::error::{Error, Result};

/// Routes anyone may call: probes and metrics (no configuration in them).
const OPEN_ROUTES: [&str; 4] = ["/health", "/live", "/ready", "/metrics"];

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(credential)
}

/// The permission a route needs (handlers check anything that depends on the body).
fn permission_for(method: &Method, route: &str) -> Permission {
    if route.starts_with("/api/v1/tokens") || route == "/api/v1/audit/denied" {
        return Permission::ManageTokens;
    }
    if method == Method::GET || method == Method::HEAD {
        return Permission::Read;
    }
    match route {
        "/api/v1/configs/{id}/applied" => Permission::ReportApplied,
        "/api/v1/configs/{id}/schema/validate"
        | "/api/v1/feature-flags/evaluate"
        | "/api/v1/feature-flags/evaluate/batch"
        | "/api/v1/change-requests/{id}/cancel" => Permission::Read,
        "/api/v1/change-requests/{id}/approve" | "/api/v1/change-requests/{id}/reject" => {
            Permission::Approve
        }
        route if route.starts_with("/ofrep/") => Permission::Read,
        _ => Permission::Write,
    }
}

/// Routes that cover every config: a token limited to some ids may not use them.
type Query<'a> = [(Cow<'a, str>, Cow<'a, str>)];

fn covers_every_config(route: &str, query: &Query<'_>) -> bool {
    match route {
        "/api/v1/audit" | "/api/v1/drift" => true,
        "/api/v1/watch" => {
            let named = |param: &str| query.iter().any(|(name, _)| name == param);
            (!named("configId") && !named("flagKey") && !named("prefix"))
                || query
                    .iter()
                    .any(|(name, value)| name == "flags" && value == "true")
        }
        _ => false,
    }
}

/// What the route and its query ask of the identity.
fn check(
    identity: &Identity,
    method: &Method,
    route: &str,
    resource: Option<&str>,
    query: &Query<'_>,
) -> Result<()> {
    identity.require(permission_for(method, route))?;
    if let Some(id) = resource {
        identity.require_resource(id)?;
    }
    if covers_every_config(route, query) {
        identity.require_unscoped_ids()?;
    }
    for (name, value) in query {
        match name.as_ref() {
            "environment" => identity.require_environment(value)?,
            "resolveSecrets" if value == "true" => identity.require(Permission::ResolveSecrets)?,
            "configId" | "flagKey" => {
                for id in value.split(',') {
                    identity.require_resource(id.trim())?;
                }
            }
            "prefix" if route == "/api/v1/watch" => identity.require_prefix(value)?,
            _ => {}
        }
    }
    if route == "/api/v1/configs/{id}/effective"
        && !identity.scopes.environments.is_empty()
        && !query.iter().any(|(name, _)| name == "environment")
    {
        return Err(Error::forbidden(format!(
            "'{}' is scoped to environments; name one with ?environment=",
            identity.name
        )));
    }
    Ok(())
}

/// The config id or flag key a route's path names (change request ids are not scoped here);
/// read from the path itself (the handlers check its syntax).
fn resource_of<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    let segment = if route.starts_with("/api/v1/configs/{id}")
        || route.starts_with("/api/v1/feature-flags/{key}")
    {
        4
    } else if route.starts_with("/ofrep/v1/evaluate/flags/{key}") {
        5
    } else {
        return None;
    };
    path.split('/').nth(segment)
}

/// The access gate as a tower layer on the matched routes. The common case (a cached token,
/// allowed) completes without I/O and without boxing; refusals and cache misses take a boxed
/// future (recording a denial, or reading tokens from the store).
#[derive(Clone)]
pub struct AuthorizeLayer {
    pub state: AppState,
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    state: AppState,
}

type Refusal = BoxFuture<'static, Result<Response, Infallible>>;

impl<S> Service<Request> for Authorize<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Refusal>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        if OPEN_ROUTES.contains(&route) {
            return Either::Left(self.inner.call(request));
        }
        let access = &self.state.access;
        match access.authenticate(bearer(request.headers())) {
            Ok(identity) => match admit(&self.state, &identity, &request) {
                Ok(()) => {
                    request.extensions_mut().insert(Caller(Some(identity)));
                    Either::Left(self.inner.call(request))
                }
                Err(refused) => Either::Right(refused),
            },
            Err(error) => {
                metrics::counter!("summit_auth_failures_total").increment(1);
                Either::Right(Box::pin(async move { Ok(ApiError(error).into_response()) }))
            }
        }
    }
}

/// The rate limit, the route's permission and the token's scopes; a refusal is answered by a
/// future that records it.
fn admit(state: &AppState, identity: &Arc<Identity>, request: &Request) -> Result<(), Refusal> {
    state
        .access
        .check_rate(identity)
        .map_err(|error| -> Refusal {
            Box::pin(async move { Ok(ApiError(error).into_response()) })
        })?;
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    let path = request.uri().path();
    let resource = resource_of(route, path);
    let query: Vec<(Cow<'_, str>, Cow<'_, str>)> =
        form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).collect();
    let Err(error) = check(identity, request.method(), route, resource, &query) else {
        return Ok(());
    };
    let (state, actor) = (state.clone(), identity.name.clone());
    let operation = format!("{} {route}", request.method());
    let resource = resource.map(str::to_owned);
    Err(Box::pin(async move {
        if let Error::Forbidden { reason, .. } = &error {
            state
                .access
                .record_denial(&actor, &operation, resource.as_deref(), reason)
                .await;
        }
        Ok(ApiError(error).into_response())
    }))
}

/// Records a refusal a handler found (after reading the body) and returns it.
pub async fn denied(state: &AppState, caller: &Caller, operation: &str, error: Error) -> ApiError {
    if let (Error::Forbidden { reason, .. }, Some(identity)) = (&error, &caller.0) {
        state
            .access
            .record_denial(&identity.name, operation, None, reason)
            .await;
    }
    ApiError(error)
}
