//! Secrets: the built-in encrypted secret store (versioned, audited, sealed at rest) and the
//! resolution of `{"$secret": "provider:reference"}` references in configs, by the built-in
//! providers (`env`, `file`, `store`) and the remote ones (`vault`, `awssm`).

mod awssm;
pub mod crypto;
mod local;
mod locator;
pub mod model;
mod remote_cache;
mod resolve;
pub mod rotation;
pub mod service;
pub mod stages;
mod store_provider;
mod vault;

pub use awssm::{AwsSecretsManagerProvider, AwsSettings};
pub use local::SecretPolicy;
pub use remote_cache::RemoteSettings;
pub use resolve::*;
pub use service::SecretService;
pub use store_provider::{StoreProvider, referenced_name};
pub use vault::{VaultProvider, VaultSettings, VaultToken};
