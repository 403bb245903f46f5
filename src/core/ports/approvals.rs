//! Change requests (approvals).

use async_trait::async_trait;

use super::Committed;
use crate::core::approvals::model::{ChangeRequest, ChangeRequestStatus, Subject};
use crate::core::error::Result;
use crate::core::events::ChangeKind;
use crate::core::model::AuditDraft;

/// Insert (`expected: None`; the id must be new) or update a change request with
/// compare-and-set on (status, number of approvals) — else `ConcurrentModification`, nothing
/// written. Records `kind` (`change_request.created|approved|rejected|cancelled`) with the
/// config id as subject, and the audit record.
#[derive(Debug, Clone)]
pub struct ChangeRequestWrite {
    pub request: ChangeRequest,
    pub expected: Option<(ChangeRequestStatus, usize)>,
    pub kind: ChangeKind,
    pub audit: AuditDraft,
}

/// Newest first (by `created_at`, then id).
#[derive(Debug, Clone, Default)]
pub struct ChangeRequestQuery {
    pub status: Option<ChangeRequestStatus>,
    /// Requests whose `environments` include this one.
    pub environment: Option<String>,
    /// Requests on this config or flag.
    pub subject: Option<Subject>,
    /// Requests on ids starting with one of these (a caller's id scope); empty: every one.
    /// Applied before `limit`, so a scoped caller's page is full of its own requests.
    pub prefixes: Vec<String>,
    pub limit: u32,
}

#[async_trait]
pub trait ChangeRequestStore: Send + Sync {
    async fn put_change_request(&self, write: ChangeRequestWrite) -> Result<Committed>;
    async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>>;
    async fn change_requests(&self, query: ChangeRequestQuery) -> Result<Vec<ChangeRequest>>;
}
