//! The transport-free core: model, rules and the services both transports call.

pub mod access;
pub mod approvals;
pub mod checksum;
pub mod configs;
pub mod deployments;
pub mod drift;
pub mod effective;
pub mod error;
pub mod events;
pub mod flags;
pub mod ids;
pub mod merge;
pub mod model;
pub mod notifications;
pub mod ports;
pub mod registry;
pub mod rollout;
#[cfg(test)]
mod rollout_vectors;
pub mod secrets;
pub mod validation;
pub mod versioned;
pub mod watch;

/// The config service's former path (tests and benches name it).
pub use self::configs as service;
