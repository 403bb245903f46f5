//! Deployments, their logs, and the version each environment releases.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AppliedRequest, Committed};
use crate::core::deployments::model::{Deployment, LogEntry, Release};
use crate::core::error::{Error, Result};
use crate::core::events::ChangeKind;
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::AuditDraft;

/// Stores `deployment` (inserted when `expect_seq` is 0, else replacing the row whose `seq` is
/// `expect_seq`), appends `entry` to its log, moves the release when asked, and records `kind`
/// about its config. An insert while another deployment of the same config and environment is
/// active is `Conflict` naming that one; a replaced row that moved meanwhile is
/// `ConcurrentModification`. Nothing is written on error.
#[derive(Debug, Clone)]
pub struct DeploymentWrite {
    pub deployment: Deployment,
    pub expect_seq: u64,
    pub entry: LogEntry,
    /// The version the environment releases from now on.
    pub release: Option<u64>,
    pub kind: ChangeKind,
    pub audit: AuditDraft,
    pub at: DateTime<Utc>,
    /// The approved change request this write applies (marked applied in the same
    /// transaction; refused when it is no longer approved).
    pub applies: Option<AppliedRequest>,
}

/// Which deployments a listing returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeploymentQuery {
    pub config_id: Option<ConfigId>,
    pub environment: Option<Environment>,
    pub active_only: bool,
    /// Created before this one (a page's cursor).
    pub before: Option<DateTime<Utc>>,
    pub limit: u32,
}

impl DeploymentQuery {
    /// Every active deployment, of every config and environment, without a limit.
    pub fn every_active() -> Self {
        DeploymentQuery {
            active_only: true,
            limit: u32::MAX,
            ..DeploymentQuery::default()
        }
    }
}

#[async_trait]
pub trait DeploymentStore: Send + Sync {
    async fn write_deployment(&self, write: DeploymentWrite) -> Result<Committed>;
    async fn deployment(&self, id: &str) -> Result<Option<Deployment>>;
    async fn deployments(&self, query: &DeploymentQuery) -> Result<Vec<Deployment>>;
    /// Every transition of a deployment, oldest first.
    async fn deployment_log(&self, id: &str) -> Result<Vec<LogEntry>>;
    /// Records each release whose environment has no release of its config yet (the version
    /// live when the environment began requiring deployments); the others are left as they are.
    async fn keep_releases(&self, releases: Vec<Release>) -> Result<()>;
    /// Forgets the config's releases (before its first version after a delete).
    async fn forget_releases(&self, config: &ConfigId) -> Result<()>;
    /// The releases of one config, or of every config.
    async fn releases(&self, config: Option<&ConfigId>) -> Result<Vec<Release>>;
}

/// A deployment insert found another one active for its config and environment.
pub fn deployment_active(config: &ConfigId, environment: &Environment, active: &str) -> Error {
    Error::conflict(format!(
        "deployment {active} of '{config}' to '{environment}' is still active; \
         wait for it, or pause, abort or promote it first"
    ))
}

/// A deployment update whose expected `seq` no longer holds.
pub fn deployment_changed(id: &str) -> Error {
    Error::concurrent(format!(
        "deployment {id} changed meanwhile; reload it and retry"
    ))
}
