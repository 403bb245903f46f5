//! The change log (one revision per committed change) and the audit trail.

use async_trait::async_trait;

use crate::core::error::Result;
use crate::core::events::ChangeEvent;
use crate::core::ids::{ConfigId, FlagKey};
use crate::core::model::AuditRecord;

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
}
