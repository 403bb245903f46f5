//! A registry instance as the SQL backends store it: the document as JSON, the columns that
//! heartbeats and expiry touch beside it.

use chrono::DateTime;

use crate::core::error::{Error, Result};
use crate::core::ports::{InstanceWrite, Touch};
use crate::core::registry::model::Instance;

/// A stored instance's row, decoded by both SQL backends.
pub(crate) struct InstanceColumns {
    pub version: i64,
    pub document: String,
    pub last_heartbeat_ms: i64,
    pub expired: bool,
    pub applied: String,
    pub output: Option<String>,
    pub metrics: Option<String>,
}

impl InstanceColumns {
    pub(crate) fn decode(self) -> Result<Instance> {
        let mut instance: Instance = serde_json::from_str(&self.document)
            .map_err(|error| Error::internal(format!("unreadable registry instance: {error}")))?;
        instance.version = super::to_u64(self.version);
        instance.last_heartbeat = DateTime::from_timestamp_millis(self.last_heartbeat_ms)
            .ok_or_else(|| Error::internal("registry heartbeat out of range"))?;
        instance.expired = self.expired;
        instance.applied = serde_json::from_str(&self.applied)
            .map_err(|error| Error::internal(format!("unreadable applied map: {error}")))?;
        instance.output = self.output;
        instance.metrics = self
            .metrics
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|error| Error::internal(format!("unreadable instance metrics: {error}")))?;
        Ok(instance)
    }
}

/// What an instance write stores in each column.
pub(crate) struct InstanceValues {
    pub document: String,
    pub registered_ms: i64,
    pub last_heartbeat_ms: i64,
    pub ttl_ms: i64,
    pub remove_after_ms: i64,
    pub applied: String,
}

impl InstanceValues {
    pub(crate) fn of(write: &InstanceWrite) -> Result<InstanceValues> {
        let instance = &write.instance;
        Ok(InstanceValues {
            document: serde_json::to_string(instance).map_err(Error::internal)?,
            registered_ms: instance.registered_at.timestamp_millis(),
            last_heartbeat_ms: instance.last_heartbeat.timestamp_millis(),
            ttl_ms: i64::from(instance.ttl_secs) * 1000,
            remove_after_ms: i64::from(instance.deregister_after_secs) * 1000,
            applied: serde_json::to_string(&instance.applied).map_err(Error::internal)?,
        })
    }
}

/// The (version, last heartbeat, registration) columns a write checks its expectation on.
pub(crate) fn instance_row(
    version: i64,
    last_heartbeat_ms: i64,
    registered_ms: i64,
) -> Option<crate::core::ports::InstanceRow> {
    Some(crate::core::ports::InstanceRow {
        version: super::to_u64(version),
        last_heartbeat: DateTime::from_timestamp_millis(last_heartbeat_ms)?,
        registered_at: DateTime::from_timestamp_millis(registered_ms)?,
    })
}

/// `metrics` of a heartbeat as its column stores it.
pub(crate) fn metrics_json(
    metrics: Option<&crate::core::registry::model::InstanceMetrics>,
) -> Result<Option<String>> {
    metrics
        .map(|metrics| serde_json::to_string(metrics).map_err(Error::internal))
        .transpose()
}

/// `applied` of a heartbeat as its column stores it.
pub(crate) fn applied_json(
    applied: Option<&std::collections::BTreeMap<crate::core::ids::ConfigId, String>>,
) -> Result<Option<String>> {
    applied
        .map(|applied| serde_json::to_string(applied).map_err(Error::internal))
        .transpose()
}

/// A flush's heartbeats with one entry per instance (an `UPDATE … FROM` applies one of several
/// matching rows): the latest time, the last applied map and output given. Beside them, for
/// each heartbeat given, the index of its merged entry.
pub(crate) fn merge_touches(touches: &[Touch]) -> (Vec<Touch>, Vec<usize>) {
    let mut merged: Vec<Touch> = Vec::with_capacity(touches.len());
    let mut slot_of = std::collections::HashMap::with_capacity(touches.len());
    let mut slots = Vec::with_capacity(touches.len());
    for touch in touches {
        let key = (touch.service.as_str(), touch.instance_id.as_str());
        let slot = *slot_of.entry(key).or_insert_with(|| {
            merged.push(Touch {
                applied: None,
                output: None,
                metrics: None,
                ..touch.clone()
            });
            merged.len() - 1
        });
        let kept = &mut merged[slot];
        kept.at = kept.at.max(touch.at);
        // A later heartbeat that changed the applied map forgets the metrics, its own too (the
        // store compares the merged map with the one it has).
        let changed =
            kept.applied.is_some() && touch.applied.is_some() && touch.applied != kept.applied;
        if changed {
            kept.metrics = None;
        }
        if touch.applied.is_some() {
            kept.applied = touch.applied.clone();
        }
        if touch.output.is_some() {
            kept.output = touch.output.clone();
        }
        if touch.metrics.is_some() && !changed {
            kept.metrics = touch.metrics;
        }
        slots.push(slot);
    }
    (merged, slots)
}
