//! The hot requests answered ahead of the router: effective reads and single flag evaluations
//! (REST and OFREP), which every instance of every service sends. Each saves the routing, the
//! route's boxed service and its layers, and runs the very steps the routed request runs:
//! authentication and rate limit (`access::caller_of`), the body limit and the request deadline
//! (for the evaluations, which read a body), the route's own handler (which calls the core
//! operation that decides the permission and scopes), refusal recording, metrics under the
//! route's template, the trace span and the panic guard (`track`).
//!
//! Anything else on these paths (another method, a query string on an evaluation, an empty
//! segment) is left to the router, which answers it as before. `tests/it/effective_direct.rs`
//! and `tests/it/evaluate_direct.rs` ask every case both ways and compare.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::deadline::within;
use super::error::{ApiError, Refusal};
use super::{AppState, HttpLimits, access, effective, flags, ofrep, track};
use crate::core::access::{Caller, CredentialMemo};

/// A request the router need not see.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direct {
    /// `GET /api/v1/configs/{id}/effective`
    Effective,
    /// `POST /api/v1/feature-flags/evaluate`
    EvaluateFlag,
    /// `POST /ofrep/v1/evaluate/flags/{key}`
    OfrepFlag,
}

const EVALUATE_FLAG: &str = "/api/v1/feature-flags/evaluate";
const OFREP_FLAG_PREFIX: &str = "/ofrep/v1/evaluate/flags/";

impl Direct {
    /// Which direct request this is, if any.
    pub(crate) fn of(request: &Request) -> Option<Direct> {
        let (method, uri) = (request.method(), request.uri());
        if *method == Method::GET {
            return effective::raw_id(uri.path()).map(|_| Direct::Effective);
        }
        if *method != Method::POST || uri.query().is_some() {
            return None;
        }
        if uri.path() == EVALUATE_FLAG {
            return Some(Direct::EvaluateFlag);
        }
        ofrep_key(uri.path()).map(|_| Direct::OfrepFlag)
    }

    /// The route's template, as metrics, traces and the denied-attempts record name it.
    fn route(self) -> &'static str {
        match self {
            Direct::Effective => "/api/v1/configs/{id}/effective",
            Direct::EvaluateFlag => EVALUATE_FLAG,
            Direct::OfrepFlag => "/ofrep/v1/evaluate/flags/{key}",
        }
    }

    fn method(self) -> &'static str {
        match self {
            Direct::Effective => "GET",
            Direct::EvaluateFlag | Direct::OfrepFlag => "POST",
        }
    }
}

/// The `{key}` of an OFREP single evaluation's path, percent-decoded as the routed handler's
/// `RawPathParams` gives it; `None` (left to the router, which refuses it) when it does not
/// decode as UTF-8.
pub(crate) fn ofrep_key(path: &str) -> Option<Cow<'_, str>> {
    let key = path.strip_prefix(OFREP_FLAG_PREFIX)?;
    if key.is_empty() || key.contains('/') {
        return None;
    }
    percent_encoding::percent_decode_str(key).decode_utf8().ok()
}

/// Answers `request`, which `Direct::of` named `direct`. Each kind gets a future sized for
/// its own steps (boxing copies the whole future).
pub(crate) fn serve(
    state: AppState,
    limits: HttpLimits,
    memo: Arc<CredentialMemo>,
    direct: Direct,
    request: Request,
) -> BoxFuture<'static, Response> {
    match direct {
        // A GET's body is not read (as on the routed path); no deadline, as routed: the read is
        // answered from memory.
        Direct::Effective => tracked(
            state,
            memo,
            direct,
            request,
            |state, caller, request| async move {
                let (parts, _) = request.into_parts();
                effective::direct(&state, &caller, &parts).await
            },
        )
        .boxed(),
        Direct::EvaluateFlag => {
            bounded(state, limits, memo, direct, request, flags::evaluate_direct)
        }
        Direct::OfrepFlag => bounded(state, limits, memo, direct, request, ofrep::evaluate_direct),
    }
}

/// A direct answer that reads a body: the routed handlers' deadline around `handler`, whose
/// body extractor keeps the routed handlers' body limit (it reads the server's own).
fn bounded<A>(
    state: AppState,
    limits: HttpLimits,
    memo: Arc<CredentialMemo>,
    direct: Direct,
    request: Request,
    handler: fn(AppState, Caller, Request) -> A,
) -> BoxFuture<'static, Response>
where
    A: Future<Output = Response> + Send + 'static,
{
    tracked(
        state,
        memo,
        direct,
        request,
        move |state, caller, request| {
            // Boxed: the handler's future (body read, parse, evaluation) is large, and every
            // future around it would otherwise copy it as it is built and first polled.
            within(
                limits.request_timeout,
                Box::pin(handler(state, caller, request)),
            )
        },
    )
    .boxed()
}

/// The steps around every direct answer: the span, authentication, refusal recording, the
/// panic guard, metrics.
async fn tracked<F, A>(
    state: AppState,
    memo: Arc<CredentialMemo>,
    direct: Direct,
    request: Request,
    answer: F,
) -> Response
where
    F: FnOnce(AppState, Caller, Request) -> A,
    A: Future<Output = Response>,
{
    let start = Instant::now();
    let (route, method) = (direct.route(), direct.method());
    let span = track::request_span(method, route, request.headers());
    let answer = async {
        let caller = match access::caller_of(&state, request.headers(), Some(&memo)) {
            Ok(caller) => caller,
            Err(refused) => return ApiError(refused).into_response(),
        };
        let mut response = answer(state.clone(), caller.clone(), request).await;
        if let Some(refusal) = response.extensions_mut().remove::<Refusal>() {
            access::record_denial(&state, &caller, &format!("{method} {route}"), refusal).await;
        }
        response
    };
    let answer = answer.instrument(span.clone().unwrap_or_else(tracing::Span::none));
    let response = AssertUnwindSafe(answer)
        .catch_unwind()
        .await
        .unwrap_or_else(track::panic_response);
    track::finish(
        route,
        method,
        response.status().as_u16(),
        start.elapsed(),
        span.as_ref(),
    );
    response
}
