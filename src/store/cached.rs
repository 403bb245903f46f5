//! Read cache in front of any store: config heads live in memory, so effective-config reads
//! make no database round trip. Writes go through to the inner store and then update the cache.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;

use super::{AuditQuery, Committed, DeleteWrite, SchemaWrite, Store, VersionWrite};
use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;
use crate::core::ids::ConfigId;
use crate::core::model::{AppliedState, AuditRecord, ConfigHead, ConfigVersion, SchemaVersion};

pub struct CachedStore {
    inner: Arc<dyn Store>,
    /// Sharded, so concurrent readers on different cores rarely touch the same lock word.
    heads: DashMap<ConfigId, ConfigHead>,
}

impl CachedStore {
    /// Wraps `inner`, loading every config head into memory.
    pub async fn load(inner: Arc<dyn Store>) -> Result<Self> {
        let heads = inner
            .heads()
            .await?
            .into_iter()
            .map(|head| (head.latest.config_id.clone(), head))
            .collect();
        Ok(CachedStore { inner, heads })
    }

    pub fn cached_configs(&self) -> usize {
        self.heads.len()
    }

    /// A conflict means the store moved past what the cache holds (another writer, or a commit
    /// whose caller went away): reload the head so the next attempt sees the truth.
    async fn refreshing_on_conflict(
        &self,
        id: &ConfigId,
        write: impl Future<Output = Result<Committed>>,
    ) -> Result<Committed> {
        let result = write.await;
        if let Err(Error::VersionConflict { .. } | Error::ConcurrentModification { .. }) = &result {
            match self.inner.head(id).await {
                Ok(Some(head)) => {
                    self.heads.insert(id.clone(), head);
                }
                Ok(None) => {
                    self.heads.remove(id);
                }
                Err(error) => tracing::warn!(%id, %error, "could not refresh a cached head"),
            }
        }
        result
    }

    /// Keeps the newer of the cached and the given head.
    fn remember(&self, head: ConfigHead) {
        let id = head.latest.config_id.clone();
        let mut entry = self.heads.entry(id).or_insert_with(|| head.clone());
        if entry.latest.version <= head.latest.version {
            *entry = head;
        }
    }
}

#[async_trait]
impl Store for CachedStore {
    fn cached_head(&self, id: &ConfigId) -> Option<ConfigHead> {
        self.heads.get(id).map(|head| head.clone())
    }

    async fn head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        if let Some(head) = self.cached_head(id) {
            return Ok(Some(head));
        }
        let head = self.inner.head(id).await?;
        if let Some(head) = &head {
            self.remember(head.clone());
        }
        Ok(head)
    }

    async fn heads(&self) -> Result<Vec<ConfigHead>> {
        let mut heads: Vec<ConfigHead> = self.heads.iter().map(|e| e.value().clone()).collect();
        heads.sort_by(|a, b| a.latest.config_id.cmp(&b.latest.config_id));
        Ok(heads)
    }

    async fn version(&self, id: &ConfigId, version: u64) -> Result<Option<ConfigVersion>> {
        self.inner.version(id, version).await
    }

    async fn versions(
        &self,
        id: &ConfigId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>> {
        self.inner.versions(id, before, limit).await
    }

    async fn append_version(&self, write: VersionWrite) -> Result<Committed> {
        let new_version = write.version.clone();
        let id = new_version.config_id.clone();
        let committed = self
            .refreshing_on_conflict(&id, self.inner.append_version(write))
            .await?;
        self.remember(ConfigHead {
            latest: Arc::new(new_version.numbered(committed.version)),
            deleted: false,
        });
        Ok(committed)
    }

    async fn delete_config(&self, write: DeleteWrite) -> Result<Committed> {
        let id = write.config_id.clone();
        let committed = self
            .refreshing_on_conflict(&id, self.inner.delete_config(write))
            .await?;
        if let Some(mut head) = self.heads.get_mut(&id) {
            head.deleted = true;
        }
        Ok(committed)
    }

    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>> {
        self.inner.schema(id).await
    }

    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed> {
        let id = write.config_id.clone();
        self.refreshing_on_conflict(&id, self.inner.put_schema(write))
            .await
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        self.inner.audit(query).await
    }

    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.inner.changes_since(revision, limit).await
    }

    async fn latest_revision(&self) -> Result<u64> {
        self.inner.latest_revision().await
    }

    async fn record_applied(&self, state: AppliedState) -> Result<()> {
        self.inner.record_applied(state).await
    }

    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>> {
        self.inner.applied(id).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}
