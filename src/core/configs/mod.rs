//! `ConfigService`: the config operations both transports call, split by concern (writes,
//! reads, schemas, applied state and drift, watching). No HTTP, gRPC or SQL types here.

mod applied;
mod reads;
mod schemas;
mod watching;
mod writes;

pub use applied::{AppliedReport, DriftReport};
pub use reads::{DiffResult, EffectiveConfig, EffectiveQuery};
pub use schemas::ValidationReport;

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use tracing::Instrument;

use crate::core::approvals::model::ChangeRequest;
use crate::core::deployments::Serving;
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeBus, ChangeEvent};
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::{ConfigHead, ConfigVersion};
use crate::core::ports::Documents;
use crate::core::ports::{Committed, ReadCache, Storage, Store};
use crate::core::secrets::SecretResolver;
use crate::core::watch::Watchers;

const WRITE_LOCK_SHARDS: usize = 64;

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// An instance that has not reported for this long is `stale`.
    pub stale_after: Duration,
    /// Events buffered per watcher before it is caught up from the change log instead.
    pub watch_buffer: usize,
    /// Concurrent watchers; more are refused as unavailable.
    pub max_watchers: usize,
    /// Approvals a change needs, by protected environment; others are applied at once.
    pub protected_environments: BTreeMap<String, u32>,
    /// Environments where a new version is served only through a deployment.
    pub deployment_environments: Vec<Environment>,
}

/// What a write did: committed, or (touching a protected environment) waiting for approvals.
#[derive(Debug, Clone)]
pub enum Written<T> {
    Done(T),
    Pending(Box<ChangeRequest>),
}

impl<T> Written<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Written<U> {
        match self {
            Written::Done(done) => Written::Done(f(done)),
            Written::Pending(request) => Written::Pending(request),
        }
    }

    /// What a write applying an approved request made (it asks for no further approval).
    pub fn done(self) -> Result<T> {
        match self {
            Written::Done(done) => Ok(done),
            Written::Pending(request) => Err(Error::internal(format!(
                "applying an approved request asked for another ({})",
                request.id
            ))),
        }
    }
}

/// Page size of list operations: 50 when not given, at most 500.
pub fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(50),
        Some(limit @ 1..=500) => Ok(limit),
        Some(_) => Err(Error::invalid("limit", "limit must be between 1 and 500")),
    }
}

pub struct ConfigService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cache: Arc<dyn ReadCache>,
    bus: ChangeBus,
    secrets: SecretResolver,
    write_locks: Vec<tokio::sync::Mutex<()>>,
    watchers: Watchers,
    /// Which version each instance is served where deployments are required.
    serving: Arc<Serving>,
    pub(crate) settings: ServiceSettings,
}

/// A config's head: from the read cache without I/O; only a miss takes the asynchronous path
/// to the store.
pub(crate) async fn cached_or_stored_head(
    cache: &dyn ReadCache,
    store: &dyn Store,
    id: &ConfigId,
) -> Result<Option<ConfigHead>> {
    static HITS: std::sync::LazyLock<[metrics::Counter; 2]> = std::sync::LazyLock::new(|| {
        ["hit", "miss"]
            .map(|result| metrics::counter!("summit_cache_requests_total", "result" => result))
    });
    match cache.cached_head(id) {
        Some(head) => {
            HITS[0].increment(1);
            Ok(Some(head))
        }
        None => {
            HITS[1].increment(1);
            store.configs().head(id).await
        }
    }
}

/// The longest a write waits for this replica's cache to catch up with the database.
const CATCH_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Timestamps are kept to the microsecond, the precision every store keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl ConfigService {
    pub fn new(storage: Storage, secrets: SecretResolver, settings: ServiceSettings) -> Self {
        let serving = Arc::new(Serving::new(
            storage.store.clone(),
            settings.deployment_environments.clone(),
        ));
        ConfigService {
            serving,
            store: storage.store,
            cache: storage.cache,
            bus: ChangeBus::new(settings.watch_buffer.max(1024)),
            secrets,
            watchers: Watchers::new(settings.max_watchers, settings.watch_buffer),
            write_locks: (0..WRITE_LOCK_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            settings,
        }
    }

    /// Runs a commit to its end even if the caller goes away (a dropped request must not leave
    /// the store committed and the cache and watchers uninformed), then publishes its event.
    pub(crate) async fn commit<F>(&self, commit: F) -> Result<Committed>
    where
        F: Future<Output = Result<Committed>> + Send + 'static,
    {
        // With replicas, the follower publishes every change (this replica's too) once the
        // cache holds it, so watchers never run ahead of what reads here return.
        let bus = (!self.store.shared_by_replicas()).then(|| self.bus.clone());
        // Spawned, so a caller that goes away does not cut a commit short; in the caller's
        // span, so the commit shows in its trace.
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                let committed = commit.await?;
                if let Some(bus) = bus {
                    for event in committed.events() {
                        bus.publish(event.clone());
                    }
                }
                Ok(committed)
            }
            .instrument(span),
        )
        .await
        .map_err(|join| Error::internal(format!("commit task failed: {join}")))?
    }

    /// Writes fail fast while a shared database is known to be down (the replication follower
    /// notices when it is back); they are not queued or retried behind the caller's back.
    pub(crate) fn ensure_writable(&self) -> Result<()> {
        if self.store.shared_by_replicas() && self.cache.degraded() {
            return Err(Error::Unavailable {
                reason: "the configuration store is unavailable; writes are refused until it \
                         answers again (reads are served from cache)"
                    .into(),
            });
        }
        Ok(())
    }

    /// On replicas: waits until this process's cache shows every change the database has
    /// now (another replica's write a moment ago included), at most `CATCH_UP_LIMIT`; for a
    /// write that found nothing in the cache and can ask the database nothing narrower.
    pub(crate) async fn catch_up(&self) -> Result<()> {
        let Some(mut readable) = self.cache.readable_revision() else {
            return Ok(());
        };
        let latest = self.store.latest_revision().await?;
        let deadline = tokio::time::Instant::now() + CATCH_UP_LIMIT;
        while readable < latest {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    reason: "this replica has not read the latest changes yet; retry".into(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            readable = self.cache.readable_revision().unwrap_or(u64::MAX);
        }
        Ok(())
    }

    /// Serialises writes to one config within this process.
    async fn lock(&self, id: &ConfigId) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        self.write_locks[(hasher.finish() as usize) % WRITE_LOCK_SHARDS]
            .lock()
            .await
    }

    async fn live_version(&self, id: &ConfigId) -> Result<Arc<ConfigVersion>> {
        match self.store.configs().head(id).await? {
            Some(head) if !head.deleted => Ok(head.latest),
            _ => Err(Error::not_found("config", id.as_str())),
        }
    }

    /// Which version each instance is served where deployments are required.
    pub fn serving(&self) -> &Serving {
        &self.serving
    }

    pub(crate) fn serving_handle(&self) -> Arc<Serving> {
        self.serving.clone()
    }

    pub async fn latest_revision(&self) -> Result<u64> {
        self.store.latest_revision().await
    }

    /// Publishes an event committed elsewhere (e.g. by another replica) to local watchers.
    /// Committed changes as this process publishes them (lossy: a laggard reads the log).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<ChangeEvent>> {
        self.bus.subscribe()
    }

    pub fn publish(&self, event: ChangeEvent) {
        self.bus.publish(event);
    }

    /// The database did not answer lately: reads answered from the cache may be out of date.
    pub fn serving_stale(&self) -> bool {
        self.cache.degraded()
    }

    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await
    }
}
