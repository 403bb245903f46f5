//! Read cache in front of any store: config heads, every flag head and every API token live in
//! memory, so effective-config reads, flag evaluations and token checks make no database round
//! trip. Writes go through to the inner store and then update the cache; changes committed by
//! other replicas arrive through `apply_change`. The cache also tracks whether the inner store
//! answers, so reads can say they may be stale.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;
use parking_lot::{RwLock, RwLockUpgradableReadGuard};

use crate::core::access::model::ApiToken;
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeEvent, kind};
use crate::core::flags::{FlagDefinition, FlagHead, FlagSet};
use crate::core::ids::{ConfigId, FlagKey, SecretName, ServiceName};
use crate::core::model::{ConfigDocument, ConfigHead};
use crate::core::ports::{Committed, DocumentStore, ServiceInstances, Store, TokenMap};
use crate::core::secrets::model::{SecretDocument, SecretHead};
use crate::core::secrets::stages::SecretStages;
use crate::core::validation::KnownSchema;

mod deployments;
mod notifications;
mod ports;
mod registry;
mod strategies;

pub struct CachedStore {
    inner: Arc<dyn Store>,
    /// Sharded, so concurrent readers on different cores rarely touch the same lock word.
    /// Every effective read looks here: a fast hash (seeded per process, so ids chosen to
    /// collide cannot be precomputed).
    heads: DashMap<ConfigId, ConfigHead, foldhash::fast::RandomState>,
    /// The last call to the inner store failed as unavailable.
    degraded: AtomicBool,
    /// Calls that failed as unavailable so far: a success that began before the latest failure
    /// does not clear `degraded`.
    failures: AtomicU64,
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
    /// Every flag head (flags are few, so never bounded). Copy-on-write: evaluation clones the
    /// `Arc` and reads a consistent set without holding the lock; writers swap in a new set.
    flags: RwLock<Arc<FlagSet>>,
    /// Every token (few), by hash; copy-on-write like `flags`.
    tokens: RwLock<Arc<TokenMap>>,
    /// Every secret head of the built-in store (sealed values; few), for `store:` references.
    secrets: DashMap<SecretName, CachedSecret>,
    /// Bumped, under the `tokens` write lock, by every change of `tokens`: a reload whose
    /// fetch began before another change must not swap in its (maybe older) snapshot.
    token_changes: AtomicU64,
    /// Every registered instance, by service; copy-on-write per service.
    registry: DashMap<ServiceName, Arc<ServiceInstances>>,
    /// Schemas as read for writes, by config (`None`: the config has none); an entry goes on
    /// every schema change of its config. At most `max_configs` entries.
    schemas: DashMap<ConfigId, Option<Arc<KnownSchema>>, foldhash::fast::RandomState>,
    /// Bumped by every schema change before its entry goes: a read that began before it must
    /// not keep what it read.
    schema_changes: AtomicU64,
}

fn tokens_by_hash(tokens: Vec<ApiToken>) -> TokenMap {
    tokens
        .into_iter()
        .map(|token| (token.hash.clone(), Arc::new(token)))
        .collect()
}

/// Whether a head at `new` (version, deleted) describes a later state than one at `old`: a
/// higher version, or the same version now deleted (a delete keeps the number; a re-create
/// takes the next one).
/// A secret's head and, while it is live, which versions hold its stages.
#[derive(Clone)]
pub(super) struct CachedSecret {
    pub(super) head: SecretHead,
    pub(super) stages: Option<Arc<SecretStages>>,
}

fn supersedes(new: (u64, bool), old: (u64, bool)) -> bool {
    new.0 > old.0 || (new.0 == old.0 && new.1 && !old.1)
}

fn config_state(head: &ConfigHead) -> (u64, bool) {
    (head.latest.version, head.deleted)
}

fn flag_state(head: &FlagHead) -> (u64, bool) {
    (head.latest.version, head.deleted)
}

impl CachedStore {
    /// Wraps `inner`, loading every config head into memory.
    pub async fn load(inner: Arc<dyn Store>) -> Result<Self> {
        Self::load_bounded(inner, usize::MAX).await
    }

    /// Wraps `inner`, loading at most `max_configs` heads into memory.
    pub async fn load_bounded(inner: Arc<dyn Store>, max_configs: usize) -> Result<Self> {
        let max_configs = max_configs.max(1);
        let all = DocumentStore::<ConfigDocument>::heads(&*inner).await?;
        let complete = all.len() <= max_configs;
        let heads = all
            .into_iter()
            .take(max_configs)
            .map(|head| (head.latest.id.clone(), head))
            .collect();
        let flags = FlagSet {
            heads: DocumentStore::<FlagDefinition>::heads(&*inner)
                .await?
                .into_iter()
                .map(|head| (head.latest.id.clone(), head))
                .collect(),
        };
        let tokens = tokens_by_hash(inner.tokens().await?);
        let secrets = DashMap::new();
        for head in DocumentStore::<SecretDocument>::heads(&*inner).await? {
            let stages = SecretStages::load(&*inner, &head).await?.map(Arc::new);
            secrets.insert(head.latest.id.clone(), CachedSecret { head, stages });
        }
        let registry: DashMap<ServiceName, Arc<ServiceInstances>> = DashMap::new();
        for instance in inner.instances(None).await? {
            let mut entry = registry.entry(instance.service_name.clone()).or_default();
            Arc::make_mut(&mut entry).insert(instance.instance_id.clone(), instance);
        }
        Ok(CachedStore {
            inner,
            heads,
            degraded: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            max_configs,
            complete: AtomicBool::new(complete),
            skipped: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            flags: RwLock::new(Arc::new(flags)),
            tokens: RwLock::new(Arc::new(tokens)),
            secrets,
            token_changes: AtomicU64::new(0),
            registry,
            schemas: DashMap::default(),
            schema_changes: AtomicU64::new(0),
        })
    }

    /// Runs a call to the inner store and notes what it says about the database: unavailable
    /// marks the cache degraded; an answer from the database clears the mark, unless another
    /// call failed after this one began (its evidence is newer). Other errors say nothing
    /// about the database and change nothing.
    async fn observed<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let failures_before = self.failures.load(Ordering::Acquire);
        let result = call.await;
        match &result {
            Err(Error::Unavailable { .. }) => self.note_unavailable(),
            Ok(_)
            | Err(
                Error::NotFound { .. }
                | Error::VersionConflict { .. }
                | Error::ConcurrentModification { .. }
                | Error::Conflict { .. },
            ) => {
                if self.failures.load(Ordering::Acquire) == failures_before {
                    self.degraded.store(false, Ordering::Release);
                }
            }
            Err(_) => {}
        }
        result
    }

    fn note_unavailable(&self) {
        self.failures.fetch_add(1, Ordering::AcqRel);
        self.degraded.store(true, Ordering::Release);
    }

    /// Brings the cached head of `id` up to the store's, keeping whichever is later.
    pub async fn reload(&self, id: &ConfigId) -> Result<()> {
        let skipped = self.skipped.load(Ordering::SeqCst);
        match self.observed(self.configs().head(id)).await? {
            Some(head) => self.remember_unless_skipped(skipped, head),
            None => {
                self.heads.remove(id);
            }
        }
        Ok(())
    }

    /// Brings the cached head of flag `key` up to the store's, keeping whichever is later.
    pub async fn reload_flag(&self, key: &FlagKey) -> Result<()> {
        match self.observed(self.flag_store().head(key)).await? {
            Some(head) => self.remember_flag(head),
            None => self.forget_flag(key),
        }
        Ok(())
    }

    /// Replaces the cached tokens with the store's (tokens are few).
    pub async fn reload_tokens(&self) -> Result<()> {
        loop {
            let seen = self.token_changes.load(Ordering::Acquire);
            let fetched = tokens_by_hash(self.observed(self.inner.tokens()).await?);
            let mut tokens = self.tokens.write();
            // Changed while fetching: this snapshot may predate that change, so fetch again.
            if self.token_changes.load(Ordering::Acquire) == seen {
                *tokens = Arc::new(fetched);
                self.token_changes.fetch_add(1, Ordering::AcqRel);
                return Ok(());
            }
        }
    }

    /// Applies `change` to a copy of the cached tokens and swaps it in.
    fn change_tokens(&self, change: impl FnOnce(&mut TokenMap)) {
        let mut tokens = self.tokens.write();
        let mut next = TokenMap::clone(&tokens);
        change(&mut next);
        *tokens = Arc::new(next);
        self.token_changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Applies a change committed anywhere (this replica or another) to the cache.
    pub async fn apply_change(&self, event: &ChangeEvent) -> Result<()> {
        if event.is_flag() {
            return self.apply_flag_change(event).await;
        }
        if event.kind.is_token() {
            return self.reload_tokens().await;
        }
        if event.kind.is_instance() {
            return self.apply_instance_change(event).await;
        }
        if event.kind == kind::SECRET_UPDATED || event.kind == kind::SECRET_DELETED {
            return self.apply_secret_change(event).await;
        }
        if event.kind == kind::SECRET_REWRAPPED {
            // Same version, another wrapping: only the store knows which is newer.
            return self
                .reload_secret(&SecretName::parse(&event.config_id)?)
                .await;
        }
        if event.kind == kind::SCHEMA_UPDATED {
            self.forget_schema(&ConfigId::parse(&event.config_id)?);
            return Ok(());
        }
        if event.kind != kind::CONFIG_UPDATED && event.kind != kind::CONFIG_DELETED {
            return Ok(());
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
                // A read of this config may be fetching it right now, from before this change:
                // it keeps what it read only if nothing was skipped meanwhile. One that kept it
                // just before this count moved is found by looking again, and brought up to date.
                self.skipped.fetch_add(1, Ordering::SeqCst);
                !self.heads.contains_key(&id)
            }
            None => false,
        };
        if up_to_date {
            return Ok(());
        }
        self.reload(&id).await
    }

    /// The schema a write of `id` is validated against: the entry kept, else read and kept
    /// unless a schema changed meanwhile.
    pub(super) async fn known_schema(&self, id: &ConfigId) -> Result<Option<Arc<KnownSchema>>> {
        if let Some(known) = self.schemas.get(id) {
            return Ok(known.clone());
        }
        let seen = self.schema_changes.load(Ordering::Acquire);
        let read = self.observed(self.inner.schema(id)).await?;
        let known = read.map(|schema| Arc::new(KnownSchema::new(schema)));
        if self.schemas.len() < self.max_configs {
            // The entry holds its shard's lock: a change counted after this check removes
            // its entry only once this insert is done.
            let entry = self.schemas.entry(id.clone());
            if self.schema_changes.load(Ordering::Acquire) == seen {
                entry.insert(known.clone());
            }
        }
        Ok(known)
    }

    /// Forgets the schema kept for `id` (it changed, here or through another replica).
    pub(super) fn forget_schema(&self, id: &ConfigId) {
        self.schema_changes.fetch_add(1, Ordering::AcqRel);
        self.schemas.remove(id);
    }

    /// Every flag is cached, so a flag the cache lacks is reloaded whatever the event.
    async fn apply_flag_change(&self, event: &ChangeEvent) -> Result<()> {
        let key = FlagKey::parse(&event.config_id)?;
        let up_to_date = self.flags.read().heads.get(&key).is_some_and(|cached| {
            cached.latest.version > event.version
                || (cached.latest.version == event.version
                    && (cached.deleted || event.kind == kind::FLAG_UPDATED))
        });
        if up_to_date {
            return Ok(());
        }
        self.reload_flag(&key).await
    }

    fn configs(&self) -> &dyn DocumentStore<ConfigDocument> {
        &*self.inner
    }

    fn flag_store(&self) -> &dyn DocumentStore<FlagDefinition> {
        &*self.inner
    }

    /// Every secret is cached: one the cache lacks, or holds at an older state, is reloaded.
    async fn apply_secret_change(&self, event: &ChangeEvent) -> Result<()> {
        let name = SecretName::parse(&event.config_id)?;
        let up_to_date = self.secrets.get(&name).is_some_and(|cached| {
            let cached = &cached.head;
            cached.latest.version > event.version
                || (cached.latest.version == event.version
                    && (cached.deleted || event.kind == kind::SECRET_UPDATED))
        });
        if !up_to_date {
            self.reload_secret(&name).await?;
        }
        Ok(())
    }

    /// Brings the cached head and stages of secret `name` up to the store's, keeping whichever
    /// is later.
    pub async fn reload_secret(&self, name: &SecretName) -> Result<()> {
        match self.observed(self.secret_store().head(name)).await? {
            Some(head) => {
                let stages = self
                    .observed(SecretStages::load(self.secret_store(), &head))
                    .await?;
                self.remember_secret(CachedSecret {
                    head,
                    stages: stages.map(Arc::new),
                });
            }
            None => {
                self.secrets.remove(name);
            }
        }
        Ok(())
    }

    /// Keeps the later of the cached and the given secret; at the same state the given one,
    /// read from the store after the cached one (a re-wrap changes a version in place).
    fn remember_secret(&self, secret: CachedSecret) {
        let name = secret.head.latest.id.clone();
        let mut entry = self.secrets.entry(name).or_insert_with(|| secret.clone());
        let state = |s: &CachedSecret| (s.head.latest.version, s.head.deleted);
        if !supersedes(state(&entry), state(&secret)) {
            *entry = secret;
        }
    }

    /// After a committed write of secret `name`: its new head and stages, read back (secret
    /// writes are rare; the stages need older versions). A failure to read them leaves the
    /// earlier ones, marked stale by the degraded state, until the next change reloads them.
    pub(super) async fn restage_after_write(&self, name: &SecretName) {
        if let Err(error) = self.reload_secret(name).await {
            tracing::warn!(secret = %name, %error, "re-reading a secret after its write failed");
        }
    }

    fn secret_store(&self) -> &dyn DocumentStore<SecretDocument> {
        &*self.inner
    }

    /// Records that every change up to `revision` is reflected in the cache.
    pub fn mark_applied(&self, revision: u64) {
        self.applied.fetch_max(revision, Ordering::Release);
    }

    pub fn cached_configs(&self) -> usize {
        self.heads.len()
    }

    /// A conflict means the store moved past what the cache holds (another writer, or a commit
    /// whose caller went away): `refresh` (run only then) reloads the head of `subject` so the
    /// next attempt sees the truth.
    async fn refreshing_on_conflict(
        &self,
        subject: &str,
        write: impl Future<Output = Result<Committed>>,
        refresh: impl Future<Output = Result<()>>,
    ) -> Result<Committed> {
        let result = self.observed(write).await;
        if let Err(Error::VersionConflict { .. } | Error::ConcurrentModification { .. }) = &result
            && let Err(error) = refresh.await
        {
            tracing::warn!(%subject, %error, "could not refresh a cached head");
        }
        result
    }

    /// Keeps the later of the cached and the given head.
    /// Keeps `head`, read by a fetch that began when the skipped count was `before`, unless a
    /// change was skipped since: it may be newer than what was read, so the config is left
    /// out of the cache (the next read fetches it) rather than kept stale.
    pub(super) fn remember_unless_skipped(&self, before: u64, head: ConfigHead) {
        if self.skipped.load(Ordering::SeqCst) == before {
            self.remember(head);
        } else {
            self.heads.remove(&head.latest.id);
        }
    }

    fn remember(&self, head: ConfigHead) {
        let id = head.latest.id.clone();
        if !self.heads.contains_key(&id) && self.heads.len() >= self.max_configs {
            self.evict_one_except(&id);
        }
        let mut entry = self.heads.entry(id).or_insert_with(|| head.clone());
        if supersedes(config_state(&head), config_state(&entry)) {
            *entry = head;
        }
    }

    /// Keeps the later of the cached and the given flag head. Readers are not blocked while
    /// the new set is built (an upgradable read admits them; it also serialises writers).
    fn remember_flag(&self, head: FlagHead) {
        let flags = self.flags.upgradable_read();
        if let Some(cached) = flags.heads.get(&head.latest.id)
            && !supersedes(flag_state(&head), flag_state(cached))
        {
            return;
        }
        let mut next = FlagSet::clone(&flags);
        next.heads.insert(head.latest.id.clone(), head);
        *RwLockUpgradableReadGuard::upgrade(flags) = Arc::new(next);
    }

    fn forget_flag(&self, key: &FlagKey) {
        let flags = self.flags.upgradable_read();
        if !flags.heads.contains_key(key) {
            return;
        }
        let mut next = FlagSet::clone(&flags);
        next.heads.remove(key);
        *RwLockUpgradableReadGuard::upgrade(flags) = Arc::new(next);
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
