//! The tower plumbing the gRPC layers share: each says what it does around one call
//! (`AroundCall`), and `CallLayer` wraps every service of the stack in it.

use std::task::{Context, Poll};

use axum::http::{Request, Response};
use futures::future::BoxFuture;
use tonic::body::Body;
use tower::{Layer, Service};

/// The answer to one call, as every layer here gives it.
pub type Answer<E> = BoxFuture<'static, Result<Response<Body>, E>>;

/// The services a layer here wraps: tonic's routes, or the layers inside it.
pub trait InnerService:
    Service<Request<Body>, Response = Response<Body>, Future: Send + 'static> + Clone + Send + 'static
{
}

impl<S> InnerService for S where
    S: Service<Request<Body>, Response = Response<Body>, Future: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// What a layer does around one call of `inner`, which `poll_ready` has readied.
pub trait AroundCall: Clone + Send + 'static {
    fn around<S: InnerService>(&self, inner: &mut S, request: Request<Body>) -> Answer<S::Error>;
}

/// An `AroundCall` as a tower layer.
#[derive(Clone, Copy)]
pub struct CallLayer<A>(pub A);

impl<A: AroundCall, S> Layer<S> for CallLayer<A> {
    type Service = CallService<A, S>;
    fn layer(&self, inner: S) -> CallService<A, S> {
        CallService {
            around: self.0.clone(),
            inner,
        }
    }
}

/// A service with an `AroundCall` around each of its calls.
#[derive(Clone)]
pub struct CallService<A, S> {
    around: A,
    inner: S,
}

impl<A: AroundCall, S: InnerService> Service<Request<Body>> for CallService<A, S> {
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.around.around(&mut self.inner, request)
    }
}
