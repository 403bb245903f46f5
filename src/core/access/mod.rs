//! Access control: identities (API tokens, JWTs), roles and scopes, and denied attempts.

pub mod identity;
mod jwt;
pub mod model;
pub mod service;
mod streams;

pub use identity::{Caller, Identity, Permission};
pub use service::{AccessService, CredentialMemo};
pub use streams::RECHECK;
