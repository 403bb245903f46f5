//! Change requests (approvals).

use async_trait::async_trait;

use super::commit::Change;
use super::{MemoryStore, State};
use crate::core::approvals::model::{ChangeRequest, ChangeRequestStatus};
use crate::core::error::{Error, Result};
use crate::core::ports::{
    ChangeRequestQuery, ChangeRequestStore, ChangeRequestWrite, Committed, request_changed,
    request_exists,
};

impl State {
    /// Inserts a request (`expected: None`) or records its progress if it still has the expected
    /// status and number of approvals.
    fn store_change_request(
        &mut self,
        request: &ChangeRequest,
        expected: Option<(ChangeRequestStatus, usize)>,
    ) -> Result<()> {
        let Some((status, approvals)) = expected else {
            if self.change_requests.contains_key(&request.id) {
                return Err(request_exists(&request.id));
            }
            self.change_requests
                .insert(request.id.clone(), request.clone());
            return Ok(());
        };
        let stored = self
            .change_requests
            .get_mut(&request.id)
            .ok_or_else(|| Error::not_found("change request", request.id.as_str()))?;
        if stored.status != status || stored.approvals.len() != approvals {
            return Err(request_changed(&request.id));
        }
        // What a request was asked for never changes; only its progress does.
        stored.status = request.status;
        stored.approvals = request.approvals.clone();
        stored.reason = request.reason.clone();
        stored.applied_version = request.applied_version;
        stored.updated_at = request.updated_at;
        Ok(())
    }
}

#[async_trait]
impl ChangeRequestStore for MemoryStore {
    async fn put_change_request(&self, write: ChangeRequestWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let request = &write.request;
        state.store_change_request(request, write.expected)?;
        Ok(state.commit(Change::from(&write)))
    }

    async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>> {
        Ok(self.state.lock().change_requests.get(id).cloned())
    }

    async fn change_requests(&self, query: ChangeRequestQuery) -> Result<Vec<ChangeRequest>> {
        let state = self.state.lock();
        let mut matching: Vec<&ChangeRequest> = state
            .change_requests
            .values()
            .filter(|r| query.status.is_none_or(|s| r.status == s))
            .filter(|r| {
                query
                    .environment
                    .as_ref()
                    .is_none_or(|e| r.environments.contains(e))
            })
            .filter(|r| query.subject.as_ref().is_none_or(|s| &r.subject == s))
            .filter(|r| {
                let id = r.subject.as_str();
                query.prefixes.is_empty() || query.prefixes.iter().any(|p| id.starts_with(p))
            })
            .collect();
        matching.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(matching
            .into_iter()
            .take(query.limit as usize)
            .cloned()
            .collect())
    }
}
