//! A secret of the built-in store: a versioned document whose body is only ciphertext.

use serde::{Deserialize, Serialize};

use super::crypto::Sealed;
use super::rotation::RotationPolicy;
use crate::core::ids::SecretName;
use crate::core::versioned::{Document, DocumentKind, Head, Version};

/// How a value was given, so a read returns it in the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// A JSON string.
    String,
    /// A JSON object (its canonical text is sealed).
    Object,
}

impl ValueFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueFormat::String => "string",
            ValueFormat::Object => "object",
        }
    }
}

/// One version of a secret as stored: the sealed value (see `crypto`), its format, and where the
/// version stands among the stages. Only `sealed` is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretDocument {
    pub format: ValueFormat,
    pub sealed: Sealed,
    /// The rotation policy in force from this version on (carried to the versions after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationPolicy>,
    /// A version staged as `pending`: stored and readable by admins, not yet what references
    /// resolve to. A promotion makes a new current version with its value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// For a version that became current: the version that was current just before it (the
    /// one served as `previous` during the grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
    /// How this version came to be, when not a plain write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// How a version that was not written by a plain `PUT` came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Origin {
    /// A rotation: by the scheduler at its due time, or asked for through `…/rotate`.
    #[serde(rename_all = "camelCase")]
    Rotation {
        scheduled: bool,
        /// The due time a scheduled rotation served.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The promotion of pending version `from` to current.
    #[serde(rename_all = "camelCase")]
    Promotion { from: u64 },
}

impl Document for SecretDocument {
    type Id = SecretName;
    const KIND: DocumentKind = DocumentKind::Secret;
}

pub type SecretVersion = Version<SecretDocument>;
pub type SecretHead = Head<SecretDocument>;

/// The stages a version can have (as AWS Secrets Manager's AWSCURRENT / AWSPREVIOUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The live version: what references resolve to.
    Current,
    /// The version current before it, served until its grace period ends.
    Previous,
    /// A version staged for the next rotation, not yet served to references.
    Pending,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Current => "current",
            Stage::Previous => "previous",
            Stage::Pending => "pending",
        }
    }

    pub fn parse(text: &str, field: &str) -> crate::core::error::Result<Stage> {
        match text {
            "current" => Ok(Stage::Current),
            "previous" => Ok(Stage::Previous),
            "pending" => Ok(Stage::Pending),
            _ => Err(crate::core::error::Error::invalid(
                field,
                "stage is current, previous or pending",
            )),
        }
    }
}

/// What listing and reading a secret's metadata show: never a value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSummary {
    pub name: SecretName,
    pub version: u64,
    pub format: ValueFormat,
    pub key_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl SecretSummary {
    pub fn of(version: &SecretVersion) -> SecretSummary {
        SecretSummary {
            name: version.id.clone(),
            version: version.version,
            format: version.document.format,
            key_id: version.document.sealed.key_id.clone(),
            created_at: version.created_at,
        }
    }
}

/// One version in a secret's metadata, with its stages.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersionInfo {
    pub version: u64,
    pub stages: Vec<Stage>,
    pub format: ValueFormat,
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A value read: the version it came from and the value as it was written.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValue {
    pub name: SecretName,
    pub version: u64,
    pub value: serde_json::Value,
}
