//! Change streams and the snapshot a new watcher starts from.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;

use super::{ConfigService, cached_or_stored_head};
use crate::core::access::Caller;

use crate::core::deployments::Serving;
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, kind};
use crate::core::ids::ConfigId;
use crate::core::model::ConfigVersion;
use crate::core::ports::{ReadCache, Storage, Store};
use crate::core::watch::{WatchFilter, WatchStream, watch};

impl ConfigService {
    /// Change events matching `filter`, from `from_revision` (exclusive) or from now on;
    /// gap-free and duplicate-free, backed by the store's change log.
    pub async fn watch(
        &self,
        caller: &Caller,
        filter: WatchFilter,
        from_revision: Option<u64>,
    ) -> Result<WatchStream> {
        self.watch_knowing(caller, filter, from_revision, from_revision.is_none())
            .await
    }

    /// `watch` after `from` for a client just sent a snapshot as of `from` (gRPC's): an
    /// instance's stream starts knowing what the instance is served, as a fresh stream does, so
    /// its first config event is a real change.
    pub async fn watch_after_snapshot(
        &self,
        caller: &Caller,
        filter: WatchFilter,
        from: u64,
    ) -> Result<WatchStream> {
        self.watch_knowing(caller, filter, Some(from), true).await
    }

    async fn watch_knowing(
        &self,
        caller: &Caller,
        filter: WatchFilter,
        from_revision: Option<u64>,
        knows_served: bool,
    ) -> Result<WatchStream> {
        filter.authorize(caller)?;
        let mut filter = filter;
        filter.hide_instances = caller.require_readable_environment(None).is_err();
        let instance = filter.instance_id.clone().zip(filter.environment.clone());
        // A resuming stream starts knowing nothing of what the instance runs: the first change
        // it replays for a config says what it is served now.
        let config_ids = if knows_served {
            filter.config_ids.clone()
        } else {
            Vec::new()
        };
        let stream = watch(
            Storage {
                store: self.store.clone(),
                cache: self.cache.clone(),
            },
            &self.bus,
            &self.watchers,
            filter,
            from_revision,
        )
        .await?;
        match instance {
            Some((instance, environment)) if self.serving.requires_deployments(&environment) => {
                Ok(self
                    .served_changes(stream, instance, environment, &config_ids)
                    .await)
            }
            _ => Ok(stream),
        }
    }

    /// An instance's stream where deployments are required: its config changes are the
    /// versions it is served — a `config.updated` naming the version whenever the version served
    /// to it changes (a write that is not released to it, or a deployment step that does not
    /// target it, is no change for it); the deployments' own events are left out.
    async fn served_changes(
        &self,
        stream: WatchStream,
        instance: String,
        environment: String,
        config_ids: &[String],
    ) -> WatchStream {
        let watcher = Arc::new(InstanceWatcher {
            serving: self.serving.clone(),
            cache: self.cache.clone(),
            store: self.store.clone(),
            instance,
            environment,
            served: parking_lot::Mutex::new(HashMap::new()),
        });
        // What the instance is served now, so that the first change it hears is a real one.
        for id in config_ids {
            if let Ok(id) = ConfigId::parse(id)
                && let Ok(Some(version)) = watcher.served_now(&id).await
            {
                watcher
                    .served
                    .lock()
                    .insert(id.to_string(), version.version);
            }
        }
        Box::pin(stream.filter_map(move |item| {
            let watcher = watcher.clone();
            async move {
                match item {
                    Ok(event) => watcher.judge(event).await,
                    Err(error) => Some(Err(error)),
                }
            }
        }))
    }

    /// The current state of every config `filter` matches, as `config.updated` events at
    /// `revision`, read from the database (a replica's cache may lag the revision just read).
    pub async fn watch_snapshot(
        &self,
        caller: &Caller,
        filter: &WatchFilter,
        revision: u64,
    ) -> Result<Vec<ChangeEvent>> {
        filter.authorize(caller)?;
        if !filter.wants_configs() {
            return Ok(Vec::new());
        }
        let heads = if filter.config_ids.is_empty() || filter.prefix.is_some() {
            self.cache.fresh_heads().await?
        } else {
            let mut heads = Vec::new();
            for id in &filter.config_ids {
                heads.extend(self.cache.fresh_head(&ConfigId::parse(id)?).await?);
            }
            heads
        };
        let environment = filter.environment.as_deref();
        let instance = filter.instance_id.as_deref();
        Ok(heads
            .into_iter()
            .filter(|head| !head.deleted)
            .map(|head| {
                // Where deployments are required: the version served there (to the instance).
                let version = self.serving.served(&head.latest, environment, instance);
                ChangeEvent {
                    revision,
                    kind: kind::CONFIG_UPDATED,
                    config_id: version.id.to_string(),
                    version: version.version,
                    checksum: version.checksum.clone(),
                    actor: version.metadata.actor.clone(),
                    message: version.metadata.message.clone(),
                    at: version.created_at,
                    environments: Vec::new(),
                    details: Default::default(),
                }
            })
            .filter(|event| filter.matches(event))
            .collect())
    }
}

/// What an instance's stream knows: the version it was last told of, per config.
struct InstanceWatcher {
    serving: Arc<Serving>,
    cache: Arc<dyn ReadCache>,
    store: Arc<dyn Store>,
    instance: String,
    environment: String,
    served: parking_lot::Mutex<HashMap<String, u64>>,
}

impl InstanceWatcher {
    /// The version of `id` the instance is served now (`None`: absent or deleted).
    async fn served_now(&self, id: &ConfigId) -> Result<Option<Arc<ConfigVersion>>> {
        let head = cached_or_stored_head(&*self.cache, &*self.store, id).await?;
        Ok(head.filter(|h| !h.deleted).map(|head| {
            self.serving
                .served(&head.latest, Some(&self.environment), Some(&self.instance))
        }))
    }

    /// `event` as this instance should hear it, if at all.
    async fn judge(&self, event: Arc<ChangeEvent>) -> Option<Result<Arc<ChangeEvent>>> {
        if event.kind == kind::CONFIG_DELETED {
            self.served.lock().remove(&event.config_id);
            return Some(Ok(event));
        }
        if event.kind != kind::CONFIG_UPDATED && !event.kind.is_deployment() {
            return Some(Ok(event));
        }
        if event.kind.is_deployment() {
            // The change log may show the change before what is served reflects it.
            self.serving.applied_up_to(event.revision).await;
        }
        let id = match ConfigId::parse(&event.config_id) {
            Ok(id) => id,
            Err(error) => return Some(Err(error)),
        };
        let version = match self.served_now(&id).await {
            Ok(version) => version?,
            Err(error) => return Some(Err(error)),
        };
        let told = self
            .served
            .lock()
            .insert(event.config_id.clone(), version.version);
        if told == Some(version.version) {
            return None;
        }
        // The event's patch describes the version it names; another version carries none.
        let details = if event.version == version.version && event.kind == kind::CONFIG_UPDATED {
            event.details.clone()
        } else {
            Default::default()
        };
        Some(Ok(Arc::new(ChangeEvent {
            kind: kind::CONFIG_UPDATED,
            version: version.version,
            checksum: version.checksum.clone(),
            details,
            ..Arc::unwrap_or_clone(event)
        })))
    }
}
