//! Deployment strategies pass through the read cache: they are read when a deployment starts,
//! not on the read path, so nothing of them is kept in memory.

use async_trait::async_trait;

use super::CachedStore;
use crate::core::deployments::strategy::{Strategy, StrategyHead, StrategyVersion};
use crate::core::error::Result;
use crate::core::ids::StrategyName;
use crate::core::ports::{Committed, DeleteWrite, DocumentStore, VersionWrite};

impl CachedStore {
    fn strategy_store(&self) -> &dyn DocumentStore<Strategy> {
        &*self.inner
    }
}

#[async_trait]
impl DocumentStore<Strategy> for CachedStore {
    async fn head(&self, name: &StrategyName) -> Result<Option<StrategyHead>> {
        self.observed(self.strategy_store().head(name)).await
    }

    async fn heads(&self) -> Result<Vec<StrategyHead>> {
        self.observed(self.strategy_store().heads()).await
    }

    async fn version(&self, name: &StrategyName, version: u64) -> Result<Option<StrategyVersion>> {
        self.observed(self.strategy_store().version(name, version))
            .await
    }

    async fn versions(
        &self,
        name: &StrategyName,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StrategyVersion>> {
        self.observed(self.strategy_store().versions(name, before, limit))
            .await
    }

    async fn append(&self, write: VersionWrite<Strategy>) -> Result<Committed> {
        self.observed(self.strategy_store().append(write)).await
    }

    async fn delete(&self, write: DeleteWrite<Strategy>) -> Result<Committed> {
        self.observed(self.strategy_store().delete(write)).await
    }
}
