//! Configs: heads, versions and schemas.

use std::sync::Arc;

use async_trait::async_trait;

use super::commit::Change;
use super::{MemoryStore, State, page};
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::ids::ConfigId;
use crate::core::model::{ConfigHead, ConfigVersion, SchemaVersion};
use crate::core::ports::{Committed, ConfigStore, DeleteWrite, HeadRow, SchemaWrite, VersionWrite};

impl State {
    fn head_row(&self, id: &ConfigId) -> HeadRow {
        HeadRow {
            latest: self.latest_version(id).map_or(0, |v| v.version),
            deleted: self.deleted.get(id).copied().unwrap_or(false),
            schema: self.schemas.get(id).map_or(0, |s| s.len() as u64),
        }
    }

    fn latest_version(&self, id: &ConfigId) -> Option<&Arc<ConfigVersion>> {
        self.versions.get(id).and_then(|v| v.last())
    }

    fn config_head(&self, id: &ConfigId) -> Option<ConfigHead> {
        self.latest_version(id).map(|latest| ConfigHead {
            latest: latest.clone(),
            deleted: self.deleted.get(id).copied().unwrap_or(false),
        })
    }
}

#[async_trait]
impl ConfigStore for MemoryStore {
    async fn head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        Ok(self.state.lock().config_head(id))
    }

    async fn heads(&self) -> Result<Vec<ConfigHead>> {
        let state = self.state.lock();
        Ok(state
            .versions
            .keys()
            .filter_map(|id| state.config_head(id))
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
        let Some(versions) = state.versions.get(id) else {
            return Ok(Vec::new());
        };
        let versions = page(versions.iter(), |v| v.version, before, limit);
        Ok(versions.into_iter().map(Arc::unwrap_or_clone).collect())
    }

    async fn append_version(&self, write: VersionWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let number = state
            .head_row(&write.version.config_id)
            .check_version_write(&write)?;
        state.check_applies(write.applies.as_ref())?;
        let VersionWrite {
            version,
            audit,
            applies,
            ..
        } = write;
        let version = Arc::new(version.numbered(number));
        let id = &version.config_id;
        state
            .versions
            .entry(id.clone())
            .or_default()
            .push(version.clone());
        state.deleted.insert(id.clone(), false);
        Ok(state.commit(Change {
            kind: kind::CONFIG_UPDATED,
            subject: id.as_str(),
            version: number,
            checksum: &version.checksum,
            audit: &audit,
            at: version.created_at,
            applies: applies.as_ref(),
        }))
    }

    async fn delete_config(&self, write: DeleteWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let id = &write.config_id;
        state.head_row(id).check_delete(&write)?;
        state.check_applies(write.applies.as_ref())?;
        let latest = state
            .latest_version(id)
            .cloned()
            .ok_or_else(|| Error::internal(format!("live config {id} has no versions")))?;
        state.deleted.insert(id.clone(), true);
        Ok(state.commit(Change {
            kind: kind::CONFIG_DELETED,
            subject: id.as_str(),
            version: latest.version,
            checksum: &latest.checksum,
            audit: &write.audit,
            at: write.at,
            applies: write.applies.as_ref(),
        }))
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
        let id = &write.config_id;
        let number = state.head_row(id).check_schema_write(&write)?;
        let change = Change {
            kind: kind::SCHEMA_UPDATED,
            subject: id.as_str(),
            version: number,
            checksum: &write.checksum,
            audit: &write.audit,
            at: write.created_at,
            applies: None,
        };
        let committed = state.commit(change);
        let SchemaWrite {
            config_id,
            schema,
            checksum,
            metadata,
            created_at,
            ..
        } = write;
        let schema = SchemaVersion {
            config_id,
            version: number,
            schema,
            checksum,
            metadata,
            created_at,
        };
        state
            .schemas
            .entry(schema.config_id.clone())
            .or_default()
            .push(schema);
        Ok(committed)
    }
}
