//! What instances report they applied.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::core::error::Result;
use crate::core::ids::ConfigId;
use crate::core::model::AppliedState;

#[async_trait]
pub trait AppliedStore: Send + Sync {
    /// Insert or replace the report of one (config, environment, instance).
    async fn record_applied(&self, state: AppliedState) -> Result<()>;
    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>>;
    /// Deletes applied-state reports made before `before`; returns how many went.
    async fn sweep_applied(&self, before: DateTime<Utc>) -> Result<u64>;
}
