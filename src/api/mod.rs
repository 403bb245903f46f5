//! Transports over the core.

pub mod http;
