//! Flag definitions and their versions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Committed;
use crate::core::error::Result;
use crate::core::flags::{FlagHead, FlagVersion, NewFlagVersion};
use crate::core::ids::FlagKey;
use crate::core::model::AuditDraft;

/// Append a flag version (create, update or rollback). Fails with `VersionConflict` unless the
/// live version (0 when absent or deleted) is `expected_live`. The version, its audit record
/// and its change event (`flag.updated`) commit together or not at all.
#[derive(Debug, Clone)]
pub struct FlagWrite {
    pub version: NewFlagVersion,
    pub expected_live: u64,
    pub audit: AuditDraft,
}

/// Mark a flag deleted (its history stays). Same `expected_live` rule as `FlagWrite`.
#[derive(Debug, Clone)]
pub struct FlagDeleteWrite {
    pub key: FlagKey,
    pub expected_live: u64,
    pub audit: AuditDraft,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait FlagStore: Send + Sync {
    /// Heads of every flag that ever existed (deleted ones too), ordered by key.
    async fn flag_heads(&self) -> Result<Vec<FlagHead>>;
    async fn flag_head(&self, key: &FlagKey) -> Result<Option<FlagHead>>;
    async fn flag_version(&self, key: &FlagKey, version: u64) -> Result<Option<FlagVersion>>;
    /// Newest first, versions below `before` when given.
    async fn flag_versions(
        &self,
        key: &FlagKey,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<FlagVersion>>;
    async fn append_flag_version(&self, write: FlagWrite) -> Result<Committed>;
    async fn delete_flag(&self, write: FlagDeleteWrite) -> Result<Committed>;
}
