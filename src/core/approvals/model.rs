//! Change requests: a write (of a config or a flag) that touches a protected environment waits
//! for approvals.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::deployments::strategy::Strategy;
use crate::core::flags::FlagDefinition;
use crate::core::ids::{ConfigId, Environment, FlagKey};
use crate::core::model::ConfigDocument;
use crate::core::versioned::DocumentKind;

/// The document a change request changes. In JSON `"configId": …` or `"flagKey": …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Subject {
    #[serde(rename = "configId")]
    Config(ConfigId),
    #[serde(rename = "flagKey")]
    Flag(FlagKey),
}

impl Subject {
    pub fn as_str(&self) -> &str {
        match self {
            Subject::Config(id) => id.as_str(),
            Subject::Flag(key) => key.as_str(),
        }
    }

    pub fn kind(&self) -> DocumentKind {
        match self {
            Subject::Config(_) => DocumentKind::Config,
            Subject::Flag(_) => DocumentKind::Flag,
        }
    }

    /// How a store names the kind (`config`, `flag`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Subject::Config(_) => "config",
            Subject::Flag(_) => "flag",
        }
    }

    /// The subject a store row names: `kind` as `kind_name` says it, and the id.
    pub fn parse(kind: &str, id: &str) -> crate::core::error::Result<Subject> {
        match kind {
            "config" => Ok(Subject::Config(ConfigId::parse(id)?)),
            "flag" => Ok(Subject::Flag(FlagKey::parse(id)?)),
            other => Err(crate::core::error::Error::internal(format!(
                "unknown change request subject kind '{other}'"
            ))),
        }
    }
}

/// The document a `put` proposes: a config document or a flag definition (told apart by their
/// required fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Proposal {
    Config(ConfigDocument),
    Flag(FlagDefinition),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeRequestStatus {
    Pending,
    Approved,
    Rejected,
    Cancelled,
    Applied,
}

impl ChangeRequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeRequestStatus::Pending => "pending",
            ChangeRequestStatus::Approved => "approved",
            ChangeRequestStatus::Rejected => "rejected",
            ChangeRequestStatus::Cancelled => "cancelled",
            ChangeRequestStatus::Applied => "applied",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
    }

    /// A list filter as every transport takes it: a status, or `all` (no filter, `None`).
    pub fn filter(text: &str) -> crate::core::error::Result<Option<Self>> {
        if text == "all" {
            return Ok(None);
        }
        ChangeRequestStatus::parse(text).map(Some).ok_or_else(|| {
            crate::core::error::Error::invalid(
                "status",
                "status is pending, approved, rejected, cancelled, applied or all",
            )
        })
    }

    /// Whether no further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ChangeRequestStatus::Rejected
                | ChangeRequestStatus::Cancelled
                | ChangeRequestStatus::Applied
        )
    }
}

/// What the change does once applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeOperation {
    /// A new version with this document.
    Put {
        document: Box<Proposal>,
    },
    /// A new version equal to `target_version`.
    Rollback {
        #[serde(rename = "targetVersion")]
        target_version: u64,
    },
    Delete,
    /// A deployment of `version` to `environment` (of a config): started once approved.
    Deploy(Box<DeployProposal>),
}

/// What an approved deployment request starts: the strategy as it was when asked (what the
/// approvers saw), the instances resolved when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployProposal {
    pub environment: Environment,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy_name: Option<String>,
    pub strategy: Strategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<String>>,
}

impl ChangeOperation {
    /// The version a rollback writes again.
    pub fn target_version(&self) -> Option<u64> {
        match self {
            ChangeOperation::Rollback { target_version } => Some(*target_version),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    pub id: String,
    #[serde(flatten)]
    pub subject: Subject,
    pub operation: ChangeOperation,
    /// The live version the change was made against; applying needs it still live.
    pub base_version: u64,
    /// The protected environments the change touches.
    pub environments: Vec<String>,
    pub required_approvals: u32,
    #[serde(default)]
    pub approvals: Vec<Approval>,
    pub status: ChangeRequestStatus,
    /// The authenticated identity that asked.
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why it was rejected or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The version it became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
