//! Resumable change streams: live events from the in-process bus, with gaps (missed, lagged
//! or out-of-order events) filled from the store's change log, so a watcher sees every
//! revision exactly once and in order.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::access::{Caller, Permission};
use super::error::{Error, Result};
use super::events::{ChangeBus, ChangeEvent};
use super::ids::{ConfigId, Environment, FlagKey, InstanceId, ServiceName};
use super::ports::{ReadCache, Storage, Store};

const CATCH_UP_BATCH: u32 = 512;

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<ChangeEvent>> + Send>>;

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

impl WatchFilter {
    /// A filter from what a client named, checked alike for every transport: config ids and
    /// flag keys must be valid, the prefix at most `MAX_PREFIX_BYTES`.
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
        let config_ids = config_ids
            .iter()
            .map(|id| ConfigId::parse(id.trim()).map(String::from))
            .collect::<Result<Vec<_>>>()?;
        let flag_keys = flag_keys
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
        self.services = services
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
    /// Boxed: a channel allocates its first block of slots up front, and with thousands of
    /// watchers small slots matter.
    out: mpsc::Sender<Box<Result<ChangeEvent>>>,
}

/// Why a watcher stopped: the consumer left, or the store failed (already reported).
struct Stop;

impl Watcher {
    async fn send(&mut self, mut event: ChangeEvent) -> std::result::Result<(), Stop> {
        self.cursor = event.revision;
        if self.filter.matches(&event) {
            if self.filter.hide_instances {
                event.details.affected_instances = None;
            }
            self.out.send(Box::new(Ok(event))).await.map_err(|_| Stop)?;
        }
        Ok(())
    }

    async fn catch_up(&mut self) -> std::result::Result<(), Stop> {
        // Not past what this process's reads reflect (replicas): the rest arrives live once
        // the follower has applied it.
        let limit = self.cache.readable_revision().unwrap_or(u64::MAX);
        loop {
            let batch = match self.store.changes_since(self.cursor, CATCH_UP_BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    let _ = self.out.send(Box::new(Err(error))).await;
                    return Err(Stop);
                }
            };
            let full = batch.len() == CATCH_UP_BATCH as usize;
            for event in batch {
                if event.revision > limit {
                    return Ok(());
                }
                self.send(event).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn run(
        mut self,
        mut live: broadcast::Receiver<ChangeEvent>,
    ) -> std::result::Result<(), Stop> {
        self.catch_up().await?;
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) if event.revision <= self.cursor => {}
                    Ok(event) if event.revision == self.cursor + 1 => self.send(event).await?,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                () = self.out.closed() => return Err(Stop),
            }
        }
    }
}

/// Starts a watcher. Without `from_revision` it starts at the latest committed revision, read
/// before this returns, so a change committed after the call is never missed.
pub async fn watch(
    storage: Storage,
    bus: &ChangeBus,
    filter: WatchFilter,
    from_revision: Option<u64>,
    buffer: usize,
    permit: OwnedSemaphorePermit,
) -> Result<WatchStream> {
    // Subscribe before reading the cursor so nothing committed in between is missed.
    let live = bus.subscribe();
    let latest = storage.store.latest_revision().await?;
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
    let (out, rx) = mpsc::channel(buffer.max(1));
    let watcher = Watcher {
        store: storage.store,
        cache: storage.cache,
        filter,
        cursor,
        out,
    };
    tokio::spawn(async move {
        let _ = watcher.run(live).await;
        // The watcher's slot is free once it stops.
        drop(permit);
    });
    Ok(Box::pin(ReceiverStream::new(rx).map(|item| *item)))
}
