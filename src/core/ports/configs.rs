//! Config documents, their versions and their schemas.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Committed;
use crate::core::error::Result;
use crate::core::ids::ConfigId;
use crate::core::model::{
    AuditDraft, ConfigHead, ConfigVersion, Metadata, NewVersion, SchemaVersion,
};

/// Append a version. Fails with `VersionConflict` unless the live version (0 when absent or
/// deleted) is `expected_live`, and with `ConcurrentModification` unless the current schema
/// version (0 when none) is `expected_schema`. The version, its audit record and its change
/// event commit together or not at all.
#[derive(Debug, Clone)]
pub struct VersionWrite {
    pub version: NewVersion,
    pub expected_live: u64,
    pub expected_schema: u64,
    pub audit: AuditDraft,
    /// The approved change request this write applies (see `AppliedRequest`).
    pub applies: Option<AppliedRequest>,
}

/// A write that applies an approved change request: in the same transaction the request must
/// still be `approved` (else `ConcurrentModification`, nothing written); it becomes `applied`
/// with `applied_version`, and a second change event (`change_request.applied`, subject the
/// config id) with its own audit record is recorded and returned as `Committed::follow_up`.
#[derive(Debug, Clone)]
pub struct AppliedRequest {
    pub id: String,
    pub audit: AuditDraft,
}

/// Mark a config deleted (its history stays). Same `expected_live` rule as `VersionWrite`.
#[derive(Debug, Clone)]
pub struct DeleteWrite {
    pub config_id: ConfigId,
    pub expected_live: u64,
    pub audit: AuditDraft,
    pub at: DateTime<Utc>,
    pub applies: Option<AppliedRequest>,
}

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
pub trait ConfigStore: Send + Sync {
    /// The newest version of a config and whether it is deleted; `None` if it never existed.
    async fn head(&self, id: &ConfigId) -> Result<Option<ConfigHead>>;
    /// Heads of every config that ever existed, ordered by id.
    async fn heads(&self) -> Result<Vec<ConfigHead>>;
    async fn version(&self, id: &ConfigId, version: u64) -> Result<Option<ConfigVersion>>;
    /// Newest first, versions below `before` when given.
    async fn versions(
        &self,
        id: &ConfigId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>>;
    async fn append_version(&self, write: VersionWrite) -> Result<Committed>;
    async fn delete_config(&self, write: DeleteWrite) -> Result<Committed>;
    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>>;
    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed>;
}
