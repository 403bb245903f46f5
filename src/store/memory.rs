//! In-memory store for tests and ephemeral runs. Same semantics as the durable backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::change_event;
use crate::core::access::model::{ApiToken, Denial};
use crate::core::approvals::model::{ChangeRequest, ChangeRequestStatus};
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeEvent, kind};
use crate::core::flags::{FlagHead, FlagVersion};
use crate::core::ids::{ConfigId, FlagKey};
use crate::core::model::{
    AppliedState, AuditDraft, AuditRecord, ConfigHead, ConfigVersion, SchemaVersion,
};
use crate::core::ports::{
    AccessStore, AppliedRequest, AppliedStore, AuditQuery, ChangeLog, ChangeRequestQuery,
    ChangeRequestStore, ChangeRequestWrite, Committed, ConfigStore, Database, DeleteWrite,
    FlagDeleteWrite, FlagStore, FlagWrite, HeadRow, SchemaWrite, TOKEN_CHANGE_VERSION, TokenRevoke,
    TokenWrite, VersionWrite, request_changed, request_exists, request_not_approved,
    token_already_revoked, token_exists,
};

#[derive(Default)]
struct State {
    versions: BTreeMap<ConfigId, Vec<Arc<ConfigVersion>>>,
    deleted: BTreeMap<ConfigId, bool>,
    schemas: BTreeMap<ConfigId, Vec<SchemaVersion>>,
    flag_versions: BTreeMap<FlagKey, Vec<Arc<FlagVersion>>>,
    flag_deleted: BTreeMap<FlagKey, bool>,
    audit: Vec<AuditRecord>,
    changes: Vec<ChangeEvent>,
    applied: BTreeMap<(ConfigId, String, String), AppliedState>,
    tokens: Vec<ApiToken>,
    denials: Vec<Denial>,
    change_requests: BTreeMap<String, ChangeRequest>,
}

impl State {
    fn head_row(&self, id: &ConfigId) -> HeadRow {
        HeadRow {
            latest: self
                .versions
                .get(id)
                .and_then(|v| v.last())
                .map_or(0, |v| v.version),
            deleted: self.deleted.get(id).copied().unwrap_or(false),
            schema: self.schemas.get(id).map_or(0, |s| s.len() as u64),
        }
    }

    fn flag_head_row(&self, key: &FlagKey) -> HeadRow {
        HeadRow {
            latest: self
                .flag_versions
                .get(key)
                .and_then(|v| v.last())
                .map_or(0, |v| v.version),
            deleted: self.flag_deleted.get(key).copied().unwrap_or(false),
            schema: 0,
        }
    }

    fn flag_head(&self, key: &FlagKey) -> Option<FlagHead> {
        self.flag_versions
            .get(key)
            .and_then(|v| v.last())
            .map(|latest| FlagHead {
                latest: latest.clone(),
                deleted: self.flag_deleted.get(key).copied().unwrap_or(false),
            })
    }

    fn record(&mut self, event: ChangeEvent, draft: &AuditDraft) {
        self.audit.push(AuditRecord {
            id: self.audit.len() as u64 + 1,
            revision: event.revision,
            at: event.at,
            actor: draft.actor.clone(),
            action: draft.action.to_owned(),
            config_id: event.config_id.clone(),
            version: Some(event.version),
            environments: draft.environments.clone(),
            message: draft.message.clone(),
            on_behalf_of: draft.on_behalf_of.clone(),
        });
        self.changes.push(event);
    }

    /// Refuses a write applying a change request unless the request is `approved`.
    fn check_applies(&self, applies: Option<&AppliedRequest>) -> Result<()> {
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

    /// Marks the request a write applies (checked by `check_applies`) as applied as `version`,
    /// and records its `change_request.applied` change.
    fn mark_applied(
        &mut self,
        applies: Option<&AppliedRequest>,
        subject: &str,
        version: u64,
        checksum: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<ChangeEvent> {
        let applies = applies?;
        let request = self
            .change_requests
            .get_mut(&applies.id)
            .expect("an applied request was checked");
        request.status = ChangeRequestStatus::Applied;
        request.applied_version = Some(version);
        request.updated_at = at;
        let event = change_event(
            self.next_revision(),
            kind::CHANGE_REQUEST_APPLIED,
            subject,
            version,
            checksum,
            &applies.audit,
            at,
        );
        self.record(event.clone(), &applies.audit);
        Some(event)
    }

    fn next_revision(&self) -> u64 {
        self.changes.len() as u64 + 1
    }
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ConfigStore for MemoryStore {
    async fn head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        let state = self.state.lock();
        Ok(state
            .versions
            .get(id)
            .and_then(|v| v.last())
            .map(|latest| ConfigHead {
                latest: latest.clone(),
                deleted: state.deleted.get(id).copied().unwrap_or(false),
            }))
    }

    async fn heads(&self) -> Result<Vec<ConfigHead>> {
        let state = self.state.lock();
        Ok(state
            .versions
            .iter()
            .filter_map(|(id, versions)| {
                versions.last().map(|latest| ConfigHead {
                    latest: latest.clone(),
                    deleted: state.deleted.get(id).copied().unwrap_or(false),
                })
            })
            .collect())
    }

    async fn version(&self, id: &ConfigId, version: u64) -> Result<Option<ConfigVersion>> {
        let state = self.state.lock();
        Ok(state
            .versions
            .get(id)
            .and_then(|v| v.get(version.checked_sub(1)? as usize))
            .map(|v| v.as_ref().clone()))
    }

    async fn versions(
        &self,
        id: &ConfigId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>> {
        let state = self.state.lock();
        Ok(state
            .versions
            .get(id)
            .map(|versions| {
                versions
                    .iter()
                    .rev()
                    .filter(|v| before.is_none_or(|b| v.version < b))
                    .take(limit as usize)
                    .map(|v| v.as_ref().clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn append_version(&self, write: VersionWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let id = write.version.config_id.clone();
        let number = state.head_row(&id).check_version_write(&write)?;
        state.check_applies(write.applies.as_ref())?;
        let version = write.version.numbered(number);
        let event = change_event(
            state.next_revision(),
            kind::CONFIG_UPDATED,
            id.as_str(),
            number,
            &version.checksum,
            &write.audit,
            version.created_at,
        );
        state
            .versions
            .entry(id.clone())
            .or_default()
            .push(Arc::new(version));
        state.deleted.insert(id.clone(), false);
        state.record(event.clone(), &write.audit);
        let follow_up = state.mark_applied(
            write.applies.as_ref(),
            id.as_str(),
            number,
            &event.checksum,
            event.at,
        );
        Ok(Committed {
            version: number,
            event,
            follow_up,
        })
    }

    async fn delete_config(&self, write: DeleteWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let id = write.config_id.clone();
        state.head_row(&id).check_delete(&write)?;
        state.check_applies(write.applies.as_ref())?;
        let latest = state.versions[&id]
            .last()
            .cloned()
            .expect("a live config has versions");
        let event = change_event(
            state.next_revision(),
            kind::CONFIG_DELETED,
            id.as_str(),
            latest.version,
            &latest.checksum,
            &write.audit,
            write.at,
        );
        state.deleted.insert(id.clone(), true);
        state.record(event.clone(), &write.audit);
        let follow_up = state.mark_applied(
            write.applies.as_ref(),
            id.as_str(),
            latest.version,
            &latest.checksum,
            write.at,
        );
        Ok(Committed {
            version: latest.version,
            event,
            follow_up,
        })
    }

    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>> {
        Ok(self
            .state
            .lock()
            .schemas
            .get(id)
            .and_then(|s| s.last())
            .cloned())
    }

    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let id = write.config_id.clone();
        let number = state.head_row(&id).check_schema_write(&write)?;
        let event = change_event(
            state.next_revision(),
            kind::SCHEMA_UPDATED,
            id.as_str(),
            number,
            &write.checksum,
            &write.audit,
            write.created_at,
        );
        state
            .schemas
            .entry(id.clone())
            .or_default()
            .push(SchemaVersion {
                config_id: id,
                version: number,
                schema: write.schema,
                checksum: write.checksum,
                metadata: write.metadata,
                created_at: write.created_at,
            });
        state.record(event.clone(), &write.audit);
        Ok(Committed {
            version: number,
            event,
            follow_up: None,
        })
    }
}

#[async_trait]
impl FlagStore for MemoryStore {
    async fn flag_heads(&self) -> Result<Vec<FlagHead>> {
        let state = self.state.lock();
        Ok(state
            .flag_versions
            .keys()
            .filter_map(|key| state.flag_head(key))
            .collect())
    }

    async fn flag_head(&self, key: &FlagKey) -> Result<Option<FlagHead>> {
        Ok(self.state.lock().flag_head(key))
    }

    async fn flag_version(&self, key: &FlagKey, version: u64) -> Result<Option<FlagVersion>> {
        let state = self.state.lock();
        Ok(state
            .flag_versions
            .get(key)
            .and_then(|v| v.get(version.checked_sub(1)? as usize))
            .map(|v| v.as_ref().clone()))
    }

    async fn flag_versions(
        &self,
        key: &FlagKey,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<FlagVersion>> {
        let state = self.state.lock();
        Ok(state
            .flag_versions
            .get(key)
            .map(|versions| {
                versions
                    .iter()
                    .rev()
                    .filter(|v| before.is_none_or(|b| v.version < b))
                    .take(limit as usize)
                    .map(|v| v.as_ref().clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn append_flag_version(&self, write: FlagWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let key = write.version.key.clone();
        let number = state.flag_head_row(&key).check_flag_write(&write)?;
        let version = write.version.numbered(number);
        let event = change_event(
            state.next_revision(),
            kind::FLAG_UPDATED,
            key.as_str(),
            number,
            &version.checksum,
            &write.audit,
            version.created_at,
        );
        state
            .flag_versions
            .entry(key.clone())
            .or_default()
            .push(Arc::new(version));
        state.flag_deleted.insert(key, false);
        state.record(event.clone(), &write.audit);
        Ok(Committed {
            version: number,
            event,
            follow_up: None,
        })
    }

    async fn delete_flag(&self, write: FlagDeleteWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let key = write.key.clone();
        state.flag_head_row(&key).check_flag_delete(&write)?;
        let latest = state.flag_versions[&key]
            .last()
            .cloned()
            .expect("a live flag has versions");
        let event = change_event(
            state.next_revision(),
            kind::FLAG_DELETED,
            key.as_str(),
            latest.version,
            &latest.checksum,
            &write.audit,
            write.at,
        );
        state.flag_deleted.insert(key, true);
        state.record(event.clone(), &write.audit);
        Ok(Committed {
            version: latest.version,
            event,
            follow_up: None,
        })
    }
}

#[async_trait]
impl AccessStore for MemoryStore {
    async fn create_token(&self, write: TokenWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let token = write.token;
        if state
            .tokens
            .iter()
            .any(|t| t.id == token.id || t.hash == token.hash)
        {
            return Err(token_exists(&token.id));
        }
        let event = change_event(
            state.next_revision(),
            kind::TOKEN_CREATED,
            &token.id,
            TOKEN_CHANGE_VERSION,
            "",
            &write.audit,
            token.created_at,
        );
        state.tokens.push(token);
        state.record(event.clone(), &write.audit);
        Ok(Committed {
            version: TOKEN_CHANGE_VERSION,
            event,
            follow_up: None,
        })
    }

    async fn revoke_token(&self, write: TokenRevoke) -> Result<Committed> {
        let mut state = self.state.lock();
        let token = state
            .tokens
            .iter_mut()
            .find(|t| t.id == write.id)
            .ok_or_else(|| Error::not_found("token", write.id.as_str()))?;
        if token.revoked_at.is_some() {
            return Err(token_already_revoked(&write.id));
        }
        token.revoked_at = Some(write.at);
        let event = change_event(
            state.next_revision(),
            kind::TOKEN_REVOKED,
            &write.id,
            TOKEN_CHANGE_VERSION,
            "",
            &write.audit,
            write.at,
        );
        state.record(event.clone(), &write.audit);
        Ok(Committed {
            version: TOKEN_CHANGE_VERSION,
            event,
            follow_up: None,
        })
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let mut tokens = self.state.lock().tokens.clone();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tokens)
    }

    async fn record_denial(&self, denial: Denial) -> Result<()> {
        let mut state = self.state.lock();
        let id = state.denials.len() as u64 + 1;
        state.denials.push(Denial { id, ..denial });
        Ok(())
    }

    async fn denials(&self, before: Option<u64>, limit: u32) -> Result<Vec<Denial>> {
        let state = self.state.lock();
        Ok(state
            .denials
            .iter()
            .rev()
            .filter(|d| before.is_none_or(|b| d.id < b))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl ChangeRequestStore for MemoryStore {
    async fn put_change_request(&self, write: ChangeRequestWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let request = write.request;
        match write.expected {
            None => {
                if state.change_requests.contains_key(&request.id) {
                    return Err(request_exists(&request.id));
                }
                state
                    .change_requests
                    .insert(request.id.clone(), request.clone());
            }
            Some((status, approvals)) => {
                let stored = state
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
            }
        }
        let event = change_event(
            state.next_revision(),
            write.kind,
            request.config_id.as_str(),
            request.base_version,
            "",
            &write.audit,
            request.updated_at,
        );
        state.record(event.clone(), &write.audit);
        Ok(Committed {
            version: request.base_version,
            event,
            follow_up: None,
        })
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
            .filter(|r| query.config_id.as_ref().is_none_or(|c| &r.config_id == c))
            .collect();
        matching.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(matching
            .into_iter()
            .take(query.limit as usize)
            .cloned()
            .collect())
    }
}

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
                    // Token ids may look like config ids: their records belong to neither.
                    r.config_id == subject.id()
                        && kind::is_flag(&r.action) == subject.is_flag()
                        && !kind::is_token(&r.action)
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

    async fn latest_revision(&self) -> Result<u64> {
        Ok(self.state.lock().changes.len() as u64)
    }
}

#[async_trait]
impl AppliedStore for MemoryStore {
    async fn record_applied(&self, applied: AppliedState) -> Result<()> {
        let key = (
            applied.config_id.clone(),
            applied.environment.clone(),
            applied.instance_id.clone(),
        );
        let mut state = self.state.lock();
        if !state.versions.contains_key(&applied.config_id) {
            return Err(Error::not_found("config", applied.config_id.as_str()));
        }
        state.applied.insert(key, applied);
        Ok(())
    }

    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>> {
        let state = self.state.lock();
        Ok(state
            .applied
            .values()
            .filter(|a| id.is_none_or(|id| &a.config_id == id))
            .cloned()
            .collect())
    }

    async fn sweep_applied(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let mut state = self.state.lock();
        let count = state.applied.len();
        state
            .applied
            .retain(|_, report| report.reported_at >= before);
        Ok((count - state.applied.len()) as u64)
    }
}

#[async_trait]
impl Database for MemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
