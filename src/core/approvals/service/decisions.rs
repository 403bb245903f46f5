//! Deciding on a change request: approving it, rejecting it, or its requester cancelling it.

use crate::core::access::{Caller, Permission};
use crate::core::approvals::model::{Approval, ChangeRequest, ChangeRequestStatus};
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::model::Metadata;
use crate::core::service::{ConfigService, now};

const MAX_REASON: usize = 4096;

impl ConfigService {
    /// One approval by `approver` (not the requester, once each); enough of them approve it.
    pub async fn approve(
        &self,
        caller: &Caller,
        id: &str,
        approver: &Metadata,
    ) -> Result<ChangeRequest> {
        let mut request = self.decidable(caller, id).await?;
        Self::require_status(&request, &[ChangeRequestStatus::Pending])?;
        if approver.actor == request.requested_by {
            return Err(Error::forbidden(
                "the requester of a change cannot approve it; another config-admin must",
            ));
        }
        if request.approvals.iter().any(|a| a.actor == approver.actor) {
            return Err(Error::conflict(format!(
                "'{}' already approved change request {id}",
                approver.actor
            )));
        }
        let expected = (request.status, request.approvals.len());
        request.approvals.push(Approval {
            actor: approver.actor.clone(),
            at: now(),
        });
        if request.approvals.len() >= request.required_approvals as usize {
            request.status = ChangeRequestStatus::Approved;
        }
        request.updated_at = now();
        self.transition(
            request,
            Some(expected),
            kind::CHANGE_REQUEST_APPROVED,
            "change_request.approve",
            approver,
        )
        .await
    }

    pub async fn reject(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
        actor: &Metadata,
    ) -> Result<ChangeRequest> {
        self.decidable(caller, id).await?;
        Self::close(self, id, reason, actor, ChangeRequestStatus::Rejected).await
    }

    /// Only the requester (or an admin) cancels.
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
        actor: &Metadata,
    ) -> Result<ChangeRequest> {
        let request = self.change_request(caller, id).await?;
        let identity = caller.identity();
        let may_cancel_others = !identity.unrestricted && identity.has(Permission::ManageTokens);
        if request.requested_by != actor.actor && !may_cancel_others {
            return Err(Error::forbidden(
                "only the requester (or an admin) can cancel a change request",
            ));
        }
        Self::close(self, id, reason, actor, ChangeRequestStatus::Cancelled).await
    }

    async fn close(
        &self,
        id: &str,
        reason: &str,
        actor: &Metadata,
        status: ChangeRequestStatus,
    ) -> Result<ChangeRequest> {
        let reason = reason.trim();
        if reason.is_empty() && status == ChangeRequestStatus::Rejected {
            return Err(Error::invalid("/reason", "a rejection needs a reason"));
        }
        if reason.len() > MAX_REASON {
            return Err(Error::invalid(
                "/reason",
                format!("at most {MAX_REASON} bytes"),
            ));
        }
        crate::core::validation::refuse_nul("/reason", reason)?;
        let mut request = self.stored_request(id).await?;
        Self::require_status(
            &request,
            &[ChangeRequestStatus::Pending, ChangeRequestStatus::Approved],
        )?;
        let expected = (request.status, request.approvals.len());
        request.status = status;
        request.reason = (!reason.is_empty()).then(|| reason.to_owned());
        request.updated_at = now();
        let (event, action) = match status {
            ChangeRequestStatus::Rejected => {
                (kind::CHANGE_REQUEST_REJECTED, "change_request.reject")
            }
            _ => (kind::CHANGE_REQUEST_CANCELLED, "change_request.cancel"),
        };
        self.transition(request, Some(expected), event, action, actor)
            .await
    }
}
