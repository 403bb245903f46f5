//! Deployments, their logs and releases.

use async_trait::async_trait;

use super::MemoryStore;
use super::commit::Change;
use crate::core::deployments::model::{Deployment, LogEntry, Release};
use crate::core::error::Result;
use crate::core::ids::ConfigId;
use crate::core::ports::deployments::{deployment_active, deployment_changed};
use crate::core::ports::{Committed, DeploymentQuery, DeploymentStore, DeploymentWrite};

#[async_trait]
impl DeploymentStore for MemoryStore {
    async fn write_deployment(&self, write: DeploymentWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let deployment = &write.deployment;
        state.check_applies(write.applies.as_ref())?;
        if write.expect_seq == 0 {
            if let Some(active) = state.deployments.values().find(|d| {
                d.state.is_active()
                    && d.config_id == deployment.config_id
                    && d.environment == deployment.environment
            }) {
                return Err(deployment_active(
                    &deployment.config_id,
                    &deployment.environment,
                    &active.id,
                ));
            }
        } else if state
            .deployments
            .get(&deployment.id)
            .is_none_or(|stored| stored.seq != write.expect_seq)
        {
            return Err(deployment_changed(&deployment.id));
        }
        state
            .deployments
            .insert(deployment.id.clone(), deployment.clone());
        state
            .deployment_logs
            .entry(deployment.id.clone())
            .or_default()
            .push(write.entry.clone());
        if let Some(version) = write.release {
            let key = (deployment.config_id.clone(), deployment.environment.clone());
            state.releases.insert(
                key,
                Release {
                    config_id: deployment.config_id.clone(),
                    environment: deployment.environment.clone(),
                    version,
                    deployment_id: Some(deployment.id.clone()),
                    released_at: write.at,
                },
            );
        }
        Ok(state.commit(Change::from(&write)))
    }

    async fn deployment(&self, id: &str) -> Result<Option<Deployment>> {
        Ok(self.state.lock().deployments.get(id).cloned())
    }

    async fn deployments(&self, query: &DeploymentQuery) -> Result<Vec<Deployment>> {
        let state = self.state.lock();
        let mut found: Vec<&Deployment> = state
            .deployments
            .values()
            .filter(|d| query.config_id.as_ref().is_none_or(|c| &d.config_id == c))
            .filter(|d| {
                query
                    .environment
                    .as_ref()
                    .is_none_or(|e| &d.environment == e)
            })
            .filter(|d| !query.active_only || d.state.is_active())
            .filter(|d| query.before.is_none_or(|before| d.created_at < before))
            .collect();
        found.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(found
            .into_iter()
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn deployment_log(&self, id: &str) -> Result<Vec<LogEntry>> {
        Ok(self
            .state
            .lock()
            .deployment_logs
            .get(id)
            .cloned()
            .unwrap_or_default())
    }

    async fn keep_releases(&self, releases: Vec<Release>) -> Result<()> {
        let mut state = self.state.lock();
        for release in releases {
            let key = (release.config_id.clone(), release.environment.clone());
            state.releases.entry(key).or_insert(release);
        }
        Ok(())
    }

    async fn forget_releases(&self, config: &ConfigId) -> Result<()> {
        self.state.lock().releases.retain(|(id, _), _| id != config);
        Ok(())
    }

    async fn releases(&self, config: Option<&ConfigId>) -> Result<Vec<Release>> {
        Ok(self
            .state
            .lock()
            .releases
            .values()
            .filter(|r| config.is_none_or(|c| &r.config_id == c))
            .cloned()
            .collect())
    }
}
