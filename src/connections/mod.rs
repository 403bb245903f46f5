//! Connection hygiene for both listeners: a bound on open connections (connections that have
//! not sent a request give way to newer ones, then connections quiet for a while; when none
//! is, a new one is refused at once);
//! accept errors (running out of file descriptors) waited out instead of spun on;
//! deadlines for clients that send nothing, or send it a byte at a time; HTTP/2 keepalive
//! pings and stream limits; and connections whose client stopped reading closed. See
//! docs/observability.md, "Connections".

mod accept;
pub mod file_limit;
mod grpc;
mod guard;
mod idle;
mod rest;
mod slots;

use std::time::Duration;

pub use grpc::grpc_incoming;
pub use guard::{ConnectionInfo, Guarded};
pub use idle::InFlight;
pub use rest::serve_rest;
pub use slots::Slots;

use crate::settings::Settings;

/// How both listeners treat their connections.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Open connections of both listeners together; a new one beyond them takes the slot of the
    /// oldest that has not sent a request yet, or of the one quiet the longest, or is refused.
    pub max_connections: usize,
    /// A new connection's TLS handshake and first request headers (gRPC: its HTTP/2 preface)
    /// must arrive within this.
    pub header_read_timeout: Duration,
    /// An HTTP/1.1 connection waiting this long for its next request is closed, and so is any
    /// connection whose client has taken nothing of what it was sent for this long.
    pub idle_timeout: Duration,
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
}

/// The settings and the connection slots both listeners share.
#[derive(Debug, Clone)]
pub struct Limits {
    pub settings: ConnectionSettings,
    slots: Slots,
}

impl Limits {
    pub fn new(settings: ConnectionSettings) -> Limits {
        Limits {
            slots: Slots::new(settings.max_connections),
            settings,
        }
    }

    /// From the settings; an unset connection bound follows the open-file limit.
    pub fn from_settings(settings: &Settings) -> Limits {
        let max_connections = match settings.max_connections {
            0 => default_max_connections(file_limit::file_limit()),
            max => max,
        };
        Limits::new(ConnectionSettings {
            max_connections,
            header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(settings.idle_timeout_secs),
            http2_keepalive_interval: Duration::from_secs(settings.http2_keepalive_interval_secs),
            http2_keepalive_timeout: Duration::from_secs(settings.http2_keepalive_timeout_secs),
            http2_max_concurrent_streams: settings.http2_max_concurrent_streams,
        })
    }
}

/// The open-file limit less a reserve (an eighth of it, plus 64) for the database, data
/// files, and outgoing webhook and secret-provider connections.
fn default_max_connections(file_limit: Option<u64>) -> usize {
    let limit = file_limit.unwrap_or(1024).min(1 << 20);
    let reserve = 64 + limit / 8;
    limit.saturating_sub(reserve).max(16) as usize
}

#[cfg(test)]
mod tests {
    use super::default_max_connections;

    #[test]
    fn default_bound_leaves_a_reserve_of_the_file_limit() {
        assert_eq!(default_max_connections(Some(1024)), 832);
        assert_eq!(default_max_connections(Some(65_536)), 57_280);
        assert_eq!(default_max_connections(Some(50)), 16);
        assert_eq!(default_max_connections(Some(u64::MAX)), 917_440);
    }
}
