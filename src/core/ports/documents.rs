//! Versioned documents (configs, flags): heads, histories, appends and deletes. One port for
//! every kind; a backend keeps each kind's rows apart (`DocumentKind`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Committed, Record};
use crate::core::error::Result;
use crate::core::model::AuditDraft;
use crate::core::versioned::{Document, Head, NewVersion, Version};

/// Append a version (create, update or rollback). Fails with `VersionConflict` unless the live
/// version (0 when absent or deleted) is `expected_live`, and with `ConcurrentModification`
/// unless the current schema version (0 when none, and always 0 for kinds without schemas) is
/// `expected_schema`, or unless the version gets `expected_number` when one is given. The
/// version, its audit record and its change event (`D::UPDATED`) commit together or not at all.
#[derive(Debug, Clone)]
pub struct VersionWrite<D: Document> {
    pub version: NewVersion<D>,
    pub expected_live: u64,
    pub expected_schema: u64,
    /// The number the version must get (a secret's is sealed with its value): a version
    /// written since, even of a document deleted again, is a `ConcurrentModification`.
    pub expected_number: Option<u64>,
    pub audit: AuditDraft,
    /// The approved change request this write applies (see `AppliedRequest`).
    pub applies: Option<AppliedRequest>,
    /// Changes recorded in the same transaction after this one, each with its own revision,
    /// event and audit record (`Committed::announced`): a secret's `config.secrets_changed` for
    /// every config that references it, so the two are never committed apart.
    pub announce: Vec<Record>,
}

/// Mark a document deleted (its history stays). Same `expected_live` rule as `VersionWrite`.
#[derive(Debug, Clone)]
pub struct DeleteWrite<D: Document> {
    pub id: D::Id,
    pub expected_live: u64,
    pub audit: AuditDraft,
    pub at: DateTime<Utc>,
    pub applies: Option<AppliedRequest>,
    /// As `VersionWrite::announce`.
    pub announce: Vec<Record>,
}

/// A write that applies an approved change request: in the same transaction the request must
/// still be `approved` (else `ConcurrentModification`, nothing written); it becomes `applied`
/// with `applied_version`, and a second change event (`change_request.applied`, subject the
/// document's id) with its own audit record is recorded and returned as `Committed::follow_up`.
#[derive(Debug, Clone)]
pub struct AppliedRequest {
    pub id: String,
    pub audit: AuditDraft,
}

#[async_trait]
pub trait DocumentStore<D: Document>: Send + Sync {
    /// The newest version of a document and whether it is deleted; `None` if it never existed.
    async fn head(&self, id: &D::Id) -> Result<Option<Head<D>>>;
    /// Heads of every document of this kind that ever existed (deleted ones too), by id.
    async fn heads(&self) -> Result<Vec<Head<D>>>;
    async fn version(&self, id: &D::Id, version: u64) -> Result<Option<Version<D>>>;
    /// Newest first, versions below `before` when given.
    async fn versions(
        &self,
        id: &D::Id,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Version<D>>>;
    async fn append(&self, write: VersionWrite<D>) -> Result<Committed>;
    async fn delete(&self, write: DeleteWrite<D>) -> Result<Committed>;
}
