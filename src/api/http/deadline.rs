//! The request deadline (`SUMMIT_REQUEST_TIMEOUT_SECS`) of every route that reads a body or
//! waits on the store, routed or answered ahead of the router: past it, a 503 problem saying
//! so. A watch stream is not cut (its response is returned at once), and a write whose commit
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

/// The answer, or the 503 once `deadline` has passed. Most answers are ready at their first
/// poll (the body came with the headers and the answer comes from memory), and those need no
/// timer.
pub(crate) async fn within(deadline: Duration, answer: impl Future<Output = Response>) -> Response {
    let mut answer = std::pin::pin!(answer);
    if let Poll::Ready(response) = futures::poll!(answer.as_mut()) {
        return response;
    }
    tokio::time::timeout(deadline, answer)
        .await
        .unwrap_or_else(|_| timed_out(deadline))
}

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

/// `within` around every request of the routes it wraps.
#[derive(Clone, Copy)]
pub(crate) struct DeadlineLayer(pub Duration);

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            deadline: self.0,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Deadline<S> {
    inner: S,
    deadline: Duration,
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
        let deadline = self.deadline;
        Box::pin(async move {
            let answer = async { answer.await.unwrap_or_else(|never| match never {}) };
            Ok(within(deadline, answer).await)
        })
    }
}
