//! Change events and their in-process fan-out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

mod details;

pub use details::{AffectedInstances, ChangeDetails, MAX_NAMED_INSTANCES, MAX_PATCH_BYTES, Patch};

/// One committed change, numbered by the global revision. In JSON a flag change names its
/// subject `flagKey` instead of `configId`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub revision: u64,
    pub kind: ChangeKind,
    /// The config id, or the flag key of a `flag.*` change.
    pub config_id: String,
    pub version: u64,
    pub checksum: String,
    pub actor: String,
    pub message: Option<String>,
    pub at: DateTime<Utc>,
    /// Environments whose effective config the change touched (`*`: every one); empty for
    /// changes of no config.
    pub environments: Vec<String>,
    /// The previous version, the patch and the affected instances.
    pub details: ChangeDetails,
}

impl ChangeEvent {
    pub fn is_flag(&self) -> bool {
        self.kind.is_flag()
    }
}

impl Serialize for ChangeEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("revision", &self.revision)?;
        map.serialize_entry("kind", self.kind.as_str())?;
        let subject = if self.is_flag() {
            "flagKey"
        } else if self.kind.is_instance() {
            if let Some((service, instance)) = self.config_id.split_once('/') {
                map.serialize_entry("serviceName", service)?;
                map.serialize_entry("instanceId", instance)?;
            }
            "instance"
        } else if self.kind.is_strategy() {
            "strategy"
        } else if self.kind.is_secret() {
            "secretName"
        } else if self.kind.is_webhook() {
            "webhookId"
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
        if !self.environments.is_empty() {
            map.serialize_entry("environments", &self.environments)?;
        }
        self.details.write_fields(&mut map)?;
        map.end()
    }
}

/// What a committed change was. Stored and sent as its name (`config.updated`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    ConfigUpdated,
    ConfigDeleted,
    SchemaUpdated,
    FlagUpdated,
    FlagDeleted,
    TokenCreated,
    TokenRevoked,
    ChangeRequestCreated,
    ChangeRequestApproved,
    ChangeRequestRejected,
    ChangeRequestCancelled,
    ChangeRequestApplied,
    SecretUpdated,
    SecretDeleted,
    /// A secret's value was read (audited; no change to anything).
    SecretRead,
    /// A secret version's data key was wrapped again, under the current key-encryption key.
    SecretRewrapped,
    /// A secret of the built-in store that the config references changed (a new version or a
    /// delete): its resolved value changed though its document did not.
    ConfigSecretsChanged,
    /// An instance registered (or registered again) with the service registry.
    InstanceRegistered,
    /// An instance left the registry: deregistered, or removed after no heartbeat for its
    /// `deregisterAfterSecs`.
    InstanceDeregistered,
    /// An instance had no heartbeat for its TTL: out of discovery until it registers again.
    InstanceExpired,
    /// An instance's health changed (a heartbeat's status, a health check, maintenance).
    InstanceStatusChanged,
    /// A deployment strategy was written (a new version).
    StrategyUpdated,
    /// A deployment strategy was deleted.
    StrategyDeleted,
    /// A deployment of the config began (`pending`).
    DeploymentCreated,
    /// A deployment of the config moved (a step, a bake, a pause, a rollback, completion): what
    /// some of its instances are served may have changed.
    DeploymentTransitioned,
    /// A webhook was created.
    WebhookCreated,
    /// A webhook was changed (its target, filter, secret or state).
    WebhookUpdated,
    /// A webhook was deleted.
    WebhookDeleted,
}

impl ChangeKind {
    const ALL: [ChangeKind; 28] = [
        ChangeKind::ConfigUpdated,
        ChangeKind::ConfigDeleted,
        ChangeKind::SchemaUpdated,
        ChangeKind::FlagUpdated,
        ChangeKind::FlagDeleted,
        ChangeKind::TokenCreated,
        ChangeKind::TokenRevoked,
        ChangeKind::ChangeRequestCreated,
        ChangeKind::ChangeRequestApproved,
        ChangeKind::ChangeRequestRejected,
        ChangeKind::ChangeRequestCancelled,
        ChangeKind::ChangeRequestApplied,
        ChangeKind::SecretUpdated,
        ChangeKind::SecretDeleted,
        ChangeKind::SecretRead,
        ChangeKind::SecretRewrapped,
        ChangeKind::ConfigSecretsChanged,
        ChangeKind::InstanceRegistered,
        ChangeKind::InstanceDeregistered,
        ChangeKind::InstanceExpired,
        ChangeKind::InstanceStatusChanged,
        ChangeKind::StrategyUpdated,
        ChangeKind::StrategyDeleted,
        ChangeKind::DeploymentCreated,
        ChangeKind::DeploymentTransitioned,
        ChangeKind::WebhookCreated,
        ChangeKind::WebhookUpdated,
        ChangeKind::WebhookDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::ConfigUpdated => "config.updated",
            ChangeKind::ConfigDeleted => "config.deleted",
            ChangeKind::SchemaUpdated => "schema.updated",
            ChangeKind::FlagUpdated => "flag.updated",
            ChangeKind::FlagDeleted => "flag.deleted",
            ChangeKind::TokenCreated => "token.created",
            ChangeKind::TokenRevoked => "token.revoked",
            ChangeKind::ChangeRequestCreated => "change_request.created",
            ChangeKind::ChangeRequestApproved => "change_request.approved",
            ChangeKind::ChangeRequestRejected => "change_request.rejected",
            ChangeKind::ChangeRequestCancelled => "change_request.cancelled",
            ChangeKind::ChangeRequestApplied => "change_request.applied",
            ChangeKind::SecretUpdated => "secret.updated",
            ChangeKind::SecretDeleted => "secret.deleted",
            ChangeKind::SecretRead => "secret.read",
            ChangeKind::SecretRewrapped => "secret.rewrapped",
            ChangeKind::ConfigSecretsChanged => "config.secrets_changed",
            ChangeKind::InstanceRegistered => "instance.registered",
            ChangeKind::InstanceDeregistered => "instance.deregistered",
            ChangeKind::InstanceExpired => "instance.expired",
            ChangeKind::InstanceStatusChanged => "instance.status_changed",
            ChangeKind::StrategyUpdated => "strategy.updated",
            ChangeKind::StrategyDeleted => "strategy.deleted",
            ChangeKind::DeploymentCreated => "deployment.created",
            ChangeKind::DeploymentTransitioned => "deployment.transitioned",
            ChangeKind::WebhookCreated => "webhook.created",
            ChangeKind::WebhookUpdated => "webhook.updated",
            ChangeKind::WebhookDeleted => "webhook.deleted",
        }
    }

    /// The kind a stored name stands for; an unknown name is data this version cannot read.
    pub fn parse(name: &str) -> crate::core::error::Result<ChangeKind> {
        ChangeKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| {
                crate::core::error::Error::internal(format!("unknown change kind '{name}'"))
            })
    }

    pub fn is_flag(self) -> bool {
        matches!(self, ChangeKind::FlagUpdated | ChangeKind::FlagDeleted)
    }

    /// Changes of the service registry: watchers receive them only when they name the service
    /// (or every service).
    pub fn is_instance(self) -> bool {
        matches!(
            self,
            ChangeKind::InstanceRegistered
                | ChangeKind::InstanceDeregistered
                | ChangeKind::InstanceExpired
                | ChangeKind::InstanceStatusChanged
        )
    }

    /// Changes of deployment strategies: only watchers of everything receive them.
    pub fn is_strategy(self) -> bool {
        matches!(
            self,
            ChangeKind::StrategyUpdated | ChangeKind::StrategyDeleted
        )
    }

    /// Changes of a config's deployments: their subject is the config.
    pub fn is_deployment(self) -> bool {
        matches!(
            self,
            ChangeKind::DeploymentCreated | ChangeKind::DeploymentTransitioned
        )
    }

    /// Security records that watchers never receive.
    pub fn is_token(self) -> bool {
        matches!(self, ChangeKind::TokenCreated | ChangeKind::TokenRevoked)
    }

    /// Changes of webhooks: for the audit (and webhooks subscribed to them), never watchers.
    pub fn is_webhook(self) -> bool {
        matches!(
            self,
            ChangeKind::WebhookCreated | ChangeKind::WebhookUpdated | ChangeKind::WebhookDeleted
        )
    }

    /// Changes of the secret store; watchers of configs never receive them (they name secrets,
    /// never values, but who touches which secret is for the audit only).
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            ChangeKind::SecretUpdated
                | ChangeKind::SecretDeleted
                | ChangeKind::SecretRead
                | ChangeKind::SecretRewrapped
        )
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ChangeKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        ChangeKind::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The change kinds by their old constant names, and the audit-action prefixes.
pub mod kind {
    use super::ChangeKind;

    pub const CONFIG_UPDATED: ChangeKind = ChangeKind::ConfigUpdated;
    pub const CONFIG_DELETED: ChangeKind = ChangeKind::ConfigDeleted;
    pub const SCHEMA_UPDATED: ChangeKind = ChangeKind::SchemaUpdated;
    pub const FLAG_UPDATED: ChangeKind = ChangeKind::FlagUpdated;
    pub const FLAG_DELETED: ChangeKind = ChangeKind::FlagDeleted;
    pub const TOKEN_CREATED: ChangeKind = ChangeKind::TokenCreated;
    pub const TOKEN_REVOKED: ChangeKind = ChangeKind::TokenRevoked;
    pub const CHANGE_REQUEST_CREATED: ChangeKind = ChangeKind::ChangeRequestCreated;
    pub const CHANGE_REQUEST_APPROVED: ChangeKind = ChangeKind::ChangeRequestApproved;
    pub const CHANGE_REQUEST_REJECTED: ChangeKind = ChangeKind::ChangeRequestRejected;
    pub const CHANGE_REQUEST_CANCELLED: ChangeKind = ChangeKind::ChangeRequestCancelled;
    pub const CHANGE_REQUEST_APPLIED: ChangeKind = ChangeKind::ChangeRequestApplied;
    pub const SECRET_UPDATED: ChangeKind = ChangeKind::SecretUpdated;
    pub const SECRET_DELETED: ChangeKind = ChangeKind::SecretDeleted;
    pub const SECRET_READ: ChangeKind = ChangeKind::SecretRead;
    pub const SECRET_REWRAPPED: ChangeKind = ChangeKind::SecretRewrapped;
    pub const CONFIG_SECRETS_CHANGED: ChangeKind = ChangeKind::ConfigSecretsChanged;
    pub const INSTANCE_REGISTERED: ChangeKind = ChangeKind::InstanceRegistered;
    pub const INSTANCE_DEREGISTERED: ChangeKind = ChangeKind::InstanceDeregistered;
    pub const INSTANCE_EXPIRED: ChangeKind = ChangeKind::InstanceExpired;
    pub const INSTANCE_STATUS_CHANGED: ChangeKind = ChangeKind::InstanceStatusChanged;
    pub const STRATEGY_UPDATED: ChangeKind = ChangeKind::StrategyUpdated;
    pub const STRATEGY_DELETED: ChangeKind = ChangeKind::StrategyDeleted;
    pub const DEPLOYMENT_CREATED: ChangeKind = ChangeKind::DeploymentCreated;
    pub const DEPLOYMENT_TRANSITIONED: ChangeKind = ChangeKind::DeploymentTransitioned;
    pub const WEBHOOK_CREATED: ChangeKind = ChangeKind::WebhookCreated;
    pub const WEBHOOK_UPDATED: ChangeKind = ChangeKind::WebhookUpdated;
    pub const WEBHOOK_DELETED: ChangeKind = ChangeKind::WebhookDeleted;

    /// Token audit actions start with `token.`: security records.
    pub fn is_token(action: &str) -> bool {
        action.starts_with("token.")
    }

    /// Flag audit actions start with `flag.`.
    pub fn is_flag(action: &str) -> bool {
        action.starts_with("flag.")
    }

    /// Registry audit actions start with `instance.`; their subject is `service/instance`.
    pub fn is_instance(action: &str) -> bool {
        action.starts_with("instance.")
    }

    /// Deployment-strategy audit actions start with `strategy.`.
    pub fn is_strategy(action: &str) -> bool {
        action.starts_with("strategy.")
    }

    /// Webhook audit actions start with `webhook.`.
    pub fn is_webhook(action: &str) -> bool {
        action.starts_with("webhook.")
    }

    /// Secret audit actions start with `secret.`.
    pub fn is_secret(action: &str) -> bool {
        action.starts_with("secret.")
    }
}

/// Publishes committed changes to in-process subscribers. Lossy by design: a subscriber that
/// falls behind catches up from the store's change log (see `watch`). Every subscriber shares
/// one copy of each event.
#[derive(Clone)]
pub struct ChangeBus {
    sender: broadcast::Sender<Arc<ChangeEvent>>,
    /// Highest revision published: a change both committed here and read back from the log
    /// (replicas) is published once. Skipping a lower one is safe: watchers refill gaps from
    /// the change log.
    published: Arc<AtomicU64>,
    /// `summit_events_published_total`.
    published_total: metrics::Counter,
}

impl ChangeBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        ChangeBus {
            sender,
            published: Arc::new(AtomicU64::new(0)),
            published_total: metrics::counter!("summit_events_published_total"),
        }
    }

    pub fn publish(&self, event: ChangeEvent) {
        if self.published.fetch_max(event.revision, Ordering::Relaxed) >= event.revision {
            return;
        }
        self.published_total.increment(1);
        // No subscribers is not an error.
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
