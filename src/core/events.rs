//! Change events and their in-process fan-out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

/// One committed change, numbered by the global revision. In JSON a flag change names its
/// subject `flagKey` instead of `configId`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    pub revision: u64,
    /// `config.updated`, `config.deleted`, `schema.updated`, `flag.updated`, `flag.deleted`
    pub kind: String,
    /// The config id, or the flag key of a `flag.*` change.
    #[serde(alias = "flagKey")]
    pub config_id: String,
    pub version: u64,
    pub checksum: String,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub at: DateTime<Utc>,
}

impl ChangeEvent {
    pub fn is_flag(&self) -> bool {
        kind::is_flag(&self.kind)
    }
}

impl Serialize for ChangeEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("revision", &self.revision)?;
        map.serialize_entry("kind", &self.kind)?;
        let subject = if self.is_flag() {
            "flagKey"
        } else {
            "configId"
        };
        map.serialize_entry(subject, &self.config_id)?;
        map.serialize_entry("version", &self.version)?;
        map.serialize_entry("checksum", &self.checksum)?;
        map.serialize_entry("actor", &self.actor)?;
        if let Some(message) = &self.message {
            map.serialize_entry("message", message)?;
        }
        map.serialize_entry("at", &self.at)?;
        map.end()
    }
}

pub mod kind {
    pub const CONFIG_UPDATED: &str = "config.updated";
    pub const CONFIG_DELETED: &str = "config.deleted";
    pub const SCHEMA_UPDATED: &str = "schema.updated";
    pub const FLAG_UPDATED: &str = "flag.updated";
    pub const FLAG_DELETED: &str = "flag.deleted";
    pub const TOKEN_CREATED: &str = "token.created";
    pub const TOKEN_REVOKED: &str = "token.revoked";
    pub const CHANGE_REQUEST_CREATED: &str = "change_request.created";
    pub const CHANGE_REQUEST_APPROVED: &str = "change_request.approved";
    pub const CHANGE_REQUEST_REJECTED: &str = "change_request.rejected";
    pub const CHANGE_REQUEST_CANCELLED: &str = "change_request.cancelled";
    pub const CHANGE_REQUEST_APPLIED: &str = "change_request.applied";

    /// Token changes (and token audit actions) start with `token.`: security records that
    /// watchers never receive.
    pub fn is_token(kind_or_action: &str) -> bool {
        kind_or_action.starts_with("token.")
    }

    /// Flag changes (and flag audit actions) start with `flag.`.
    pub fn is_flag(kind_or_action: &str) -> bool {
        kind_or_action.starts_with("flag.")
    }
}

/// Publishes committed changes to in-process subscribers. Lossy by design: a subscriber that
/// falls behind catches up from the store's change log (see `watch`).
#[derive(Clone)]
pub struct ChangeBus {
    sender: broadcast::Sender<ChangeEvent>,
    /// Highest revision published: a change both committed here and read back from the log
    /// (replicas) is published once. Skipping a lower one is safe: watchers refill gaps from
    /// the change log.
    published: Arc<AtomicU64>,
}

impl ChangeBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        ChangeBus {
            sender,
            published: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn publish(&self, event: ChangeEvent) {
        if self.published.fetch_max(event.revision, Ordering::Relaxed) >= event.revision {
            return;
        }
        // No subscribers is not an error.
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.sender.subscribe()
    }
}
