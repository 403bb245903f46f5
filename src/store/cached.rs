//! Read cache in front of any store: config heads live in memory, so effective-config reads
//! make no database round trip. Writes go through to the inner store and then update the cache;
//! changes committed by other replicas arrive through `apply_change`. The cache also tracks
//! whether the inner store answers, so reads can say they may be stale.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use dashmap::DashMap;

use super::{AuditQuery, Committed, DeleteWrite, SchemaWrite, Store, VersionWrite};
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeEvent, kind};
use crate::core::ids::ConfigId;
use crate::core::model::{AppliedState, AuditRecord, ConfigHead, ConfigVersion, SchemaVersion};

pub struct CachedStore {
    inner: Arc<dyn Store>,
    /// Sharded, so concurrent readers on different cores rarely touch the same lock word.
    heads: DashMap<ConfigId, ConfigHead>,
    /// The last call to the inner store failed as unavailable.
    degraded: AtomicBool,
    /// At most this many heads are kept; beyond it an arbitrary other entry is evicted (reads
    /// of evicted configs go to the store and bring them back).
    max_configs: usize,
    /// Every config is cached, so lists can be answered from memory.
    complete: AtomicBool,
    /// Every change up to this revision is reflected in the cache (advanced by the replication
    /// follower, in order).
    applied: AtomicU64,
    /// Changes not applied because their config was not cached (bounded cache): a miss that
    /// was being fetched meanwhile must not be cached.
    skipped: AtomicU64,
}

/// Whether `new` describes a later state of the config than `old`: a higher version, or the
/// same version now deleted (a delete keeps the number; a re-create takes the next one).
fn supersedes(new: &ConfigHead, old: &ConfigHead) -> bool {
    new.latest.version > old.latest.version
        || (new.latest.version == old.latest.version && new.deleted && !old.deleted)
}

impl CachedStore {
    /// Wraps `inner`, loading every config head into memory.
    pub async fn load(inner: Arc<dyn Store>) -> Result<Self> {
        Self::load_bounded(inner, usize::MAX).await
    }

    /// Wraps `inner`, loading at most `max_configs` heads into memory.
    pub async fn load_bounded(inner: Arc<dyn Store>, max_configs: usize) -> Result<Self> {
        let max_configs = max_configs.max(1);
        let all = inner.heads().await?;
        let complete = all.len() <= max_configs;
        let heads = all
            .into_iter()
            .take(max_configs)
            .map(|head| (head.latest.config_id.clone(), head))
            .collect();
        Ok(CachedStore {
            inner,
            heads,
            degraded: AtomicBool::new(false),
            max_configs,
            complete: AtomicBool::new(complete),
            skipped: AtomicU64::new(0),
            applied: AtomicU64::new(0),
        })
    }

    /// Notes whether the inner store answered.
    fn observe<T>(&self, result: Result<T>) -> Result<T> {
        match &result {
            Err(Error::Unavailable { .. }) => self.degraded.store(true, Ordering::Relaxed),
            _ => self.degraded.store(false, Ordering::Relaxed),
        }
        result
    }

    /// Brings the cached head of `id` up to the store's, keeping whichever is later.
    pub async fn reload(&self, id: &ConfigId) -> Result<()> {
        match self.observe(self.inner.head(id).await)? {
            Some(head) => self.remember(head),
            None => {
                self.heads.remove(id);
            }
        }
        Ok(())
    }

    /// Applies a change committed anywhere (this replica or another) to the cache.
    pub async fn apply_change(&self, event: &ChangeEvent) -> Result<()> {
        if event.kind != kind::CONFIG_UPDATED && event.kind != kind::CONFIG_DELETED {
            return Ok(()); // schemas are not cached
        }
        let id = ConfigId::parse(&event.config_id)?;
        let up_to_date = match self.heads.get(&id) {
            Some(cached) => {
                cached.latest.version > event.version
                    || (cached.latest.version == event.version
                        && (cached.deleted || event.kind == kind::CONFIG_UPDATED))
            }
            // Not cached: a bounded cache loads it when it is read; a complete one must add it.
            None if !self.complete.load(Ordering::Relaxed) => {
                // A read of this config may be fetching it right now, from before this change.
                self.skipped.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        };
        if up_to_date {
            return Ok(());
        }
        self.reload(&id).await
    }

    /// Records that every change up to `revision` is reflected in the cache.
    pub fn mark_applied(&self, revision: u64) {
        self.applied.fetch_max(revision, Ordering::Release);
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
        let result = self.observe(write.await);
        if let Err(Error::VersionConflict { .. } | Error::ConcurrentModification { .. }) = &result
            && let Err(error) = self.reload(id).await
        {
            tracing::warn!(%id, %error, "could not refresh a cached head");
        }
        result
    }

    /// Keeps the later of the cached and the given head.
    fn remember(&self, head: ConfigHead) {
        let id = head.latest.config_id.clone();
        if !self.heads.contains_key(&id) && self.heads.len() >= self.max_configs {
            self.evict_one_except(&id);
        }
        let mut entry = self.heads.entry(id).or_insert_with(|| head.clone());
        if supersedes(&head, &entry) {
            *entry = head;
        }
    }

    fn evict_one_except(&self, keep: &ConfigId) {
        let victim = self
            .heads
            .iter()
            .map(|entry| entry.key().clone())
            .find(|id| id != keep);
        if let Some(victim) = victim {
            // Incomplete first, so a concurrent list never trusts a cache missing an entry.
            self.complete.store(false, Ordering::Relaxed);
            self.heads.remove(&victim);
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
        let skipped = self.skipped.load(Ordering::Relaxed);
        let head = self.observe(self.inner.head(id).await)?;
        // A change skipped while this fetch ran may be newer than what it read: then serve the
        // answer but do not keep it.
        if let Some(head) = &head
            && self.skipped.load(Ordering::Relaxed) == skipped
        {
            self.remember(head.clone());
        }
        Ok(head)
    }

    async fn fresh_heads(&self) -> Result<Vec<ConfigHead>> {
        self.observe(self.inner.heads().await)
    }

    async fn fresh_head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        self.reload(id).await?;
        Ok(self.cached_head(id))
    }

    async fn heads(&self) -> Result<Vec<ConfigHead>> {
        if !self.complete.load(Ordering::Relaxed) {
            return self.observe(self.inner.heads().await);
        }
        let mut heads: Vec<ConfigHead> = self.heads.iter().map(|e| e.value().clone()).collect();
        heads.sort_by(|a, b| a.latest.config_id.cmp(&b.latest.config_id));
        Ok(heads)
    }

    async fn version(&self, id: &ConfigId, version: u64) -> Result<Option<ConfigVersion>> {
        self.observe(self.inner.version(id, version).await)
    }

    async fn versions(
        &self,
        id: &ConfigId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>> {
        self.observe(self.inner.versions(id, before, limit).await)
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
        // Only the version this delete removed: a newer one may already be cached (re-created
        // through another replica and applied by the follower meanwhile).
        if let Some(mut head) = self.heads.get_mut(&id)
            && head.latest.version == committed.version
        {
            head.deleted = true;
        }
        Ok(committed)
    }

    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>> {
        self.observe(self.inner.schema(id).await)
    }

    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed> {
        let id = write.config_id.clone();
        self.refreshing_on_conflict(&id, self.inner.put_schema(write))
            .await
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        self.observe(self.inner.audit(query).await)
    }

    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.observe(self.inner.changes_since(revision, limit).await)
    }

    async fn latest_revision(&self) -> Result<u64> {
        self.observe(self.inner.latest_revision().await)
    }

    async fn record_applied(&self, state: AppliedState) -> Result<()> {
        self.observe(self.inner.record_applied(state).await)
    }

    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>> {
        self.observe(self.inner.applied(id).await)
    }

    async fn sweep_applied(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        self.observe(self.inner.sweep_applied(before).await)
    }

    async fn lead_duties(&self) -> Result<bool> {
        self.observe(self.inner.lead_duties().await)
    }

    fn shared_by_replicas(&self) -> bool {
        self.inner.shared_by_replicas()
    }

    async fn wait_for_change(&self, timeout: std::time::Duration) {
        self.inner.wait_for_change(timeout).await
    }

    fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    fn readable_revision(&self) -> Option<u64> {
        self.inner
            .shared_by_replicas()
            .then(|| self.applied.load(Ordering::Acquire))
    }

    async fn ping(&self) -> Result<()> {
        self.observe(self.inner.ping().await)
    }
}
