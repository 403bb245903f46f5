//! Serving REST: the accept loop, TLS, HTTP/1.1 and HTTP/2 (hyper's automatic builder), the
//! first-request deadline, and a graceful stop (in-flight requests finish, watch streams end).

use std::pin::pin;
use std::sync::Arc;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::accept::{Acceptor, HTTP_REFUSAL};
use super::guard::{Guarded, Transport};
use super::idle::{IdleTimer, Tracked};
use super::slots::Slot;
use super::{ConnectionSettings, Limits};
use crate::api::http::access::WithCredentialMemo;

struct Rest {
    app: WithCredentialMemo,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    settings: ConnectionSettings,
}

/// Serves `app` on `listener` until `shutdown`, then waits for open connections to finish.
pub async fn serve_rest(
    listener: TcpListener,
    app: WithCredentialMemo,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
    shutdown: CancellationToken,
) {
    let rest = Arc::new(Rest {
        app,
        tls: tls.map(TlsAcceptor::from),
        builder: builder(&limits.settings),
        settings: limits.settings.clone(),
    });
    // A refused TLS client could not read a plain answer: it is only closed.
    let refusal: &'static [u8] = if rest.tls.is_some() {
        &[]
    } else {
        HTTP_REFUSAL
    };
    let mut acceptor = Acceptor::new(listener, limits.slots.clone(), "REST", refusal);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, slot) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = acceptor.next() => accepted,
        };
        tokio::spawn(rest.clone().connection(tcp, slot, graceful.watcher()));
    }
    // No new connections: the port is released now, not once the last one closes.
    drop(acceptor);
    graceful.shutdown().await;
}

fn builder(settings: &ConnectionSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The first request's deadline is the connection's own (`connection`), and so is the
    // wait for each later request on a kept-alive connection (`idle`): hyper's header-read
    // timer would register and drop a timer for every request.
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.http2_keepalive_interval)
        .keep_alive_timeout(settings.http2_keepalive_timeout)
        .max_concurrent_streams(settings.http2_max_concurrent_streams)
        // WebSocket watches over HTTP/2.
        .enable_connect_protocol();
    builder
}

impl Rest {
    /// Serves one connection. Until its first request arrives it is on probation: it must
    /// arrive (TLS handshake included) within the header read timeout, and the connection
    /// gives up its slot if a newer one needs it.
    async fn connection(self: Arc<Self>, tcp: TcpStream, slot: Slot, graceful: Watcher) {
        let deadline = Instant::now() + self.settings.header_read_timeout;
        let probation = slot.probation();
        let mut evicted = pin!(probation.evicted());
        let transport = match &self.tls {
            None => Transport::Plain(tcp),
            Some(tls) => {
                let handshake = tokio::time::timeout_at(deadline, tls.accept(tcp));
                match tokio::select! {
                    done = handshake => done,
                    () = &mut evicted => return,
                } {
                    Ok(Ok(stream)) => Transport::Tls(Box::new(stream)),
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        let activity = slot.activity();
        let io = Guarded::new(transport, slot, self.settings.idle_timeout)
            .with_idle_timer(IdleTimer::new(activity.clone(), self.settings.idle_timeout));
        let service = {
            let probation = probation.clone();
            let connection = self.app.connection();
            Tracked::new(connection, activity).map_request(
                move |request: hyper::Request<Incoming>| {
                    probation.prove();
                    request.map(Body::new)
                },
            )
        };
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        let mut connection = pin!(graceful.watch(connection));
        // Probation ends with the first request, the deadline or an eviction; after it only
        // the connection is polled (not a timer and a cancellation check at every wake-up).
        tokio::select! {
            served = &mut connection => return log_end(served),
            () = probation.proven() => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = &mut evicted => {}
        }
        if !probation.is_proven() {
            tracing::debug!("closing a connection that sent no request in time, or gave way");
            return;
        }
        log_end(connection.await);
    }
}

fn log_end(served: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(error) = served {
        tracing::debug!(%error, "REST connection ended with an error");
    }
}
