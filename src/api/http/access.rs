//! Access for REST: authenticates the bearer credential, limits the identity's rate and hands
//! the `Caller` to handlers. What a caller may do is decided by the core operation the handler
//! calls (the same code gRPC reaches); this layer records every refusal once, as the
//! operation `METHOD route`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::FutureExt;
use futures::future::{BoxFuture, Either};
use tower::{Layer, Service};

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::direct::Direct;
use super::error::{ApiError, Refusal};
use super::{AppState, HttpLimits};
use crate::core::access::{Caller, CredentialMemo};
use crate::core::error::Error;

/// Routes anyone may call: probes, metrics and the API's description (no configuration in
/// them). The OpenAPI document marks these as needing no credential.
pub(crate) const OPEN_ROUTES: [&str; 5] = [
    "/health",
    "/live",
    "/ready",
    "/metrics",
    "/api/v1/openapi.json",
];

/// A handler that takes a `Caller` on a route the access layer did not pass (which cannot
/// happen for routed requests) fails closed.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError(Error::internal(
                "a handler ran without an authenticated caller",
            ))
        })
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(credential)
}

/// Serves each connection with its own `CredentialMemo`, so the requests of a connection that
/// repeats its credential are authenticated without hashing it again; effective reads and
/// single flag evaluations are answered ahead of the router (`direct`).
#[derive(Clone)]
pub struct WithCredentialMemo {
    pub router: axum::Router,
    pub state: AppState,
    /// The routed handlers' body limit and deadline, which the direct answers keep.
    pub limits: HttpLimits,
}

impl WithCredentialMemo {
    /// The service of one new connection.
    pub fn connection(&self) -> RememberingConnection {
        RememberingConnection {
            router: self.router.clone(),
            state: self.state.clone(),
            limits: self.limits.clone(),
            memo: Arc::new(CredentialMemo::default()),
        }
    }
}

/// One connection's router and memo.
#[derive(Clone)]
pub struct RememberingConnection {
    router: axum::Router,
    state: AppState,
    limits: HttpLimits,
    memo: Arc<CredentialMemo>,
}

impl Service<Request> for RememberingConnection {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <axum::Router as Service<Request>>::Future,
        futures::future::Map<
            BoxFuture<'static, Response>,
            fn(Response) -> Result<Response, Infallible>,
        >,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Some(direct) = Direct::of(&request) {
            let (state, limits, memo) =
                (self.state.clone(), self.limits.clone(), self.memo.clone());
            let answer = super::direct::serve(state, limits, memo, direct, request);
            return Either::Right(answer.map(Ok));
        }
        request.extensions_mut().insert(self.memo.clone());
        Either::Left(self.router.call(request))
    }
}

/// The access layer on the matched routes (installed whatever the settings: with access
/// control off every caller is the unrestricted identity). An allowed request with a cached
/// token completes without I/O and without boxing; a refusal is recorded before it is answered.
#[derive(Clone)]
pub struct AuthenticateLayer {
    pub state: AppState,
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;
    fn layer(&self, inner: S) -> Authenticate<S> {
        Authenticate {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Authenticate<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RecordRefusal<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let route_str = route.as_ref().map_or("", MatchedPath::as_str);
        if OPEN_ROUTES.contains(&route_str) {
            return RecordRefusal::passing(self.inner.call(request));
        }
        let memo = request.extensions().get::<Arc<CredentialMemo>>();
        let caller = match caller_of(&self.state, request.headers(), memo.map(Arc::as_ref)) {
            Ok(caller) => caller,
            Err(refused) => return RecordRefusal::answered(ApiError(refused).into_response()),
        };
        let operation = route.map(|route| (request.method().clone(), route));
        request.extensions_mut().insert(caller.clone());
        RecordRefusal::watching(
            self.inner.call(request),
            self.state.clone(),
            caller,
            operation,
        )
    }
}

/// The caller of a request on a route that needs a credential: with access control on, the
/// bearer credential authenticated (from the connection's `memo` when it remembers it) and
/// within its identity's rate; else the unrestricted identity. A refusal is the error to answer
/// (401, 429), counted when it is an authentication failure.
pub(crate) fn caller_of(
    state: &AppState,
    headers: &HeaderMap,
    memo: Option<&CredentialMemo>,
) -> Result<Caller, Error> {
    let access = &state.access;
    if !access.enabled() {
        return Ok(Caller::unrestricted());
    }
    let credential = bearer(headers);
    match memo {
        Some(memo) => access.authenticate_remembering(credential, memo),
        None => access.authenticate(credential),
    }
    .and_then(|identity| access.check_rate(&identity).map(|()| Caller(identity)))
    .inspect_err(|error| {
        if let Error::Unauthenticated { .. } = error {
            metrics::counter!("summit_auth_failures_total").increment(1);
        }
    })
}

pin_project_lite::pin_project! {
    /// The inner response; when it carries a `Refusal`, the refusal is recorded first.
    #[project = RecordProj]
    pub enum RecordRefusal<F> {
        Inner {
            #[pin]
            future: F,
            // Inline, not boxed: no allocation on the request path.
            watch: Option<Watch>,
        },
        Recording { future: BoxFuture<'static, Response> },
        Answered { response: Option<Response> },
    }
}

/// What recording a refusal needs.
pub struct Watch {
    state: AppState,
    caller: Caller,
    operation: Option<(axum::http::Method, MatchedPath)>,
}

impl<F> RecordRefusal<F> {
    fn passing(future: F) -> Self {
        RecordRefusal::Inner {
            future,
            watch: None,
        }
    }

    fn answered(response: Response) -> Self {
        RecordRefusal::Answered {
            response: Some(response),
        }
    }

    fn watching(
        future: F,
        state: AppState,
        caller: Caller,
        operation: Option<(axum::http::Method, MatchedPath)>,
    ) -> Self {
        RecordRefusal::Inner {
            future,
            watch: Some(Watch {
                state,
                caller,
                operation,
            }),
        }
    }
}

impl<F> Future for RecordRefusal<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project() {
                RecordProj::Inner { future, watch } => {
                    let Ok(mut response) = ready!(future.poll(cx));
                    let refusal = response.extensions_mut().remove::<Refusal>();
                    match (refusal, watch.take()) {
                        (Some(refusal), Some(watch)) => RecordRefusal::Recording {
                            future: Box::pin(record(watch, refusal, response)),
                        },
                        _ => return Poll::Ready(Ok(response)),
                    }
                }
                RecordProj::Recording { future } => {
                    return future.as_mut().poll(cx).map(Ok);
                }
                RecordProj::Answered { response } => {
                    return Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                        ApiError(Error::internal("response polled twice")).into_response()
                    })));
                }
            };
            self.set(next);
        }
    }
}

async fn record(watch: Watch, refusal: Refusal, response: Response) -> Response {
    let operation = match &watch.operation {
        Some((method, route)) => format!("{method} {}", route.as_str()),
        None => "unrouted".to_owned(),
    };
    record_denial(&watch.state, &watch.caller, &operation, refusal).await;
    response
}

/// Records a refusal the core answered, once, as `operation` (`METHOD route`).
pub(crate) async fn record_denial(
    state: &AppState,
    caller: &Caller,
    operation: &str,
    refusal: Refusal,
) {
    state
        .access
        .record_denial(
            &caller.identity().name,
            operation,
            refusal.resource.as_deref(),
            &refusal.reason,
        )
        .await;
}
