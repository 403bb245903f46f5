//! API tokens and the record of denied attempts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Committed;
use crate::core::access::model::{ApiToken, Denial};
use crate::core::error::Result;
use crate::core::model::AuditDraft;

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

#[async_trait]
pub trait AccessStore: Send + Sync {
    async fn create_token(&self, write: TokenWrite) -> Result<Committed>;
    async fn revoke_token(&self, write: TokenRevoke) -> Result<Committed>;
    /// Every token, revoked ones too, oldest first.
    async fn tokens(&self) -> Result<Vec<ApiToken>>;
    /// Appends a denied attempt (not a change: no revision); the store gives it an id.
    async fn record_denial(&self, denial: Denial) -> Result<()>;
    /// Newest first, ids below `before` when given.
    async fn denials(&self, before: Option<u64>, limit: u32) -> Result<Vec<Denial>>;
}
