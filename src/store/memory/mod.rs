//! In-memory store for tests and ephemeral runs. Same semantics as the durable backends: under
//! one lock every write checks all its expectations before it changes anything, then changes its
//! rows and records its change through the commit recipe (`commit`).
//!
//! One file per aggregate implements its port.

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::core::access::model::{ApiToken, Denial};
use crate::core::approvals::model::ChangeRequest;
use crate::core::deployments::model::{Deployment, LogEntry, Release};
use crate::core::deployments::strategy::Strategy;
use crate::core::error::Result;
use crate::core::events::ChangeEvent;
use crate::core::flags::FlagDefinition;
use crate::core::ids::{ConfigId, Environment, InstanceId, ServiceName};
use crate::core::model::{AppliedState, AuditRecord, ConfigDocument, SchemaVersion};
use crate::core::notifications::model::{Delivery, Webhook};
use crate::core::ports::{Database, Store};
use crate::core::registry::model::Instance;
use crate::core::secrets::model::SecretDocument;

mod access;
mod applied;
mod approvals;
mod changelog;
mod commit;
mod deployments;
mod documents;
mod notifications;
mod registry;
mod schemas;
mod secrets;

use documents::Histories;

#[derive(Default)]
struct State {
    configs: Histories<ConfigDocument>,
    schemas: BTreeMap<ConfigId, Vec<SchemaVersion>>,
    flags: Histories<FlagDefinition>,
    secrets: Histories<SecretDocument>,
    strategies: Histories<Strategy>,
    audit: Vec<AuditRecord>,
    changes: Vec<ChangeEvent>,
    applied: BTreeMap<(ConfigId, String, String), AppliedState>,
    tokens: Vec<ApiToken>,
    denials: Vec<Denial>,
    change_requests: BTreeMap<String, ChangeRequest>,
    instances: BTreeMap<(ServiceName, InstanceId), Instance>,
    deployments: BTreeMap<String, Deployment>,
    deployment_logs: BTreeMap<String, Vec<LogEntry>>,
    releases: BTreeMap<(ConfigId, Environment), Release>,
    webhooks: Vec<Webhook>,
    cursors: BTreeMap<String, u64>,
    deliveries: BTreeMap<u64, Delivery>,
    /// The last delivery id given (never reused).
    delivery_ids: u64,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Newest first, below `before` when given, at most `limit`: how every history pages.
fn page<'a, T: Clone + 'a>(
    newest_last: impl DoubleEndedIterator<Item = &'a T>,
    number: impl Fn(&T) -> u64,
    before: Option<u64>,
    limit: u32,
) -> Vec<T> {
    newest_last
        .rev()
        .filter(|item| before.is_none_or(|b| number(item) < b))
        .take(limit as usize)
        .cloned()
        .collect()
}

impl Store for MemoryStore {}

#[async_trait]
impl Database for MemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
