//! Webhooks (where change events go) and their deliveries (each event's journey to one webhook).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::secrets::crypto::Sealed;

/// A subscriber: change events matching `events` and `filter` are sent to `url`, signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Kinds (`config.updated`) or prefixes ending in `.` or `*` (`config.`, `flag.*`); `*`
    /// is every kind.
    pub events: Vec<String>,
    #[serde(default)]
    pub filter: WebhookFilter,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    /// Why deliveries stopped (`enabled: false` after failing for too long, or by request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed (cleared by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// Counts writes of the webhook: an update is conditional on it.
    pub seq: u64,
    /// Events with a higher revision reach it (the revision when it was created).
    pub since_revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Signing secrets, sealed: the current one first, then one still in its overlap after a
    /// rotation. Never serialized (stored as their own column).
    #[serde(skip)]
    pub secrets: Vec<SigningSecret>,
}

/// Which events of the matching kinds a webhook wants; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookFilter {
    /// Config changes of ids starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_prefix: Option<String>,
    /// Config and flag changes that touched one of these environments (or every one: `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Flag changes of these keys only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// A signing secret as stored: sealed under the server's key, numbered per webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningSecret {
    pub generation: u64,
    pub sealed: Sealed,
    /// When an older secret stops signing (`None` for the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// A 2xx answered it.
    Delivered,
    /// Every attempt of the schedule failed: dead-lettered (a redeliver sends it again).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> crate::core::error::Result<DeliveryStatus> {
        match name {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(crate::core::error::Error::internal(format!(
                "unknown delivery status '{other}'"
            ))),
        }
    }
}

/// One event on its way to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: u64,
    pub webhook_id: String,
    /// The event's revision (its `webhook-id` is `evt_{revision}`).
    pub revision: u64,
    pub kind: String,
    /// The config id (or flag key, …) the event is about: deliveries of one subject to one
    /// webhook go in revision order.
    pub subject: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The HTTP status of the last answer, if one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// How long the last attempt took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery to record (fan-out).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub webhook_id: String,
    pub revision: u64,
    pub kind: String,
    pub subject: String,
    pub at: DateTime<Utc>,
}

/// What an attempt came to, to record.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery: u64,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    pub latency_ms: u64,
    pub at: DateTime<Utc>,
}

/// A webhook's health after a round of attempts.
#[derive(Debug, Clone)]
pub struct WebhookHealth {
    pub id: String,
    /// The failure state this was judged from: the update applies only while the webhook
    /// still has it, so an update in between (re-enabling clears it) is never undone.
    pub was_failing_since: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    /// Set when the webhook is disabled for failing too long.
    pub disabled_reason: Option<String>,
}
