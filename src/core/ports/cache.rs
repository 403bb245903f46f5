//! What the services ask of the read cache: answers from memory without I/O, the database's
//! own answer when a replica's memory may lag, and whether the database answered lately. The
//! cache (`store::cache`) is a component the services hold, in front of any backend; backends
//! know nothing of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

use crate::core::access::model::ApiToken;
use crate::core::error::Result;
use crate::core::flags::FlagSet;
use crate::core::ids::{ConfigId, InstanceId, SecretName, ServiceName};
use crate::core::model::ConfigHead;
use crate::core::registry::model::Instance;
use crate::core::secrets::stages::SecretStages;
use crate::core::validation::KnownSchema;

/// Tokens by the SHA-256 hash of their secret.
pub type TokenMap = HashMap<String, Arc<ApiToken>>;

/// A service's registered instances by id.
pub type ServiceInstances = BTreeMap<InstanceId, Instance>;

#[async_trait]
pub trait ReadCache: Send + Sync {
    /// The head if it is in memory, without I/O.
    fn cached_head(&self, id: &ConfigId) -> Option<ConfigHead>;
    /// The head as the database has it now, past the cache (a replica's cache may lag others).
    async fn fresh_head(&self, id: &ConfigId) -> Result<Option<ConfigHead>>;
    /// The config's schema for validating a write: as this process last read it (from the
    /// database on a miss; forgotten on every schema change, here or through another replica),
    /// compiled at most once. The write commits only if this schema version is still the
    /// config's when it does, so a schema changed meanwhile makes it fail, never pass unchecked.
    async fn schema_for_write(&self, id: &ConfigId) -> Result<Option<Arc<KnownSchema>>>;
    /// Every head as the database has it now, past the cache.
    async fn fresh_heads(&self) -> Result<Vec<ConfigHead>>;
    /// Every flag, without I/O.
    fn cached_flags(&self) -> Arc<FlagSet>;
    /// The staged versions (sealed) of a live secret of the built-in store, without I/O.
    fn cached_secret(&self, name: &SecretName) -> Option<Arc<SecretStages>>;
    /// A service's registered instances, without I/O (`None`: none is registered).
    fn cached_instances(&self, service: &ServiceName) -> Option<Arc<ServiceInstances>>;
    /// Every service with registered instances, by name, without I/O.
    fn cached_services(&self) -> Vec<(ServiceName, Arc<ServiceInstances>)>;
    /// Every token by hash, without I/O.
    fn cached_tokens(&self) -> Arc<TokenMap>;
    /// The database failed to answer last time it was asked (reads may be stale); changed
    /// only by evidence about the database itself.
    fn degraded(&self) -> bool;
    /// The highest revision such that every change up to it is reflected in this process's
    /// reads; `None` when reads are never behind the change log (a single process).
    fn readable_revision(&self) -> Option<u64>;
}
