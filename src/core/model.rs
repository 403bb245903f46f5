//! The domain model: versions, layers, schemas, audit records, applied state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::events::ChangeDetails;
use super::ids::ConfigId;
pub use super::versioned::Metadata;
use super::versioned::{Document, DocumentKind, Head, NewVersion as Draft, Version};

/// A gradual rollout of a patch to a share of one environment's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Canary {
    pub environment: String,
    /// 0..=100, at most two decimals.
    pub traffic_percent: f64,
    /// RFC 7396 merge patch applied on top of the environment's config.
    pub config: Value,
    pub start_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbTest {
    pub name: String,
    /// Restricts the test to one environment; absent means every environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub variants: Vec<AbVariant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbVariant {
    pub name: String,
    pub weight: u64,
    /// RFC 7396 merge patch for callers assigned to this variant.
    pub config: Value,
}

/// Everything a version says about a config: the base and its layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigDocument {
    pub config: Value,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab_test: Option<AbTest>,
}

impl Document for ConfigDocument {
    type Id = ConfigId;
    const KIND: DocumentKind = DocumentKind::Config;
}

/// One immutable version of a config; its checksum covers the whole document (docs/api.md).
pub type ConfigVersion = Version<ConfigDocument>;
/// The newest version of a config and whether the config is deleted.
pub type ConfigHead = Head<ConfigDocument>;
/// A config version before the store numbers it.
pub type NewVersion = Draft<ConfigDocument>;

/// One registered JSON Schema of a config.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaVersion {
    pub config_id: ConfigId,
    pub version: u64,
    pub schema: Value,
    pub checksum: String,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
}

/// What a list of configs shows per config.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSummary {
    pub config_id: ConfigId,
    pub version: u64,
    pub checksum: String,
    pub updated_at: DateTime<Utc>,
}

/// An instance's report of the config it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedState {
    pub config_id: ConfigId,
    pub environment: String,
    pub instance_id: String,
    pub version: u64,
    pub checksum: String,
    pub reported_at: DateTime<Utc>,
}

/// One append-only audit record. In JSON a flag action (`flag.*`) names its subject `flagKey`,
/// a secret action (`secret.*`) `secretName`, instead of `configId`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: u64,
    pub revision: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    /// The config id, or the flag key of a `flag.*` action.
    pub config_id: String,
    pub version: Option<u64>,
    /// Environments whose effective config the change touched; `*` when the base changed.
    pub environments: Vec<String>,
    pub message: Option<String>,
    /// The `metadata.actor` the client named, when it differs from the authenticated actor.
    pub on_behalf_of: Option<String>,
    /// The previous version and the patch (as the change event carries them).
    pub details: ChangeDetails,
}

impl Serialize for AuditRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("revision", &self.revision)?;
        map.serialize_entry("at", &self.at)?;
        map.serialize_entry("actor", &self.actor)?;
        map.serialize_entry("action", &self.action)?;
        let subject = if super::events::kind::is_flag(&self.action) {
            "flagKey"
        } else if super::events::kind::is_secret(&self.action) {
            "secretName"
        } else if super::events::kind::is_instance(&self.action) {
            "instance"
        } else if super::events::kind::is_strategy(&self.action) {
            "strategy"
        } else if super::events::kind::is_webhook(&self.action) {
            "webhookId"
        } else {
            "configId"
        };
        map.serialize_entry(subject, &self.config_id)?;
        if let Some(version) = self.version {
            map.serialize_entry("version", &version)?;
        }
        map.serialize_entry("environments", &self.environments)?;
        if let Some(message) = &self.message {
            map.serialize_entry("message", message)?;
        }
        if let Some(on_behalf_of) = &self.on_behalf_of {
            map.serialize_entry("onBehalfOf", on_behalf_of)?;
        }
        self.details.write_fields(&mut map)?;
        map.end()
    }
}

/// An audit record before the store gives it an id and revision.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub actor: String,
    pub action: &'static str,
    pub environments: Vec<String>,
    pub message: Option<String>,
    pub on_behalf_of: Option<String>,
    /// What the change did to its document (default for changes of no document).
    pub details: ChangeDetails,
}

/// Cursor-paginated list: `nextCursor` is passed back as `cursor` for the next page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
}
