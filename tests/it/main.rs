//! The integration tests: one binary (each test binary links the whole crate), one module per
//! suite. `common` is the harness: the real server on port 0 with its own database, the real
//! binary as a child process, and PostgreSQL.

mod common;

mod access;
mod api_bad_input;
mod api_concurrency;
mod api_configs;
mod approvals;
mod authorization;
mod cli;
mod conformance;
mod connections;
mod console;
mod deploy;
mod deployments;
mod durability;
mod effective_direct;
mod evaluate_direct;
mod flag_approvals;
mod flags_api;
mod grpc;
mod grpc_access;
mod grpc_change_requests;
mod grpc_flags;
mod grpc_health;
mod grpc_registry;
mod grpc_secrets;
mod log_leaks;
mod metrics;
mod notifications;
mod ofrep;
mod openapi;
mod postgres_duties;
mod postgres_group_commit;
mod postgres_harness;
mod python_client;
mod read_cache;
mod registry;
mod replicas;
mod secret_providers;
mod secret_rotation;
mod secrets;
mod strategies;
mod tls;
mod traces;
mod watch_sse;
mod watch_ws;
mod webhooks;
