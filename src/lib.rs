//! summit-config: stores, validates, versions and rolls out runtime configuration, and streams
//! every change to watchers. See README.md and docs/.

pub mod api;
pub mod app;
pub mod cli;
pub mod connections;
pub mod core;
pub mod replication;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod tls;
