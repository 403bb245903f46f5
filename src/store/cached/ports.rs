//! The read cache as a store: every port, write-through, answering from memory what it holds.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::{CachedSecret, CachedStore};
use crate::core::access::model::{ApiToken, Denial};
use crate::core::approvals::model::ChangeRequest;
use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;
use crate::core::flags::{FlagDefinition, FlagHead, FlagSet, FlagVersion};
use crate::core::ids::{ConfigId, FlagKey, SecretName, ServiceName};
use crate::core::model::{
    AppliedState, AuditRecord, ConfigDocument, ConfigHead, ConfigVersion, SchemaVersion,
};
use crate::core::ports::{
    AccessStore, AppliedStore, AuditQuery, ChangeLog, ChangeRequestQuery, ChangeRequestStore,
    ChangeRequestWrite, Committed, CommittedHere, ConfigDeleteWrite, ConfigWrite, Database,
    DocumentStore, FlagDeleteWrite, FlagWrite, ReadCache, Record, Rewrap, SchemaStore, SchemaWrite,
    SecretDeleteWrite, SecretStore, SecretWrite, ServiceInstances, Store, TokenMap, TokenRevoke,
    TokenWrite,
};
use crate::core::secrets::model::{SecretDocument, SecretHead, SecretVersion};
use crate::core::secrets::stages::SecretStages;
use crate::core::validation::KnownSchema;

#[async_trait]
impl DocumentStore<ConfigDocument> for CachedStore {
    async fn head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        if let Some(head) = self.cached_head(id) {
            return Ok(Some(head));
        }
        let skipped = self.skipped.load(Ordering::SeqCst);
        let head = self.observed(self.configs().head(id)).await?;
        // A change skipped while this fetch ran may be newer than what it read: then serve the
        // answer but do not keep it.
        if let Some(head) = &head {
            self.remember_unless_skipped(skipped, head.clone());
        }
        Ok(head)
    }

    async fn heads(&self) -> Result<Vec<ConfigHead>> {
        if !self.complete.load(Ordering::Relaxed) {
            return self.observed(self.configs().heads()).await;
        }
        let mut heads: Vec<ConfigHead> = self.heads.iter().map(|e| e.value().clone()).collect();
        heads.sort_by(|a, b| a.latest.id.cmp(&b.latest.id));
        Ok(heads)
    }

    async fn version(&self, id: &ConfigId, version: u64) -> Result<Option<ConfigVersion>> {
        self.observed(self.configs().version(id, version)).await
    }

    async fn versions(
        &self,
        id: &ConfigId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>> {
        self.observed(self.configs().versions(id, before, limit))
            .await
    }

    async fn append(&self, write: ConfigWrite) -> Result<Committed> {
        let new_version = write.version.clone();
        let id = new_version.id.clone();
        let skipped = self.skipped.load(Ordering::SeqCst);
        // On a conflict the schema is read again too: another replica may have changed it
        // (its event not followed here yet), and the write's one retry must validate against it.
        let refresh = async {
            self.forget_schema(&id);
            self.reload(&id).await
        };
        let committed = self
            .refreshing_on_conflict(id.as_str(), self.configs().append(write), refresh)
            .await?;
        self.remember_unless_skipped(
            skipped,
            ConfigHead {
                latest: Arc::new(new_version.numbered(committed.version)),
                deleted: false,
            },
        );
        Ok(committed)
    }

    async fn delete(&self, write: ConfigDeleteWrite) -> Result<Committed> {
        let id = write.id.clone();
        let committed = self
            .refreshing_on_conflict(id.as_str(), self.configs().delete(write), self.reload(&id))
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
}

#[async_trait]
impl SchemaStore for CachedStore {
    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>> {
        self.observed(self.inner.schema(id)).await
    }

    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed> {
        let id = write.config_id.clone();
        let committed = self
            .refreshing_on_conflict(id.as_str(), self.inner.put_schema(write), self.reload(&id))
            .await;
        // Whatever the outcome (a failed commit may still have reached the database).
        self.forget_schema(&id);
        committed
    }
}

#[async_trait]
impl DocumentStore<SecretDocument> for CachedStore {
    async fn head(&self, name: &SecretName) -> Result<Option<SecretHead>> {
        Ok(self.secrets.get(name).map(|cached| cached.head.clone()))
    }

    async fn heads(&self) -> Result<Vec<SecretHead>> {
        let mut heads: Vec<SecretHead> = self
            .secrets
            .iter()
            .map(|e| e.value().head.clone())
            .collect();
        heads.sort_by(|a, b| a.latest.id.cmp(&b.latest.id));
        Ok(heads)
    }

    async fn version(&self, name: &SecretName, version: u64) -> Result<Option<SecretVersion>> {
        self.observed(self.secret_store().version(name, version))
            .await
    }

    async fn versions(
        &self,
        name: &SecretName,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<SecretVersion>> {
        self.observed(self.secret_store().versions(name, before, limit))
            .await
    }

    async fn append(&self, write: SecretWrite) -> Result<Committed> {
        let new_version = write.version.clone();
        let name = new_version.id.clone();
        let committed = self
            .refreshing_on_conflict(
                name.as_str(),
                self.secret_store().append(write),
                self.reload_secret(&name),
            )
            .await?;
        let latest = Arc::new(new_version.numbered(committed.version));
        // Usually the cached stages tell the new ones without I/O; else they are read back.
        let stages = match self.secrets.get(&name) {
            Some(cached) if cached.head.latest.version + 1 == latest.version => {
                match &cached.stages {
                    Some(stages) => stages.after(latest.clone()),
                    None => stages_of_first(&latest),
                }
            }
            Some(_) => None,
            None if latest.version == 1 => stages_of_first(&latest),
            None => None,
        };
        match stages {
            Some(stages) => self.remember_secret(CachedSecret {
                head: SecretHead {
                    latest,
                    deleted: false,
                },
                stages: Some(Arc::new(stages)),
            }),
            None => self.restage_after_write(&name).await,
        }
        Ok(committed)
    }

    async fn delete(&self, write: SecretDeleteWrite) -> Result<Committed> {
        let name = write.id.clone();
        let committed = self
            .refreshing_on_conflict(
                name.as_str(),
                self.secret_store().delete(write),
                self.reload_secret(&name),
            )
            .await?;
        // Deleted at once, without I/O: a failed read-back must not leave it resolvable.
        if let Some(mut cached) = self.secrets.get_mut(&name)
            && cached.head.latest.version == committed.version
        {
            cached.head.deleted = true;
            cached.stages = None;
        }
        self.restage_after_write(&name).await;
        Ok(committed)
    }
}

/// The stages of a secret whose only served version is `latest` (after a delete).
fn stages_of_first(latest: &Arc<SecretVersion>) -> Option<SecretStages> {
    (!latest.document.pending && latest.document.previous.is_none()).then(|| SecretStages {
        current: latest.clone(),
        previous: None,
        pending: None,
    })
}

#[async_trait]
impl SecretStore for CachedStore {
    async fn rewrap(&self, rewrap: Rewrap) -> Result<Committed> {
        let name = rewrap.name.clone();
        let committed = self
            .refreshing_on_conflict(
                name.as_str(),
                self.inner.rewrap(rewrap),
                self.reload_secret(&name),
            )
            .await?;
        // The cached head may be the version just re-wrapped.
        self.reload_secret(&name).await?;
        Ok(committed)
    }
}

#[async_trait]
impl DocumentStore<FlagDefinition> for CachedStore {
    async fn heads(&self) -> Result<Vec<FlagHead>> {
        // The set is ordered by key.
        Ok(self.flags.read().heads.values().cloned().collect())
    }

    async fn head(&self, key: &FlagKey) -> Result<Option<FlagHead>> {
        Ok(self.flags.read().heads.get(key).cloned())
    }

    async fn version(&self, key: &FlagKey, version: u64) -> Result<Option<FlagVersion>> {
        self.observed(self.flag_store().version(key, version)).await
    }

    async fn versions(
        &self,
        key: &FlagKey,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<FlagVersion>> {
        self.observed(self.flag_store().versions(key, before, limit))
            .await
    }

    async fn append(&self, write: FlagWrite) -> Result<Committed> {
        let new_version = write.version.clone();
        let key = new_version.id.clone();
        let committed = self
            .refreshing_on_conflict(
                key.as_str(),
                self.flag_store().append(write),
                self.reload_flag(&key),
            )
            .await?;
        self.remember_flag(FlagHead {
            latest: Arc::new(new_version.numbered(committed.version)),
            deleted: false,
        });
        Ok(committed)
    }

    async fn delete(&self, write: FlagDeleteWrite) -> Result<Committed> {
        let key = write.id.clone();
        let committed = self
            .refreshing_on_conflict(
                key.as_str(),
                self.flag_store().delete(write),
                self.reload_flag(&key),
            )
            .await?;
        // Only the version this delete removed: a newer one may already be cached (re-created
        // through another replica and applied by the follower meanwhile).
        let removed = self
            .flags
            .read()
            .heads
            .get(&key)
            .map(|head| head.latest.clone())
            .filter(|latest| latest.version == committed.version);
        if let Some(latest) = removed {
            self.remember_flag(FlagHead {
                latest,
                deleted: true,
            });
        }
        Ok(committed)
    }
}

#[async_trait]
impl AccessStore for CachedStore {
    async fn create_token(&self, write: TokenWrite) -> Result<Committed> {
        let token = Arc::new(write.token.clone());
        let committed = self.observed(self.inner.create_token(write)).await?;
        // Applied here at once, without I/O that could fail after the commit.
        self.change_tokens(|tokens| {
            tokens.insert(token.hash.clone(), token);
        });
        Ok(committed)
    }

    async fn revoke_token(&self, write: TokenRevoke) -> Result<Committed> {
        let (id, at) = (write.id.clone(), write.at);
        let result = self.observed(self.inner.revoke_token(write)).await;
        match &result {
            // Revoked at once here, without I/O that could fail after the commit.
            Ok(_) => self.change_tokens(|tokens| {
                if let Some(token) = tokens.values_mut().find(|t| t.id == id) {
                    Arc::make_mut(token).revoked_at = Some(at);
                }
            }),
            // The store knows better (e.g. created or revoked through another replica).
            Err(Error::NotFound { .. } | Error::Conflict { .. }) => {
                if let Err(error) = self.reload_tokens().await {
                    tracing::warn!(%error, "could not refresh the cached tokens");
                }
            }
            Err(_) => {}
        }
        result
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.observed(self.inner.tokens()).await
    }

    async fn record_denial(&self, denial: Denial) -> Result<()> {
        self.observed(self.inner.record_denial(denial)).await
    }

    async fn denials(&self, before: Option<u64>, limit: u32) -> Result<Vec<Denial>> {
        self.observed(self.inner.denials(before, limit)).await
    }
}

#[async_trait]
impl ChangeRequestStore for CachedStore {
    async fn put_change_request(&self, write: ChangeRequestWrite) -> Result<Committed> {
        self.observed(self.inner.put_change_request(write)).await
    }

    async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>> {
        self.observed(self.inner.change_request(id)).await
    }

    async fn change_requests(&self, query: ChangeRequestQuery) -> Result<Vec<ChangeRequest>> {
        self.observed(self.inner.change_requests(query)).await
    }
}

#[async_trait]
impl ChangeLog for CachedStore {
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        self.observed(self.inner.audit(query)).await
    }

    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.observed(self.inner.changes_since(revision, limit))
            .await
    }

    async fn record(&self, record: Record) -> Result<Committed> {
        self.observed(self.inner.record(record)).await
    }

    async fn latest_revision(&self) -> Result<u64> {
        self.observed(self.inner.latest_revision()).await
    }
}

#[async_trait]
impl AppliedStore for CachedStore {
    async fn record_applied(&self, state: AppliedState) -> Result<()> {
        self.observed(self.inner.record_applied(state)).await
    }

    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>> {
        self.observed(self.inner.applied(id)).await
    }

    async fn sweep_applied(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        self.observed(self.inner.sweep_applied(before)).await
    }
}

impl Store for CachedStore {}

#[async_trait]
impl Database for CachedStore {
    /// An outage it meets marks the cache degraded, but its answer clears nothing: the lease
    /// lives on a connection of its own, so it says nothing of whether the reads and the
    /// follower behind this cache are getting through.
    async fn lead_duties(&self) -> Result<bool> {
        let result = self.inner.lead_duties().await;
        if let Err(Error::Unavailable { .. }) = &result {
            self.note_unavailable();
        }
        result
    }

    fn shared_by_replicas(&self) -> bool {
        self.inner.shared_by_replicas()
    }

    async fn wait_for_change(&self, timeout: std::time::Duration) {
        self.inner.wait_for_change(timeout).await
    }

    /// Not observed: an answer from memory is no evidence about the database now.
    async fn committed_here(&self, revision: u64, limit: u32) -> Option<CommittedHere> {
        self.inner.committed_here(revision, limit).await
    }

    async fn ping(&self) -> Result<()> {
        self.observed(self.inner.ping()).await
    }
}

#[async_trait]
impl ReadCache for CachedStore {
    fn cached_head(&self, id: &ConfigId) -> Option<ConfigHead> {
        self.heads.get(id).map(|head| head.clone())
    }

    async fn schema_for_write(&self, id: &ConfigId) -> Result<Option<Arc<KnownSchema>>> {
        self.known_schema(id).await
    }

    async fn fresh_heads(&self) -> Result<Vec<ConfigHead>> {
        self.observed(self.configs().heads()).await
    }

    async fn fresh_head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        self.reload(id).await?;
        Ok(self.cached_head(id))
    }

    fn cached_secret(&self, name: &SecretName) -> Option<Arc<SecretStages>> {
        self.secrets
            .get(name)
            .and_then(|cached| cached.stages.clone())
    }

    fn cached_flags(&self) -> Arc<FlagSet> {
        self.flags.read().clone()
    }

    fn cached_tokens(&self) -> Arc<TokenMap> {
        self.tokens.read().clone()
    }

    fn cached_instances(&self, service: &ServiceName) -> Option<Arc<ServiceInstances>> {
        self.registry
            .get(service)
            .map(|entry| entry.value().clone())
    }

    fn cached_services(&self) -> Vec<(ServiceName, Arc<ServiceInstances>)> {
        self.registry_snapshot()
    }

    fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    fn readable_revision(&self) -> Option<u64> {
        self.inner
            .shared_by_replicas()
            .then(|| self.applied.load(Ordering::Acquire))
    }
}
