//! How long an HTTP/1.1 connection may wait for its next request: one timer per connection,
//! moved only when it fires, instead of one registered and dropped for every request.
//!
//! The connection's service counts the requests in flight and notes when the last one's answer
//! was finished ([`Tracked`]); the connection's reads ([`super::guard::Guarded`]) poll the timer
//! whenever they wait for bytes. When it fires with no request in flight and nothing finished
//! for `idle_timeout`, the read fails and the connection closes: a client that sends its next
//! request's headers too slowly (slowloris) is closed as one that sends nothing. HTTP/2 and
//! upgraded (WebSocket) connections are exempt, as they were from hyper's own header-read timer,
//! which this replaces: HTTP/2 has its keep-alive pings, a WebSocket its own traffic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::{self, StatusCode, Version};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tower::Service;

/// What a connection's requests tell its reads (the idle timer) and the slots (which idle
/// connection gives way when every slot is taken).
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicU32,
    /// When the last answer was finished, in nanoseconds after `opened`.
    last_finished: AtomicU64,
    /// HTTP/2 or upgraded: never closed for idling here.
    exempt: AtomicBool,
    /// Upgraded (a WebSocket): in use though no request is in flight.
    upgraded: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            last_finished: AtomicU64::new(0),
            exempt: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
        })
    }

    /// A request (or an HTTP/2 stream) begins; it ends when the returned guard is dropped.
    pub fn start(self: &Arc<Self>, version: Version) -> InFlight {
        self.started(version);
        InFlight(self.clone())
    }

    /// How long the connection has had nothing in flight; `None` while it has, or when it was
    /// upgraded.
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 || self.upgraded.load(Ordering::Relaxed) {
            return None;
        }
        let since = self.opened + Duration::from_nanos(self.last_finished.load(Ordering::Relaxed));
        Some(now.saturating_duration_since(since))
    }

    fn started(&self, version: Version) {
        if version == Version::HTTP_2 {
            self.exempt.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn finished(&self) {
        let since = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_finished.store(since, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the connection is due to close if nothing happens before; `None` when it is not
    /// (exempt), `now` or earlier when it is due.
    fn due(&self, now: Instant, idle_timeout: Duration) -> Option<Instant> {
        if self.exempt.load(Ordering::Relaxed) {
            return None;
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(now + idle_timeout);
        }
        let finished = self.opened
            + Duration::from_nanos(self.last_finished.load(Ordering::Relaxed))
            + idle_timeout;
        Some(finished)
    }
}

/// The connection's idle timer, polled by its reads.
pub struct IdleTimer {
    activity: Arc<Activity>,
    idle_timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    pub fn new(activity: Arc<Activity>, idle_timeout: Duration) -> IdleTimer {
        IdleTimer {
            activity,
            idle_timeout,
            timer: None,
        }
    }

    /// Called while a read waits: ready when the connection has idled too long.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.activity.exempt.load(Ordering::Relaxed) {
            // Exempt for good: no timer.
            self.timer = None;
            return Poll::Pending;
        }
        let timer = self.timer.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(
                self.activity.opened + self.idle_timeout,
            ))
        });
        loop {
            ready!(timer.as_mut().poll(cx));
            let now = Instant::now();
            match self.activity.due(now, self.idle_timeout) {
                None => {
                    self.timer = None;
                    return Poll::Pending;
                }
                Some(due) if due <= now => return Poll::Ready(()),
                Some(due) => timer.as_mut().reset(due),
            }
        }
    }
}

/// The connection's service, counting its requests in flight for [`Activity`].
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

impl<S, B> Service<http::Request<B>> for Tracked<S>
where
    S: Service<http::Request<B>, Response = Response>,
{
    type Response = http::Response<TrackedBody>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let in_flight = self.activity.start(request.version());
        TrackedFuture {
            inner: self.inner.call(request),
            in_flight: Some(in_flight),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`Tracked`] service.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

/// A request in flight: done when dropped, with its answer's body or, if the answer never
/// came, with the future that was to produce it.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished();
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<http::Response<TrackedBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        let in_flight = this
            .in_flight
            .take()
            .expect("a tracked answer is polled after it was ready");
        Poll::Ready(answer.map(|response| {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                in_flight.0.exempt.store(true, Ordering::Relaxed);
                in_flight.0.upgraded.store(true, Ordering::Relaxed);
            }
            response.map(|body| TrackedBody {
                inner: body,
                _in_flight: in_flight,
            })
        }))
    }
}

/// An answer's body; when it is dropped (written, or the connection gone) the request is done.
pub struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[test]
    fn a_connection_is_due_a_timeout_after_its_last_answer_and_never_while_answering() {
        let activity = Activity::new();
        let now = Instant::now();
        // Nothing asked yet: due a timeout after it opened.
        assert_eq!(activity.due(now, TIMEOUT), Some(activity.opened + TIMEOUT));
        activity.started(Version::HTTP_11);
        assert_eq!(activity.due(now, TIMEOUT), Some(now + TIMEOUT));
        activity.started(Version::HTTP_11);
        drop(InFlight(activity.clone()));
        // One of the two requests answered: still answering.
        assert_eq!(activity.due(now, TIMEOUT), Some(now + TIMEOUT));
        drop(InFlight(activity.clone()));
        let due = activity.due(now, TIMEOUT).unwrap();
        assert!(due >= activity.opened + TIMEOUT && due <= Instant::now() + TIMEOUT);
    }

    #[test]
    fn http2_and_upgraded_connections_are_never_due() {
        let activity = Activity::new();
        activity.started(Version::HTTP_2);
        drop(InFlight(activity.clone()));
        assert_eq!(activity.due(Instant::now(), TIMEOUT), None);
    }
}
