//! The change log (one revision per committed change) and the audit trail.

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use super::Committed;
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, ChangeKind};
use crate::core::ids::{ConfigId, FlagKey};
use crate::core::model::{AuditDraft, AuditRecord};

/// A change that writes no rows (an audited read of a secret's value): it takes a revision and
/// records its event and audit record through the commit recipe like any other.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: ChangeKind,
    pub subject: String,
    pub version: u64,
    pub audit: AuditDraft,
    pub at: DateTime<Utc>,
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
pub trait ChangeLog: Send + Sync {
    /// Newest first.
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Change events with a revision above `revision`, oldest first.
    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>>;
    async fn latest_revision(&self) -> Result<u64>;
    async fn record(&self, record: Record) -> Result<Committed>;
}
