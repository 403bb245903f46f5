//! The change log (one revision per committed change) and the audit trail. Both are written
//! only by the commit recipe (`commit`).

use async_trait::async_trait;

use super::MemoryStore;
use super::commit::Change;
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, kind};
use crate::core::model::AuditRecord;
use crate::core::ports::{AuditQuery, ChangeLog, Committed, Record};

#[async_trait]
impl ChangeLog for MemoryStore {
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        let state = self.state.lock();
        Ok(state
            .audit
            .iter()
            .rev()
            .filter(|r| query.before.is_none_or(|b| r.id < b))
            .filter(|r| {
                query.subject.as_ref().is_none_or(|subject| {
                    // Token ids, secret and strategy names may look like config ids: their
                    // records belong to neither a config nor a flag.
                    r.config_id == subject.id()
                        && kind::is_flag(&r.action) == subject.is_flag()
                        && !kind::is_token(&r.action)
                        && !kind::is_secret(&r.action)
                        && !kind::is_strategy(&r.action)
                        && !kind::is_webhook(&r.action)
                })
            })
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>> {
        let state = self.state.lock();
        Ok(state
            .changes
            .iter()
            .skip(revision as usize)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn record(&self, record: Record) -> Result<Committed> {
        Ok(self.state.lock().commit(Change::from(&record)))
    }

    async fn latest_revision(&self) -> Result<u64> {
        Ok(self.state.lock().changes.len() as u64)
    }
}
