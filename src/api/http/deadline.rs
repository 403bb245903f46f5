//! The request deadline (`SUMMIT_REQUEST_TIMEOUT_SECS`) of every route that reads a body or
//! waits on the store, routed or answered ahead of the router: past it, a 503 problem saying
//! so (the console's pages: a 503 page). A watch stream is not cut (its response is returned at once), and a write whose commit
//! had started is still committed (commits are spawned), which the problem says too.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::{Layer, Service};

use super::error::ApiError;
use crate::core::error::Error;

/// The answer, or the 503 problem once `deadline` has passed.
pub(crate) async fn within(deadline: Duration, answer: impl Future<Output = Response>) -> Response {
    within_or(deadline, timed_out, answer).await
}

/// The answer, or `late(deadline)` once `deadline` has passed. Most answers are ready at their
/// first poll (the body came with the headers and the answer comes from memory), and those need
/// no timer.
async fn within_or(
    deadline: Duration,
    late: fn(Duration) -> Response,
    answer: impl Future<Output = Response>,
) -> Response {
    let mut answer = std::pin::pin!(answer);
    if let Poll::Ready(response) = futures::poll!(answer.as_mut()) {
        return response;
    }
    tokio::time::timeout(deadline, answer)
        .await
        .unwrap_or_else(|_| late(deadline))
}

/// The REST answer past the deadline: a 503 problem.
fn timed_out(deadline: Duration) -> Response {
    ApiError(Error::Unavailable {
        reason: format!(
            "the request did not complete within {} s; a write may still have been \
             committed: read before retrying it",
            deadline.as_secs_f64()
        ),
    })
    .into_response()
}

/// The deadline around every request of the routes it wraps.
#[derive(Clone, Copy)]
pub(crate) struct DeadlineLayer {
    deadline: Duration,
    late: fn(Duration) -> Response,
}

impl DeadlineLayer {
    /// Past the deadline, the 503 problem (REST).
    pub(crate) fn new(deadline: Duration) -> Self {
        Self::answering(deadline, timed_out)
    }

    /// Past the deadline, `late(deadline)` (the console's page).
    pub(crate) fn answering(deadline: Duration, late: fn(Duration) -> Response) -> Self {
        DeadlineLayer { deadline, late }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            deadline: self.deadline,
            late: self.late,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Deadline<S> {
    inner: S,
    deadline: Duration,
    late: fn(Duration) -> Response,
}

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let answer = self.inner.call(request);
        let (deadline, late) = (self.deadline, self.late);
        Box::pin(async move {
            let answer = async { answer.await.unwrap_or_else(|never| match never {}) };
            Ok(within_or(deadline, late, answer).await)
        })
    }
}
