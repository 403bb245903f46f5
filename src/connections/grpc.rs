//! The gRPC listener's connections, handed to tonic as a stream: each holds a slot, TLS is
//! completed off the accept loop, and the HTTP/2 preface must arrive in time.

use std::io;
use std::sync::Arc;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::Limits;
use super::accept::Acceptor;
use super::guard::{Guarded, Transport};

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`: what every HTTP/2 client sends first.
const HTTP2_PREFACE_BYTES: usize = 24;

/// Connections ready for HTTP/2. Dropping the stream (tonic does when it stops) closes the
/// listener.
pub fn grpc_incoming(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
) -> impl Stream<Item = io::Result<Guarded>> + use<> {
    let settings = limits.settings.clone();
    let mut acceptor = Acceptor::new(listener, limits.slots.clone(), "gRPC", &[]);
    let tls = tls.map(TlsAcceptor::from);
    let (ready, incoming) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, slot) = tokio::select! {
                accepted = acceptor.next() => accepted,
                () = ready.closed() => return,
            };
            // The handshake and the preface share one deadline.
            let deadline = Instant::now() + settings.header_read_timeout;
            let probation = slot.probation();
            let guard = move |transport| {
                Guarded::new(transport, slot, settings.idle_timeout)
                    .with_preface(HTTP2_PREFACE_BYTES, deadline)
            };
            let Some(tls) = &tls else {
                if ready.send(Ok(guard(Transport::Plain(tcp)))).await.is_err() {
                    return;
                }
                continue;
            };
            let (tls, ready) = (tls.clone(), ready.clone());
            // Its own task: one slow handshake does not hold up the others.
            tokio::spawn(async move {
                let evicted = probation.evicted();
                let handshake = tokio::time::timeout_at(deadline, tls.accept(tcp));
                let done = tokio::select! {
                    done = handshake => done,
                    () = evicted => return,
                };
                match done {
                    Ok(Ok(stream)) => {
                        let _ = ready
                            .send(Ok(guard(Transport::Tls(Box::new(stream)))))
                            .await;
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "gRPC TLS handshake failed"),
                    Err(_) => tracing::debug!("gRPC TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(incoming)
}
