//! What the secret store needs beyond the versioned-document port.

use async_trait::async_trait;

use super::Committed;
use crate::core::error::Result;
use crate::core::ids::SecretName;
use crate::core::model::AuditDraft;
use crate::core::secrets::model::SecretDocument;

/// Replace the sealed document of one stored version by the same value wrapped under another
/// key (its data key and ciphertext unchanged). Fails with `ConcurrentModification` unless the
/// version's checksum is still `expected_checksum`. Records `secret.rewrapped` and its audit
/// record in the same transaction.
#[derive(Debug, Clone)]
pub struct Rewrap {
    pub name: SecretName,
    pub version: u64,
    pub document: SecretDocument,
    pub checksum: String,
    pub expected_checksum: String,
    pub audit: AuditDraft,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn rewrap(&self, rewrap: Rewrap) -> Result<Committed>;
}
