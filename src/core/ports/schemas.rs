//! The JSON Schemas configs are validated against.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Committed;
use crate::core::error::Result;
use crate::core::ids::ConfigId;
use crate::core::model::{AuditDraft, Metadata, SchemaVersion};

/// Register a schema version. Fails with `ConcurrentModification` unless the schema version is
/// `expected_schema` and the config's live version is `expected_live` (the one validated).
#[derive(Debug, Clone)]
pub struct SchemaWrite {
    pub config_id: ConfigId,
    pub schema: Value,
    pub checksum: String,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub expected_schema: u64,
    pub expected_live: u64,
    pub audit: AuditDraft,
}

#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// The config's newest schema version.
    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>>;
    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed>;
}
