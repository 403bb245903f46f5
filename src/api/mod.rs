//! Transports over the core.

pub mod console;
pub mod grpc;
pub mod http;
