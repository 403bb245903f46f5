//! Approval workflow: change requests for writes (of configs and flags) that touch protected
//! environments.

pub mod apply;
pub mod model;
pub mod service;

pub use apply::apply;
