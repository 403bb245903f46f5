//! Change streams and the snapshot a new watcher starts from.

use super::ConfigService;
use crate::core::access::Caller;

use crate::core::error::{Error, Result};
use crate::core::events::{ChangeEvent, kind};
use crate::core::ids::ConfigId;
use crate::core::ports::Storage;
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
        filter.authorize(caller)?;
        let permit = self
            .watchers
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Unavailable {
                reason: format!(
                    "the server already serves {} watchers; retry later",
                    self.settings.max_watchers
                ),
            })?;
        watch(
            Storage {
                store: self.store.clone(),
                cache: self.cache.clone(),
            },
            &self.bus,
            filter,
            from_revision,
            self.settings.watch_buffer,
            permit,
        )
        .await
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
        Ok(heads
            .into_iter()
            .filter(|head| !head.deleted)
            .map(|head| ChangeEvent {
                revision,
                kind: kind::CONFIG_UPDATED,
                config_id: head.latest.id.to_string(),
                version: head.latest.version,
                checksum: head.latest.checksum.clone(),
                actor: head.latest.metadata.actor.clone(),
                message: head.latest.metadata.message.clone(),
                at: head.latest.created_at,
            })
            .filter(|event| filter.matches(event))
            .collect())
    }
}
