//! One accepted connection as both listeners serve it: plain or TLS, holding its slot, closed
//! when its client sends too little too slowly at the start, or stops taking what it is sent.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::idle::{Activity, IdleTimer, InFlight};
use super::slots::Slot;

/// The byte stream under HTTP.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(tls) => tls.get_ref().0,
        }
    }
}

/// A connection with its slot (released when it closes), and:
/// - a read that waits fails once the slots ask the connection to give way (on probation, or
///   idle while every slot is taken);
/// - with a preface (gRPC: the HTTP/2 connection preface), its first bytes must arrive by a
///   deadline, and until they have the connection is on probation; once they have, it has
///   proved itself;
/// - a write that cannot proceed for `stall_limit` fails the connection: its client has
///   stopped reading (a watcher that never reads), and what is queued for it would only grow;
/// - with an idle timer (REST), a read fails once the connection has waited too long for its
///   next request.
pub struct Guarded {
    io: Transport,
    slot: Slot,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
    preface: Option<Preface>,
    idle: Option<IdleTimer>,
    stall_limit: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
}

struct Preface {
    /// Bytes still expected.
    remaining: usize,
    deadline: Pin<Box<Sleep>>,
}

impl Guarded {
    pub fn new(io: Transport, slot: Slot, stall_limit: Duration) -> Guarded {
        Guarded {
            io,
            evicted: Box::pin(slot.probation().evicted()),
            slot,
            preface: None,
            idle: None,
            stall_limit,
            stall: None,
            stalled: false,
        }
    }

    /// The first `bytes` must have been read by `deadline`; they prove the connection.
    pub fn with_preface(mut self, bytes: usize, deadline: Instant) -> Guarded {
        self.preface = Some(Preface {
            remaining: bytes,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        });
        self
    }

    /// Reads fail once `idle` says the connection has waited too long for a request.
    pub fn with_idle_timer(mut self, idle: IdleTimer) -> Guarded {
        self.idle = Some(idle);
        self
    }

    pub fn transport(&self) -> &Transport {
        &self.io
    }

    /// After a write returned `Pending`: fails once writes have made no progress for
    /// `stall_limit`.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let deadline = Instant::now() + self.stall_limit;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled {
            self.stalled = true;
            stall.as_mut().reset(deadline);
        }
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client has taken nothing of what it was sent for too long",
            )),
            Poll::Pending => Ok(()),
        }
    }

    fn progressed<T>(&mut self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = false;
        }
        result
    }

    fn poll_io_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut Transport>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let result = write(Pin::new(&mut self.io), cx);
        if result.is_pending() {
            self.check_stall(cx)?;
        }
        self.progressed(result)
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if result.is_pending() {
            if let Some(idle) = &mut this.idle
                && idle.poll_expired(cx).is_ready()
            {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no complete request for too long",
                )));
            }
            if this.evicted.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed to make room for a newer connection",
                )));
            }
        }
        let Some(preface) = &mut this.preface else {
            return result;
        };
        if result.is_ready() {
            preface.remaining = preface
                .remaining
                .saturating_sub(buf.filled().len() - before);
            if preface.remaining == 0 {
                this.slot.probation().prove();
                this.preface = None;
            }
            return result;
        }
        ready!(preface.deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not open the connection in time",
        )))
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_io_write(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_io_write(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_io_write(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_io_write(cx, |io, cx| io.poll_shutdown(cx))
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(tcp) => tcp.is_write_vectored(),
            Transport::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What tonic keeps of a gRPC connection in each request's extensions: the peer, and what
/// the connection has in flight (the `observe` layer of `api/grpc` counts each call there).
#[derive(Clone)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    activity: Arc<Activity>,
}

impl ConnectionInfo {
    /// A call begins on this connection; it ends when the guard is dropped (with the answer's
    /// body, or the call's future if no answer came).
    pub fn call(&self) -> InFlight {
        self.activity.start(http::Version::HTTP_2)
    }
}

impl Connected for Guarded {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            tcp: self.io.tcp().connect_info(),
            activity: self.slot.activity(),
        }
    }
}
