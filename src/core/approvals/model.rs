//! Change requests: a write that touches a protected environment waits for approvals.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::ids::ConfigId;
use crate::core::model::ConfigDocument;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeOperation {
    /// A new version with this document.
    Put {
        document: Box<ConfigDocument>,
    },
    /// A new version equal to `target_version`.
    Rollback {
        #[serde(rename = "targetVersion")]
        target_version: u64,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    pub id: String,
    pub config_id: ConfigId,
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
