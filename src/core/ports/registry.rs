//! The service registry: registered instances, their recorded changes, and heartbeats.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Committed;
use crate::core::error::Result;
use crate::core::events::ChangeKind;
use crate::core::ids::{ConfigId, InstanceId, ServiceName};
use crate::core::model::AuditDraft;
use crate::core::registry::model::{Instance, InstanceMetrics};

/// What a write of one instance expects of its row; a failed expectation is
/// `ConcurrentModification` and writes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InstanceExpectation {
    /// The row's version is this one (0: the row does not exist).
    pub version: Option<u64>,
    /// The row's last heartbeat is this one (an expiry races no heartbeat).
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// The row is this registration (versions start again at 1 after a removal).
    pub registered_at: Option<DateTime<Utc>>,
}

/// What an instance write compares with its expectation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceRow {
    pub version: u64,
    pub last_heartbeat: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
}

impl InstanceExpectation {
    /// Expect the instance exactly as it was read: its version and registration (not its last
    /// heartbeat, which heartbeats move).
    pub fn as_read(instance: &Instance) -> Self {
        InstanceExpectation {
            version: Some(instance.version),
            last_heartbeat: None,
            registered_at: Some(instance.registered_at),
        }
    }
}

/// Stores `instance` (inserted, or replacing the row) with the next version and records `kind`
/// about it. A replaced row keeps its `applied` map (heartbeats own it) and the later of the two
/// last heartbeats; `output` is the instance's.
#[derive(Debug, Clone)]
pub struct InstanceWrite {
    pub instance: Instance,
    pub expect: InstanceExpectation,
    pub kind: ChangeKind,
    /// Of the instance as written (its `version` aside).
    pub checksum: String,
    pub audit: AuditDraft,
    pub at: DateTime<Utc>,
    /// `service/instance`.
    pub subject: String,
}

/// Removes an instance (`NotFound` when it is not registered) and records `kind` about it.
#[derive(Debug, Clone)]
pub struct InstanceRemove {
    pub service: ServiceName,
    pub instance_id: InstanceId,
    pub expect: InstanceExpectation,
    pub kind: ChangeKind,
    pub audit: AuditDraft,
    pub at: DateTime<Utc>,
    pub subject: String,
}

/// One heartbeat: the instance is alive at `at`. Records no change.
#[derive(Debug, Clone)]
pub struct Touch {
    pub service: ServiceName,
    pub instance_id: InstanceId,
    pub at: DateTime<Utc>,
    /// Replaces the instance's applied map when given.
    pub applied: Option<BTreeMap<ConfigId, String>>,
    /// Replaces the instance's output when given.
    pub output: Option<String>,
    /// Replaces the instance's metrics when given.
    pub metrics: Option<InstanceMetrics>,
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    async fn put_instance(&self, write: InstanceWrite) -> Result<Committed>;
    async fn remove_instance(&self, remove: InstanceRemove) -> Result<Committed>;
    /// Applies every heartbeat in one transaction (one fsync), in order. A heartbeat of an
    /// instance that is not registered, is expired, or whose last heartbeat is older than its
    /// TTL at `at` changes nothing and answers `false`.
    async fn touch_instances(&self, touches: &[Touch]) -> Result<Vec<bool>>;
    /// Every instance of `service`, or of every service; by service, then instance id.
    async fn instances(&self, service: Option<&ServiceName>) -> Result<Vec<Instance>>;
    async fn instance(&self, service: &ServiceName, id: &InstanceId) -> Result<Option<Instance>>;
    /// The instances that are due at `now`: not expired and past their TTL, or past their
    /// deregistration time.
    async fn overdue_instances(&self, now: DateTime<Utc>) -> Result<Vec<Instance>>;
}

/// What a write found when the instance's row changed meanwhile.
pub fn instance_changed(subject: &str) -> crate::core::error::Error {
    crate::core::error::Error::concurrent(format!("instance {subject} changed meanwhile; retry"))
}

/// Checks `expect` against the row as the write's transaction sees it; the row's version (0 when
/// there is none).
pub fn check_instance_expectation(
    expect: &InstanceExpectation,
    row: Option<InstanceRow>,
    subject: &str,
) -> Result<u64> {
    let version = row.map_or(0, |row| row.version);
    if expect.version.is_some_and(|v| v != version) {
        return Err(instance_changed(subject));
    }
    // Times are compared at millisecond precision: what every backend stores.
    let millis = |at: Option<DateTime<Utc>>| at.map(|at| at.timestamp_millis());
    if let Some(expected) = expect.last_heartbeat
        && millis(row.map(|row| row.last_heartbeat)) != Some(expected.timestamp_millis())
    {
        return Err(instance_changed(subject));
    }
    if let Some(expected) = expect.registered_at
        && millis(row.map(|row| row.registered_at)) != Some(expected.timestamp_millis())
    {
        return Err(instance_changed(subject));
    }
    Ok(version)
}
