//! The service registry: instances register with a URL (and a health-check URL), stay alive by
//! heartbeat, and callers discover the healthy ones or ask for a balanced URL. Registrations,
//! deregistrations, expiries and status changes are recorded changes (revisions, audit, watch
//! events); heartbeats are not: they are batched into one transaction per flush
//! (`heartbeats`). Discovery is answered from the read cache, without I/O.

mod discovery;
mod health;
mod heartbeats;
mod liveness;
pub mod model;
mod service;

pub use health::HealthChecker;
pub use service::{RegistryService, RegistrySettings};
