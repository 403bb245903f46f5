//! What instances report they applied.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::core::error::{Error, Result};
use crate::core::ids::ConfigId;
use crate::core::model::AppliedState;
use crate::core::ports::AppliedStore;

#[async_trait]
impl AppliedStore for MemoryStore {
    async fn record_applied(&self, applied: AppliedState) -> Result<()> {
        let key = (
            applied.config_id.clone(),
            applied.environment.clone(),
            applied.instance_id.clone(),
        );
        let mut state = self.state.lock();
        if !state.configs.versions.contains_key(&applied.config_id) {
            return Err(Error::not_found("config", applied.config_id.as_str()));
        }
        state.applied.insert(key, applied);
        Ok(())
    }

    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>> {
        let state = self.state.lock();
        Ok(state
            .applied
            .values()
            .filter(|a| id.is_none_or(|id| &a.config_id == id))
            .cloned()
            .collect())
    }

    async fn sweep_applied(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut state = self.state.lock();
        let count = state.applied.len();
        state
            .applied
            .retain(|_, report| report.reported_at >= before);
        Ok((count - state.applied.len()) as u64)
    }
}
