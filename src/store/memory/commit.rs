//! The commit recipe, written once for every write: after a write has checked its expectations
//! (and, when it applies a change request, that the request is still approved) and changed its
//! rows, record its change with the next revision and its audit record, then the follow-up
//! (`change_request.applied`). All of it under the store's lock.

use super::State;
use crate::core::approvals::model::ChangeRequestStatus;
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, ChangeKind, kind};
use crate::core::model::{AuditDraft, AuditRecord};
use crate::core::ports::{AppliedRequest, Committed, Record, request_not_approved};

pub(super) use crate::store::change::Change;

impl State {
    /// Refuses a write applying a change request unless the request is `approved`; called before
    /// the write changes anything.
    pub(super) fn check_applies(&self, applies: Option<&AppliedRequest>) -> Result<()> {
        match applies {
            Some(applies)
                if self
                    .change_requests
                    .get(&applies.id)
                    .is_none_or(|r| r.status != ChangeRequestStatus::Approved) =>
            {
                Err(request_not_approved(&applies.id))
            }
            _ => Ok(()),
        }
    }

    /// Records `change` (and the request it applies) in the change log and the audit.
    pub(super) fn commit(&mut self, change: Change<'_>) -> Committed {
        self.commit_announcing(change, &[])
    }

    /// As `commit`, then `announce`'s records, each with its own revision.
    pub(super) fn commit_announcing(
        &mut self,
        change: Change<'_>,
        announce: &[Record],
    ) -> Committed {
        let event = self.record(&change, change.kind, change.audit);
        let follow_up = change.applies.map(|applies| {
            if let Some(request) = self.change_requests.get_mut(&applies.id) {
                request.status = ChangeRequestStatus::Applied;
                request.applied_version = Some(change.version);
                request.updated_at = change.at;
            }
            self.record(&change, kind::CHANGE_REQUEST_APPLIED, &applies.audit)
        });
        let announced = announce
            .iter()
            .map(|record| {
                let change = Change::from(record);
                self.record(&change, change.kind, change.audit)
            })
            .collect();
        Committed {
            version: change.version,
            event,
            follow_up,
            announced,
        }
    }

    /// Appends `kind` about `change`'s subject with the next revision, and its audit record.
    fn record(&mut self, change: &Change<'_>, kind: ChangeKind, audit: &AuditDraft) -> ChangeEvent {
        let event = change.event(self.changes.len() as u64 + 1, kind, audit);
        self.audit.push(AuditRecord {
            id: self.audit.len() as u64 + 1,
            revision: event.revision,
            at: event.at,
            actor: audit.actor.clone(),
            action: audit.action.to_owned(),
            config_id: event.config_id.clone(),
            version: Some(event.version),
            environments: audit.environments.clone(),
            message: audit.message.clone(),
            on_behalf_of: audit.on_behalf_of.clone(),
            details: audit.details.clone(),
        });
        self.changes.push(event.clone());
        event
    }
}
