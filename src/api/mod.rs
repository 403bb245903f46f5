//! Transports over the core.

pub mod grpc;
pub mod http;
