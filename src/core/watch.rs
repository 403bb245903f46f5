//! Resumable change streams: live events from the in-process bus, with gaps (missed, lagged
//! or out-of-order events) filled from the store's change log, so a watcher sees every
//! revision exactly once and in order.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::access::{Caller, Permission};
use super::error::{Error, Result};
use super::events::{ChangeBus, ChangeEvent};
use super::ids::{ConfigId, Environment, FlagKey, InstanceId, ServiceName};
use super::ports::{ReadCache, Storage, Store};

/// Change-log rows one catch-up read returns at most.
const CATCH_UP_BATCH: usize = 256;

/// Change-log reads the watchers of one service have in flight at once: however many watchers
/// catch up together, the rest of the database pool stays free for requests.
const CHANGE_LOG_READS: usize = 2;

/// Events of full catch-up batches kept for other watchers to share.
const SHARED_EVENTS: u64 = 4096;

/// Events are shared: every watcher of a live event holds the same allocation.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Arc<ChangeEvent>>> + Send>>;

/// What the watchers of one service share: their slots (`max_watchers`), the events each may
/// have buffered, and the change-log reads they may have in flight.
pub struct Watchers {
    slots: Arc<Semaphore>,
    max: usize,
    buffer: usize,
    log: Arc<SharedLog>,
}

impl Watchers {
    pub fn new(max: usize, buffer: usize) -> Watchers {
        Watchers {
            slots: Arc::new(Semaphore::new(max)),
            max,
            buffer: buffer.max(1),
            log: Arc::new(SharedLog {
                reads: Semaphore::new(CHANGE_LOG_READS),
                batches: moka::future::Cache::builder()
                    .weigher(|_, batch: &Arc<[Arc<ChangeEvent>]>| {
                        u32::try_from(batch.len()).unwrap_or(u32::MAX)
                    })
                    .max_capacity(SHARED_EVENTS)
                    .time_to_idle(std::time::Duration::from_secs(60))
                    .build(),
            }),
        }
    }

    /// A slot for one more watcher, or unavailable when every slot is taken.
    fn admit(&self) -> Result<OwnedSemaphorePermit> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Unavailable {
                reason: format!(
                    "the server already serves {} watchers; retry later",
                    self.max
                ),
            })
    }
}

/// The change log as watchers read it: a bounded number of reads in flight, and full batches
/// shared, so watchers resuming from the same revision (every client reconnecting after a
/// restart) read the log once and hold the same events.
struct SharedLog {
    reads: Semaphore,
    batches: moka::future::Cache<(u64, usize), Arc<[Arc<ChangeEvent>]>>,
}

impl SharedLog {
    async fn latest_revision(&self, store: &dyn Store) -> Result<u64> {
        let _reading = self.reads.acquire().await.map_err(Error::internal)?;
        store.latest_revision().await
    }

    /// Up to `rows` changes after `cursor`.
    async fn changes_since(
        &self,
        store: &dyn Store,
        cursor: u64,
        rows: usize,
    ) -> Result<Arc<[Arc<ChangeEvent>]>> {
        let key = (cursor, rows);
        if let Some(batch) = self.batches.get(&key).await {
            return Ok(batch);
        }
        let _reading = self.reads.acquire().await.map_err(Error::internal)?;
        // Another watcher may have read it while this one waited.
        if let Some(batch) = self.batches.get(&key).await {
            return Ok(batch);
        }
        let batch: Arc<[Arc<ChangeEvent>]> = store
            .changes_since(cursor, rows as u32)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        // Only a full batch is final: a short one grows as changes are committed.
        if batch.len() == rows {
            self.batches.insert(key, batch.clone()).await;
        }
        Ok(batch)
    }
}

/// Which changes a watcher wants: every change when nothing is named; otherwise config changes
/// of the named ids or prefix, and flag changes of the named keys (or of every flag).
#[derive(Debug, Clone, Default)]
pub struct WatchFilter {
    pub config_ids: Vec<String>,
    pub prefix: Option<String>,
    pub flag_keys: Vec<String>,
    pub all_flags: bool,
    /// The environment the watcher serves: checked against the caller's scope (every config
    /// change may affect every environment, so it does not filter).
    pub environment: Option<String>,
    /// Registry changes (`instance.*`) of these services; nobody receives them unless named.
    pub services: Vec<String>,
    /// Registry changes of every service.
    pub all_services: bool,
    /// The instance watching (with `environment`): where deployments are required, its config
    /// changes are the versions it is served (see `ConfigService::watch`).
    pub instance_id: Option<String>,
    /// Leave `affectedInstances` out of events: the watcher is limited to some environments
    /// and may not see the registry's instances of others (set by `ConfigService::watch`).
    pub hide_instances: bool,
}

/// The longest watch prefix (a longer one names no more than a config id would).
pub const MAX_PREFIX_BYTES: usize = 128;
/// The most config ids, flag keys or services one watch may name (a snapshot reads each one;
/// more is a prefix's or a second watch's job).
pub const MAX_WATCH_NAMES: usize = 1000;

/// `names` unless there are more than `MAX_WATCH_NAMES` of them.
fn at_most<'a, 'n>(names: &'a [&'n str], field: &str) -> Result<&'a [&'n str]> {
    if names.len() > MAX_WATCH_NAMES {
        return Err(Error::invalid(
            field,
            format!("a watch names at most {MAX_WATCH_NAMES} of these"),
        ));
    }
    Ok(names)
}

impl WatchFilter {
    /// A filter from what a client named, checked alike for every transport: config ids and
    /// flag keys must be valid and at most `MAX_WATCH_NAMES` each, the prefix at most
    /// `MAX_PREFIX_BYTES`.
    pub fn new(
        config_ids: &[&str],
        prefix: Option<&str>,
        flag_keys: &[&str],
        all_flags: bool,
        environment: Option<&str>,
    ) -> Result<WatchFilter> {
        if let Some(environment) = environment {
            Environment::parse_field(environment, "environment")?;
        }
        let config_ids = at_most(config_ids, "configId")?
            .iter()
            .map(|id| ConfigId::parse(id.trim()).map(String::from))
            .collect::<Result<Vec<_>>>()?;
        let flag_keys = at_most(flag_keys, "flagKey")?
            .iter()
            .map(|key| FlagKey::parse_field(key.trim(), "flagKey").map(String::from))
            .collect::<Result<Vec<_>>>()?;
        if prefix.is_some_and(|p| p.len() > MAX_PREFIX_BYTES) {
            return Err(Error::invalid(
                "prefix",
                format!("prefix must be at most {MAX_PREFIX_BYTES} bytes"),
            ));
        }
        Ok(WatchFilter {
            config_ids,
            prefix: prefix.filter(|p| !p.is_empty()).map(str::to_owned),
            flag_keys,
            all_flags,
            environment: environment.map(str::to_owned),
            services: Vec::new(),
            all_services: false,
            instance_id: None,
            hide_instances: false,
        })
    }

    /// Names the instance watching; it needs the environment it runs in.
    pub fn with_instance(mut self, instance: Option<&str>) -> Result<WatchFilter> {
        let Some(instance) = instance.filter(|i| !i.is_empty()) else {
            return Ok(self);
        };
        if self.environment.is_none() {
            return Err(Error::invalid(
                "instanceId",
                "instanceId needs the environment the instance runs in",
            ));
        }
        self.instance_id = Some(InstanceId::parse_field(instance, "instanceId")?.to_string());
        Ok(self)
    }

    /// Adds the registry's changes of `services` (or of every service) to what is watched.
    pub fn with_services(mut self, services: &[&str], all_services: bool) -> Result<WatchFilter> {
        self.services = at_most(services, "service")?
            .iter()
            .map(|name| ServiceName::parse_field(name.trim(), "service").map(String::from))
            .collect::<Result<Vec<_>>>()?;
        self.all_services = all_services;
        Ok(self)
    }

    /// What the caller must be allowed: reading, every id it names, and no id scope when the
    /// filter covers every config or every flag.
    pub fn authorize(&self, caller: &Caller) -> Result<()> {
        caller.require(Permission::Read)?;
        if self.is_everything() || self.all_flags {
            caller.require_unscoped_ids()?;
        }
        for id in self.config_ids.iter().chain(&self.flag_keys) {
            caller.require_resource(id)?;
        }
        if let Some(prefix) = &self.prefix {
            caller.require_prefix(prefix)?;
        }
        if let Some(environment) = &self.environment {
            caller.require_environment(environment)?;
        }
        if !self.services.is_empty() || self.all_services {
            // Registry events carry no environment to filter by.
            caller.require_readable_environment(None)?;
        }
        Ok(())
    }

    fn is_everything(&self) -> bool {
        self.config_ids.is_empty()
            && self.prefix.is_none()
            && self.flag_keys.is_empty()
            && !self.all_flags
            && self.services.is_empty()
            && !self.all_services
    }

    /// Whether configs are named at all (a flags-only watcher wants no config snapshot).
    pub fn wants_configs(&self) -> bool {
        self.is_everything() || !self.config_ids.is_empty() || self.prefix.is_some()
    }

    pub fn matches(&self, event: &ChangeEvent) -> bool {
        if event.kind.is_token() || event.kind.is_secret() || event.kind.is_webhook() {
            return false;
        }
        if event.kind.is_instance() {
            let service = event.config_id.split('/').next().unwrap_or_default();
            return self.all_services || self.services.iter().any(|s| s == service);
        }
        if self.is_everything() {
            return true;
        }
        if event.kind.is_strategy() {
            return false;
        }
        if event.is_flag() {
            return self.all_flags || self.flag_keys.contains(&event.config_id);
        }
        self.config_ids.contains(&event.config_id)
            || self
                .prefix
                .as_ref()
                .is_some_and(|p| event.config_id.starts_with(p.as_str()))
    }
}

struct Watcher {
    store: Arc<dyn Store>,
    cache: Arc<dyn ReadCache>,
    filter: WatchFilter,
    cursor: u64,
    /// Small items (a pointer): a channel allocates its first block of slots up front, and with
    /// thousands of watchers small slots matter.
    out: mpsc::Sender<std::result::Result<Arc<ChangeEvent>, Box<Error>>>,
    log: Arc<SharedLog>,
}

/// Why a watcher stopped: the consumer left, or the store failed (already reported).
struct Stop;

impl Watcher {
    /// `event` as this watcher passes it on, if it matches.
    fn passed(&self, mut event: Arc<ChangeEvent>) -> Option<Arc<ChangeEvent>> {
        if !self.filter.matches(&event) {
            return None;
        }
        if self.filter.hide_instances && event.details.affected_instances.is_some() {
            Arc::make_mut(&mut event).details.affected_instances = None;
        }
        Some(event)
    }

    async fn send(&mut self, event: Arc<ChangeEvent>) -> std::result::Result<(), Stop> {
        self.cursor = event.revision;
        if let Some(event) = self.passed(event) {
            self.out.send(Ok(event)).await.map_err(|_| Stop)?;
        }
        Ok(())
    }

    /// Fills the gap after the cursor from the change log. Each read waits until the consumer
    /// has taken everything buffered and returns no more than the buffer holds: a consumer
    /// that stalls leaves its watcher waiting with no rows and no database connection, and
    /// with at most one buffer of events read for it.
    async fn catch_up(&mut self) -> std::result::Result<(), Stop> {
        // Not past what this process's reads reflect (replicas): the rest arrives live once
        // the follower has applied it.
        let limit = self.cache.readable_revision().unwrap_or(u64::MAX);
        let rows = self.out.max_capacity().min(CATCH_UP_BATCH);
        loop {
            let mut room = self
                .out
                .reserve_many(self.out.max_capacity())
                .await
                .map_err(|_| Stop)?;
            let read = self
                .log
                .changes_since(&*self.store, self.cursor, rows)
                .await;
            let batch = match read {
                Ok(batch) => batch,
                Err(error) => {
                    if let Some(slot) = room.next() {
                        slot.send(Err(Box::new(error)));
                    }
                    return Err(Stop);
                }
            };
            let full = batch.len() == rows;
            for event in batch.iter() {
                if event.revision > limit {
                    return Ok(());
                }
                self.cursor = event.revision;
                if let Some(event) = self.passed(event.clone()) {
                    // As many slots as rows were read.
                    room.next().ok_or(Stop)?.send(Ok(event));
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn run(
        mut self,
        mut live: broadcast::Receiver<Arc<ChangeEvent>>,
    ) -> std::result::Result<(), Stop> {
        self.catch_up().await?;
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) if event.revision <= self.cursor => {}
                    Ok(event) if event.revision == self.cursor + 1 => self.send(event).await?,
                    Ok(_) => self.catch_up().await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        metrics::counter!("summit_watch_resyncs_total").increment(1);
                        self.catch_up().await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                () = self.out.closed() => return Err(Stop),
            }
        }
    }
}

/// Starts a watcher, or refuses it when every slot is taken. Without `from_revision` it starts
/// at the latest committed revision, read before this returns, so a change committed after the
/// call is never missed.
pub async fn watch(
    storage: Storage,
    bus: &ChangeBus,
    watchers: &Watchers,
    filter: WatchFilter,
    from_revision: Option<u64>,
) -> Result<WatchStream> {
    let permit = watchers.admit()?;
    // Subscribe before reading the cursor so nothing committed in between is missed.
    let live = bus.subscribe();
    let latest = watchers.log.latest_revision(&*storage.store).await?;
    let cursor = match from_revision {
        // A cursor from the future (e.g. from before a restore) would silence the stream.
        Some(revision) if revision > latest => {
            return Err(Error::invalid(
                "fromRevision",
                format!("revision {revision} is ahead of the latest revision {latest}"),
            ));
        }
        Some(revision) => revision,
        None => latest,
    };
    let (out, rx) = mpsc::channel(watchers.buffer);
    let watcher = Watcher {
        store: storage.store,
        cache: storage.cache,
        filter,
        cursor,
        out,
        log: watchers.log.clone(),
    };
    tokio::spawn(async move {
        let _ = watcher.run(live).await;
        // The watcher's slot is free once it stops.
        drop(permit);
    });
    Ok(Box::pin(
        ReceiverStream::new(rx).map(|item| item.map_err(|error| *error)),
    ))
}
