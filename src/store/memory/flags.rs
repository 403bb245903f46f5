//! Flag definitions and their versions.

use std::sync::Arc;

use async_trait::async_trait;

use super::commit::Change;
use super::{MemoryStore, State, page};
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::flags::{FlagHead, FlagVersion};
use crate::core::ids::FlagKey;
use crate::core::ports::{Committed, FlagDeleteWrite, FlagStore, FlagWrite, HeadRow};

impl State {
    fn flag_head_row(&self, key: &FlagKey) -> HeadRow {
        HeadRow {
            latest: self.latest_flag_version(key).map_or(0, |v| v.version),
            deleted: self.flag_deleted.get(key).copied().unwrap_or(false),
            schema: 0,
        }
    }

    fn latest_flag_version(&self, key: &FlagKey) -> Option<&Arc<FlagVersion>> {
        self.flag_versions.get(key).and_then(|v| v.last())
    }

    fn flag_head(&self, key: &FlagKey) -> Option<FlagHead> {
        self.latest_flag_version(key).map(|latest| FlagHead {
            latest: latest.clone(),
            deleted: self.flag_deleted.get(key).copied().unwrap_or(false),
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
        let Some(versions) = state.flag_versions.get(key) else {
            return Ok(Vec::new());
        };
        let versions = page(versions.iter(), |v| v.version, before, limit);
        Ok(versions.into_iter().map(Arc::unwrap_or_clone).collect())
    }

    async fn append_flag_version(&self, write: FlagWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let number = state
            .flag_head_row(&write.version.key)
            .check_flag_write(&write)?;
        let FlagWrite { version, audit, .. } = write;
        let version = Arc::new(version.numbered(number));
        let key = &version.key;
        state
            .flag_versions
            .entry(key.clone())
            .or_default()
            .push(version.clone());
        state.flag_deleted.insert(key.clone(), false);
        Ok(state.commit(Change {
            kind: kind::FLAG_UPDATED,
            subject: key.as_str(),
            version: number,
            checksum: &version.checksum,
            audit: &audit,
            at: version.created_at,
            applies: None,
        }))
    }

    async fn delete_flag(&self, write: FlagDeleteWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let key = &write.key;
        state.flag_head_row(key).check_flag_delete(&write)?;
        let latest = state
            .latest_flag_version(key)
            .cloned()
            .ok_or_else(|| Error::internal(format!("live flag {key} has no versions")))?;
        state.flag_deleted.insert(key.clone(), true);
        Ok(state.commit(Change {
            kind: kind::FLAG_DELETED,
            subject: key.as_str(),
            version: latest.version,
            checksum: &latest.checksum,
            audit: &write.audit,
            at: write.at,
            applies: None,
        }))
    }
}
