//! Deployments pass through the read cache: the services keep what the read path needs of
//! them (`core::deployments::Serving`), so nothing of them is kept here.

use async_trait::async_trait;

use super::CachedStore;
use crate::core::deployments::model::{Deployment, LogEntry, Release};
use crate::core::error::Result;
use crate::core::ids::ConfigId;
use crate::core::ports::{Committed, DeploymentQuery, DeploymentStore, DeploymentWrite};

#[async_trait]
impl DeploymentStore for CachedStore {
    async fn write_deployment(&self, write: DeploymentWrite) -> Result<Committed> {
        self.observed(self.inner.write_deployment(write)).await
    }

    async fn deployment(&self, id: &str) -> Result<Option<Deployment>> {
        self.observed(self.inner.deployment(id)).await
    }

    async fn deployments(&self, query: &DeploymentQuery) -> Result<Vec<Deployment>> {
        self.observed(self.inner.deployments(query)).await
    }

    async fn deployment_log(&self, id: &str) -> Result<Vec<LogEntry>> {
        self.observed(self.inner.deployment_log(id)).await
    }

    async fn keep_releases(&self, releases: Vec<Release>) -> Result<()> {
        self.observed(self.inner.keep_releases(releases)).await
    }

    async fn forget_releases(&self, config: &ConfigId) -> Result<()> {
        self.observed(self.inner.forget_releases(config)).await
    }

    async fn releases(&self, config: Option<&ConfigId>) -> Result<Vec<Release>> {
        self.observed(self.inner.releases(config)).await
    }
}
