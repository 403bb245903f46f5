//! Who may do what: roles, scopes, API tokens, and denied attempts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Roles as in DESIGN.md. `admin` holds every permission; `config-admin` includes reading;
/// `secrets-admin` is reading plus resolving secrets.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ConfigReader,
    ConfigAdmin,
    SecretsAdmin,
    /// A service's own token: registers and heartbeats its instances (scope it to the service
    /// with `scopes.services`).
    ServiceInstance,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ConfigReader => "config-reader",
            Role::ConfigAdmin => "config-admin",
            Role::SecretsAdmin => "secrets-admin",
            Role::ServiceInstance => "service-instance",
            Role::Admin => "admin",
        }
    }
}

/// Limits on what a token reaches; empty lists mean no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scopes {
    /// Config ids (and flag keys) the token may touch start with one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_prefixes: Vec<String>,
    /// Environments whose views the token may read or change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Services whose instances the token may register, heartbeat and deregister.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

impl Scopes {
    pub fn is_unlimited(&self) -> bool {
        self.config_prefixes.is_empty() && self.environments.is_empty() && self.services.is_empty()
    }

    pub fn allows_service(&self, service: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == service)
    }

    pub fn allows_resource(&self, id: &str) -> bool {
        self.config_prefixes.is_empty()
            || self
                .config_prefixes
                .iter()
                .any(|p| id.starts_with(p.as_str()))
    }

    pub fn allows_environment(&self, environment: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == environment)
    }
}

/// A stored API token. The token text itself is never stored: only its SHA-256 (`hash`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub scopes: Scopes,
    /// Lowercase hex SHA-256 of the token text; never shown by the API.
    #[serde(skip_serializing, default)]
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// An attempt refused for lack of a right (append-only, like the audit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// Given by the store.
    #[serde(default)]
    pub id: u64,
    pub at: DateTime<Utc>,
    /// The authenticated identity that was refused.
    pub actor: String,
    /// What it tried, e.g. `PUT /api/v1/configs/{id}` or `summit.config.v1.ConfigService/PutConfig`.
    pub operation: String,
    /// The config id, flag key or environment it was refused on, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub reason: String,
}
