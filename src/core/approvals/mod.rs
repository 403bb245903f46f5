//! Approval workflow: change requests for writes that touch protected environments.

pub mod model;
pub mod service;
