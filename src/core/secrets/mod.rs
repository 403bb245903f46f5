//! Secrets: the built-in encrypted secret store (versioned, audited, sealed at rest) and the
//! resolution of `{"$secret": "provider:reference"}` references in configs.

pub mod crypto;
pub mod model;
mod resolve;
pub mod rotation;
pub mod service;
pub mod stages;
mod store_provider;

pub use resolve::*;
pub use service::SecretService;
pub use store_provider::StoreProvider;
