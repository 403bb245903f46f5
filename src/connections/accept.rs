//! Accepting: a slot per open connection (`Slots`), a connection that finds none refused at
//! once, and accept errors — running out of file descriptors above all — waited out with a
//! growing pause instead of retried in a busy loop.

use std::io;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::slots::{Slot, Slots};

/// The first pause after a failed accept; it doubles up to `MAX_PAUSE` while accepts fail.
const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// A repeated warning is logged at most this often (with how many it stands for).
const WARN_EVERY: Duration = Duration::from_secs(10);

pub struct Acceptor {
    listener: TcpListener,
    slots: Slots,
    /// Which listener, in logs.
    name: &'static str,
    /// Written to a refused connection before it is closed.
    refusal: &'static [u8],
    pause: Duration,
    refused: Warning,
    failed: Warning,
}

/// What a plain HTTP/1.1 client is told when every connection is in use.
pub const HTTP_REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
    retry-after: 1\r\nconnection: close\r\ncontent-length: 42\r\n\r\n\
    too many open connections; retry shortly\r\n";

impl Acceptor {
    pub fn new(
        listener: TcpListener,
        slots: Slots,
        name: &'static str,
        refusal: &'static [u8],
    ) -> Acceptor {
        Acceptor {
            listener,
            slots,
            name,
            refusal,
            pause: Duration::ZERO,
            refused: Warning::default(),
            failed: Warning::default(),
        }
    }

    /// The next connection that found a slot (with Nagle off: small writes such as events go
    /// out at once).
    pub async fn next(&mut self) -> (TcpStream, Slot) {
        loop {
            match self.listener.accept().await {
                Ok((tcp, _)) => {
                    self.pause = Duration::ZERO;
                    match self.slots.claim().await {
                        Some(slot) => {
                            let _ = tcp.set_nodelay(true);
                            return (tcp, slot);
                        }
                        None => self.refuse(tcp),
                    }
                }
                // The client gave up before we accepted: nothing to wait for.
                Err(error) if gone_before_accepted(&error) => {}
                Err(error) => {
                    self.pause = (self.pause * 2).clamp(MIN_PAUSE, MAX_PAUSE);
                    if let Some(also) = self.failed.due() {
                        tracing::warn!(
                            listener = self.name,
                            %error,
                            pause_ms = self.pause.as_millis() as u64,
                            failures_since_last_warning = also,
                            "accepting connections fails; pausing before the next accept"
                        );
                    }
                    tokio::time::sleep(self.pause).await;
                }
            }
        }
    }

    fn refuse(&mut self, tcp: TcpStream) {
        if !self.refusal.is_empty() {
            // A fresh socket's send buffer is empty: this never waits.
            let _ = tcp.try_write(self.refusal);
        }
        drop(tcp);
        if let Some(also) = self.refused.due() {
            tracing::warn!(
                listener = self.name,
                max_connections = self.slots.max(),
                refused_since_last_warning = also,
                "every connection slot is taken by a connection in use; refusing new \
                 connections (SUMMIT_MAX_CONNECTIONS)"
            );
        }
    }
}

fn gone_before_accepted(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// A warning logged at most once per `WARN_EVERY`.
#[derive(Default)]
struct Warning {
    last: Option<Instant>,
    /// Occurrences not logged since the last warning.
    skipped: u64,
}

impl Warning {
    /// Whether to log now, and how many occurrences went unlogged before this one.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < WARN_EVERY) {
            self.skipped += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }
}
