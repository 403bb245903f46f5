//! In-memory store for tests and ephemeral runs. Same semantics as the durable backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    AuditQuery, Committed, DeleteWrite, HeadRow, SchemaWrite, Store, VersionWrite, change_event,
};
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeEvent, kind};
use crate::core::ids::ConfigId;
use crate::core::model::{
    AppliedState, AuditDraft, AuditRecord, ConfigHead, ConfigVersion, SchemaVersion,
};

#[derive(Default)]
struct State {
    versions: BTreeMap<ConfigId, Vec<Arc<ConfigVersion>>>,
    deleted: BTreeMap<ConfigId, bool>,
    schemas: BTreeMap<ConfigId, Vec<SchemaVersion>>,
    audit: Vec<AuditRecord>,
    changes: Vec<ChangeEvent>,
    applied: BTreeMap<(ConfigId, String, String), AppliedState>,
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
        });
        self.changes.push(event);
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
impl Store for MemoryStore {
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
        let version = write.version.numbered(number);
        let event = change_event(
            state.next_revision(),
            kind::CONFIG_UPDATED,
            &id,
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
        state.deleted.insert(id, false);
        state.record(event.clone(), &write.audit);
        Ok(Committed {
            version: number,
            event,
        })
    }

    async fn delete_config(&self, write: DeleteWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let id = write.config_id.clone();
        state.head_row(&id).check_delete(&write)?;
        let latest = state.versions[&id]
            .last()
            .cloned()
            .expect("a live config has versions");
        let event = change_event(
            state.next_revision(),
            kind::CONFIG_DELETED,
            &id,
            latest.version,
            &latest.checksum,
            &write.audit,
            write.at,
        );
        state.deleted.insert(id, true);
        state.record(event.clone(), &write.audit);
        Ok(Committed {
            version: latest.version,
            event,
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
            &id,
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
        })
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        let state = self.state.lock();
        Ok(state
            .audit
            .iter()
            .rev()
            .filter(|r| query.before.is_none_or(|b| r.id < b))
            .filter(|r| {
                query
                    .config_id
                    .as_ref()
                    .is_none_or(|id| r.config_id == id.as_str())
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

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
