//! `StrategyService`: deployment strategies for both transports. Built-ins are read-only and
//! listed beside the stored ones; a stored strategy may not take a built-in's name.

use std::sync::Arc;

use serde::Serialize;

use super::strategy::{Strategy, StrategyVersion, built_ins};
use crate::core::access::{Caller, Permission};
use crate::core::configs::{ConfigService, now, page_limit};
use crate::core::error::{Error, Result};
use crate::core::ids::StrategyName;
use crate::core::model::{AuditDraft, Metadata};
use crate::core::ports::{Documents, Store, StrategyDeleteWrite, StrategyWrite};
use crate::core::validation::check_metadata;
use crate::core::versioned::{Document, NewVersion};

/// A strategy as the API shows it: a built-in, or the newest version of a stored one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum NamedStrategy {
    BuiltIn(BuiltIn),
    Stored(StoredStrategy),
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuiltIn {
    pub name: StrategyName,
    pub built_in: bool,
    #[serde(flatten)]
    pub strategy: Strategy,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredStrategy {
    pub built_in: bool,
    #[serde(flatten)]
    pub version: Arc<StrategyVersion>,
}

pub struct StrategyService {
    store: Arc<dyn Store>,
    /// Commits and publishes through the same path as config writes.
    configs: Arc<ConfigService>,
}

fn built_in(name: &StrategyName) -> Option<Strategy> {
    built_ins()
        .into_iter()
        .find(|(built, _)| built == name)
        .map(|(_, strategy)| strategy)
}

fn audit(metadata: &Metadata, action: &'static str) -> AuditDraft {
    AuditDraft {
        actor: metadata.actor.clone(),
        action,
        environments: Vec::new(),
        message: metadata.message.clone(),
        on_behalf_of: metadata.on_behalf_of.clone(),
        details: Default::default(),
    }
}

impl StrategyService {
    pub fn new(store: Arc<dyn Store>, configs: Arc<ConfigService>) -> Self {
        StrategyService { store, configs }
    }

    /// The version writes of `name` are compared with (0: it does not exist).
    async fn live_version(&self, name: &StrategyName) -> Result<u64> {
        Ok(self
            .store
            .strategies()
            .head(name)
            .await?
            .map_or(0, |head| head.live_version()))
    }

    /// Strategies are shared by every config and environment: writing one needs `write`
    /// without an id or environment scope.
    fn require_write(caller: &Caller) -> Result<()> {
        caller.require(Permission::Write)?;
        caller.require_unscoped_ids()?;
        if !caller.identity().scopes.environments.is_empty() {
            return Err(Error::forbidden(format!(
                "'{}' is scoped to some environments; strategies serve every environment",
                caller.identity().name
            )));
        }
        Ok(())
    }

    /// A new version of a stored strategy; `expected` (0: must not exist) guards a concurrent
    /// change. A built-in's name is refused (409).
    pub async fn put(
        &self,
        caller: &Caller,
        name: &StrategyName,
        strategy: Strategy,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<StrategyVersion> {
        Self::require_write(caller)?;
        check_metadata(&metadata)?;
        if built_in(name).is_some() {
            return Err(Error::conflict(format!(
                "'{name}' is a built-in strategy; choose another name"
            )));
        }
        strategy.check()?;
        self.configs.ensure_writable()?;
        let live = self.live_version(name).await?;
        if let Some(expected) = expected
            && expected != live
        {
            return Err(Error::VersionConflict {
                expected,
                actual: live,
            });
        }
        let version = NewVersion {
            id: name.clone(),
            checksum: strategy.checksum()?,
            document: strategy,
            metadata: metadata.clone(),
            created_at: now(),
            rollback_of: None,
        };
        let write = StrategyWrite {
            version: version.clone(),
            expected_live: live,
            expected_schema: 0,
            expected_number: None,
            audit: audit(&metadata, Strategy::UPDATED.as_str()),
            applies: None,
            announce: Vec::new(),
        };
        let store = self.store.clone();
        let committed = self
            .configs
            .commit(async move { store.strategies().append(write).await })
            .await?;
        Ok(version.numbered(committed.version))
    }

    pub async fn get(&self, caller: &Caller, name: &StrategyName) -> Result<NamedStrategy> {
        caller.require(Permission::Read)?;
        if let Some(strategy) = built_in(name) {
            return Ok(NamedStrategy::BuiltIn(BuiltIn {
                name: name.clone(),
                built_in: true,
                strategy,
            }));
        }
        match self.store.strategies().head(name).await? {
            Some(head) if !head.deleted => Ok(NamedStrategy::Stored(StoredStrategy {
                built_in: false,
                version: head.latest,
            })),
            _ => Err(Error::not_found(Strategy::NAME, name.as_str())),
        }
    }

    /// The built-ins, then the live stored strategies, by name.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<NamedStrategy>> {
        caller.require(Permission::Read)?;
        let mut all: Vec<NamedStrategy> = built_ins()
            .into_iter()
            .map(|(name, strategy)| {
                NamedStrategy::BuiltIn(BuiltIn {
                    name,
                    built_in: true,
                    strategy,
                })
            })
            .collect();
        all.extend(
            self.store
                .strategies()
                .heads()
                .await?
                .into_iter()
                .filter(|head| !head.deleted)
                .map(|head| {
                    NamedStrategy::Stored(StoredStrategy {
                        built_in: false,
                        version: head.latest,
                    })
                }),
        );
        Ok(all)
    }

    /// Versions of a stored strategy, newest first.
    pub async fn versions(
        &self,
        caller: &Caller,
        name: &StrategyName,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<StrategyVersion>> {
        caller.require(Permission::Read)?;
        let limit = page_limit(limit)?;
        if self.store.strategies().head(name).await?.is_none() {
            return Err(Error::not_found(Strategy::NAME, name.as_str()));
        }
        self.store.strategies().versions(name, before, limit).await
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        name: &StrategyName,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<()> {
        Self::require_write(caller)?;
        check_metadata(&metadata)?;
        if built_in(name).is_some() {
            return Err(Error::conflict(format!(
                "'{name}' is a built-in strategy and cannot be deleted"
            )));
        }
        self.configs.ensure_writable()?;
        let live = self.live_version(name).await?;
        let write = StrategyDeleteWrite {
            id: name.clone(),
            expected_live: expected.unwrap_or(live),
            audit: audit(&metadata, Strategy::DELETED.as_str()),
            at: now(),
            applies: None,
            announce: Vec::new(),
        };
        let store = self.store.clone();
        self.configs
            .commit(async move { store.strategies().delete(write).await })
            .await?;
        Ok(())
    }
}
