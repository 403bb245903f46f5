//! `FlagService`: flag reads and evaluation for both transports; its writes are in `writes.rs`.

use std::sync::Arc;

use super::evaluate::{Evaluation, EvaluationContext, evaluate};
use super::model::{FlagSet, FlagVersion};
use crate::core::access::{Caller, Permission};
use crate::core::error::{Error, Result};
use crate::core::ids::{Environment, FlagKey};
use crate::core::model::{AuditRecord, Page};
use crate::core::ports::{AuditSubject, Documents, ReadCache, Storage, Store};
use crate::core::service::ConfigService;

/// At most this many flags in one batch evaluation request.
pub const MAX_BATCH: usize = 1000;

/// Where an evaluation happens: the environment (its targeting) and the asking service.
#[derive(Debug, Clone, Default)]
pub struct EvaluationScope {
    pub environment: Option<Environment>,
    /// Bulk evaluation lists only flags meant for this service.
    pub service: Option<String>,
}

pub struct FlagService {
    pub(super) store: Arc<dyn Store>,
    pub(super) cache: Arc<dyn ReadCache>,
    /// Commits and publishes through the same path as config writes (one change log, one bus).
    pub(super) configs: Arc<ConfigService>,
    /// Flag writes are rare; one lock keeps the prerequisite-cycle check and the write atomic
    /// within this process.
    pub(super) write_lock: tokio::sync::Mutex<()>,
}

impl FlagService {
    pub fn new(storage: Storage, configs: Arc<ConfigService>) -> Self {
        FlagService {
            store: storage.store,
            cache: storage.cache,
            configs,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Every flag's head, from the read cache.
    pub async fn flag_set(&self) -> Result<Arc<FlagSet>> {
        Ok(self.cache.cached_flags())
    }

    pub async fn flag(&self, caller: &Caller, key: &FlagKey) -> Result<Arc<FlagVersion>> {
        caller.require_on(Permission::Read, key.as_str())?;
        self.flag_set()
            .await?
            .live(key.as_str())
            .cloned()
            .ok_or_else(|| Error::not_found("flag", key.as_str()))
    }

    /// Live flags by key, only those meant for `service` when given.
    pub async fn flags(
        &self,
        caller: &Caller,
        service: Option<&str>,
    ) -> Result<Vec<Arc<FlagVersion>>> {
        caller.require(Permission::Read)?;
        let set = self.flag_set().await?;
        Ok(live_flags(&set, service)
            .filter(|flag| caller.allows_resource(flag.id.as_str()))
            .cloned()
            .collect())
    }

    pub async fn versions(
        &self,
        caller: &Caller,
        key: &FlagKey,
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<FlagVersion>> {
        caller.require_on(Permission::Read, key.as_str())?;
        let items = self.store.flags().versions(key, cursor, limit).await?;
        if items.is_empty() && cursor.is_none() {
            return Err(Error::not_found("flag", key.as_str()));
        }
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|v| v.version))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    pub async fn version(
        &self,
        caller: &Caller,
        key: &FlagKey,
        version: u64,
    ) -> Result<FlagVersion> {
        caller.require_on(Permission::Read, key.as_str())?;
        self.stored_version(key, version).await
    }

    pub(super) async fn stored_version(&self, key: &FlagKey, version: u64) -> Result<FlagVersion> {
        self.store
            .flags()
            .version(key, version)
            .await?
            .ok_or_else(|| Error::not_found("flag version", format!("{key}@{version}")))
    }

    pub async fn audit(
        &self,
        caller: &Caller,
        key: &FlagKey,
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<AuditRecord>> {
        self.configs
            .audit(caller, Some(AuditSubject::Flag(key.clone())), cursor, limit)
            .await
    }

    /// One flag's evaluation; an unknown flag is a `FLAG_NOT_FOUND` evaluation, not an error.
    pub async fn evaluate(
        &self,
        caller: &Caller,
        key: &str,
        scope: &EvaluationScope,
        context: &EvaluationContext,
    ) -> Result<Evaluation> {
        caller.require_on(Permission::Read, key)?;
        caller.require_readable_environment(scope.environment.as_ref().map(Environment::as_str))?;
        let set = self.flag_set().await?;
        let environment = scope.environment.as_ref().map(Environment::as_str);
        Ok(match set.live(key) {
            Some(flag) => evaluate(&set, flag, environment, context),
            None => Evaluation::not_found(key),
        })
    }

    /// The named flags (in the order given), or every flag meant for the scope's service.
    /// Flags outside the caller's id scope are left out (named or not).
    pub async fn evaluate_many(
        &self,
        caller: &Caller,
        keys: Option<&[String]>,
        scope: &EvaluationScope,
        context: &EvaluationContext,
    ) -> Result<Vec<Evaluation>> {
        caller.require(Permission::Read)?;
        let environment = scope.environment.as_ref().map(Environment::as_str);
        caller.require_readable_environment(environment)?;
        let set = self.flag_set().await?;
        Ok(match keys {
            Some(keys) => keys
                .iter()
                .filter(|key| caller.allows_resource(key))
                .map(|key| match set.live(key) {
                    Some(flag) => evaluate(&set, flag, environment, context),
                    None => Evaluation::not_found(key),
                })
                .collect(),
            None => live_flags(&set, scope.service.as_deref())
                .filter(|flag| caller.allows_resource(flag.id.as_str()))
                .map(|flag| evaluate(&set, flag, environment, context))
                .collect(),
        })
    }

    /// Whether answers come from a cache while the database does not answer.
    pub fn serving_stale(&self) -> bool {
        self.configs.serving_stale()
    }
}

fn live_flags<'a>(
    set: &'a FlagSet,
    service: Option<&'a str>,
) -> impl Iterator<Item = &'a Arc<FlagVersion>> + 'a {
    set.heads
        .values()
        .filter(|head| !head.deleted)
        .map(|head| &head.latest)
        .filter(move |flag| match service {
            Some(service) => {
                flag.document.services.is_empty()
                    || flag.document.services.iter().any(|s| s == service)
            }
            None => true,
        })
}
