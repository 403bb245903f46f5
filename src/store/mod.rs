//! The storage contract. Backends (memory, SQLite, PostgreSQL) and wrappers (the read cache) implement
//! the same object-safe trait, and one conformance suite (`tests/store_conformance.rs`) runs
//! against each.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::core::access::model::{ApiToken, Denial};
use crate::core::approvals::model::{ChangeRequest, ChangeRequestStatus};
use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;
use crate::core::flags::{FlagHead, FlagSet, FlagVersion, NewFlagVersion};
use crate::core::ids::{ConfigId, FlagKey};
use crate::core::model::{
    AppliedState, AuditDraft, AuditRecord, ConfigHead, ConfigVersion, Metadata, NewVersion,
    SchemaVersion,
};

pub mod cached;
pub mod memory;
pub mod postgres;
pub mod sqlite;

pub use cached::CachedStore;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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

/// Create an API token: a `token.created` change (subject: the token id) and its audit record.
#[derive(Debug, Clone)]
pub struct TokenWrite {
    pub token: ApiToken,
    pub audit: AuditDraft,
}

/// Revoke a token: `NotFound` if there is none with `id`, `Conflict` if already revoked;
/// records `token.revoked`.
#[derive(Debug, Clone)]
pub struct TokenRevoke {
    pub id: String,
    pub at: DateTime<Utc>,
    pub audit: AuditDraft,
}

/// Insert (`expected: None`; the id must be new) or update a change request with
/// compare-and-set on (status, number of approvals) — else `ConcurrentModification`, nothing
/// written. Records `kind` (`change_request.created|approved|rejected|cancelled`) with the
/// config id as subject, and the audit record.
#[derive(Debug, Clone)]
pub struct ChangeRequestWrite {
    pub request: ChangeRequest,
    pub expected: Option<(ChangeRequestStatus, usize)>,
    pub kind: &'static str,
    pub audit: AuditDraft,
}

/// Newest first (by `created_at`, then id).
#[derive(Debug, Clone, Default)]
pub struct ChangeRequestQuery {
    pub status: Option<ChangeRequestStatus>,
    /// Requests whose `environments` include this one.
    pub environment: Option<String>,
    pub config_id: Option<ConfigId>,
    pub limit: u32,
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

/// What a committed write produced.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The new config or schema version (for deletes, the last version).
    pub version: u64,
    pub event: ChangeEvent,
    /// A second change committed in the same transaction (`change_request.applied`).
    pub follow_up: Option<ChangeEvent>,
}

/// Audit records of one config, or one flag (their ids may coincide: `action` tells them apart,
/// flag actions start with `flag.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSubject {
    Config(ConfigId),
    Flag(FlagKey),
}

impl AuditSubject {
    pub fn id(&self) -> &str {
        match self {
            AuditSubject::Config(id) => id.as_str(),
            AuditSubject::Flag(key) => key.as_str(),
        }
    }

    pub fn is_flag(&self) -> bool {
        matches!(self, AuditSubject::Flag(_))
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Every record when `None`.
    pub subject: Option<AuditSubject>,
    /// Only records with a smaller id (newest first paging).
    pub before: Option<u64>,
    pub limit: u32,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// The newest version of a config and whether it is deleted; `None` if it never existed.
    async fn head(&self, id: &ConfigId) -> Result<Option<ConfigHead>>;
    /// The head as the database has it now, past any cache (a replica's cache may lag others).
    async fn fresh_head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        self.head(id).await
    }
    /// Every head as the database has it now, past any cache.
    async fn fresh_heads(&self) -> Result<Vec<ConfigHead>> {
        self.heads().await
    }
    /// The head if it is in memory, without I/O: the read cache answers, backends say `None`.
    fn cached_head(&self, id: &ConfigId) -> Option<ConfigHead> {
        let _ = id;
        None
    }
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
    /// Every flag, in memory, without I/O: the read cache answers, backends say `None`.
    fn cached_flags(&self) -> Option<std::sync::Arc<FlagSet>> {
        None
    }
    async fn create_token(&self, write: TokenWrite) -> Result<Committed>;
    async fn revoke_token(&self, write: TokenRevoke) -> Result<Committed>;
    /// Every token, revoked ones too, oldest first.
    async fn tokens(&self) -> Result<Vec<ApiToken>>;
    /// Tokens by hash, in memory, without I/O: the read cache answers, backends say `None`.
    fn cached_tokens(
        &self,
    ) -> Option<std::sync::Arc<std::collections::HashMap<String, std::sync::Arc<ApiToken>>>> {
        None
    }
    /// Appends a denied attempt (not a change: no revision); the store gives it an id.
    async fn record_denial(&self, denial: Denial) -> Result<()>;
    /// Newest first, ids below `before` when given.
    async fn denials(&self, before: Option<u64>, limit: u32) -> Result<Vec<Denial>>;
    async fn put_change_request(&self, write: ChangeRequestWrite) -> Result<Committed>;
    async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>>;
    async fn change_requests(&self, query: ChangeRequestQuery) -> Result<Vec<ChangeRequest>>;
    /// Newest first.
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Change events with a revision above `revision`, oldest first.
    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>>;
    async fn latest_revision(&self) -> Result<u64>;
    /// Insert or replace the report of one (config, environment, instance).
    async fn record_applied(&self, state: AppliedState) -> Result<()>;
    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>>;
    /// Deletes applied-state reports made before `before`; returns how many went.
    async fn sweep_applied(&self, before: DateTime<Utc>) -> Result<u64>;
    /// Whether this process holds (keeping or taking it now) the lease on duties that must run
    /// once across replicas. A lease dies with its holder, so another replica takes over.
    async fn lead_duties(&self) -> Result<bool> {
        Ok(true)
    }
    /// Cheap liveness check of the backing database.
    async fn ping(&self) -> Result<()>;
    /// Whether other processes may write to the same data (then replicas follow the change log).
    fn shared_by_replicas(&self) -> bool {
        false
    }
    /// The highest revision such that every change up to it is reflected in this process's
    /// reads; `None` when reads are never behind the change log (a single process).
    fn readable_revision(&self) -> Option<u64> {
        None
    }
    /// Whether the backing database failed to answer last time (reads may be stale).
    fn degraded(&self) -> bool {
        false
    }
    /// Returns when a change may have been committed elsewhere, or after `timeout`.
    async fn wait_for_change(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }
}

/// A config's row as a write sees it inside its transaction; the write rules of every backend.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HeadRow {
    pub latest: u64,
    pub deleted: bool,
    pub schema: u64,
}

impl HeadRow {
    /// The version writes are compared with: 0 when absent or deleted.
    pub fn live(self) -> u64 {
        if self.deleted { 0 } else { self.latest }
    }

    /// The number the new version gets, if `write`'s expectations hold.
    pub fn check_version_write(self, write: &VersionWrite) -> Result<u64> {
        if self.live() != write.expected_live {
            return Err(Error::VersionConflict {
                expected: write.expected_live,
                actual: self.live(),
            });
        }
        if self.schema != write.expected_schema {
            return Err(Error::ConcurrentModification {
                message: "the schema changed while the config was being validated; retry".into(),
            });
        }
        Ok(self.latest + 1)
    }

    /// The number the new flag version gets, if `write`'s expectation holds.
    pub fn check_flag_write(self, write: &FlagWrite) -> Result<u64> {
        if self.live() != write.expected_live {
            return Err(Error::VersionConflict {
                expected: write.expected_live,
                actual: self.live(),
            });
        }
        Ok(self.latest + 1)
    }

    /// The version a flag delete removes, if there is one and `write`'s expectation holds.
    pub fn check_flag_delete(self, write: &FlagDeleteWrite) -> Result<u64> {
        if self.live() == 0 {
            return Err(Error::not_found("flag", write.key.as_str()));
        }
        if self.live() != write.expected_live {
            return Err(Error::VersionConflict {
                expected: write.expected_live,
                actual: self.live(),
            });
        }
        Ok(self.latest)
    }

    /// The version a delete removes, if there is one and `write`'s expectation holds.
    pub fn check_delete(self, write: &DeleteWrite) -> Result<u64> {
        if self.live() == 0 {
            return Err(Error::not_found("config", write.config_id.as_str()));
        }
        if self.live() != write.expected_live {
            return Err(Error::VersionConflict {
                expected: write.expected_live,
                actual: self.live(),
            });
        }
        Ok(self.latest)
    }

    /// The number the new schema version gets, if `write`'s expectations hold.
    pub fn check_schema_write(self, write: &SchemaWrite) -> Result<u64> {
        if self.schema != write.expected_schema || self.live() != write.expected_live {
            return Err(Error::ConcurrentModification {
                message:
                    "the config or its schema changed while the schema was being checked; retry"
                        .into(),
            });
        }
        Ok(self.schema + 1)
    }
}

/// Database integers are signed; versions and revisions never come near the limit.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The change event a committed write produces.
pub(crate) fn change_event(
    revision: u64,
    kind: &str,
    subject: &str,
    version: u64,
    checksum: &str,
    audit: &AuditDraft,
    at: DateTime<Utc>,
) -> ChangeEvent {
    ChangeEvent {
        revision,
        kind: kind.to_owned(),
        config_id: subject.to_owned(),
        version,
        checksum: checksum.to_owned(),
        actor: audit.actor.clone(),
        message: audit.message.clone(),
        at,
    }
}

/// The version a token change records: tokens have no versions.
pub(crate) const TOKEN_CHANGE_VERSION: u64 = 1;

/// A write applying change request `id` found it not (or no longer) `approved`.
pub(crate) fn request_not_approved(id: &str) -> Error {
    Error::ConcurrentModification {
        message: format!("change request {id} is not approved (any more); nothing was written"),
    }
}

/// A change request update whose expected (status, approvals) no longer hold.
pub(crate) fn request_changed(id: &str) -> Error {
    Error::ConcurrentModification {
        message: format!("change request {id} changed meanwhile; reload it and retry"),
    }
}

/// A change request insert whose id is taken.
pub(crate) fn request_exists(id: &str) -> Error {
    Error::ConcurrentModification {
        message: format!("change request {id} already exists"),
    }
}

pub(crate) fn token_exists(id: &str) -> Error {
    Error::Conflict {
        message: format!("token {id} (or one with the same secret) already exists"),
    }
}

pub(crate) fn token_already_revoked(id: &str) -> Error {
    Error::Conflict {
        message: format!("token {id} is already revoked"),
    }
}
