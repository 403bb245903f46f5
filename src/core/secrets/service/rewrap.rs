//! Re-wrapping every stored version's data key under the current key-encryption key.

use super::{RewrapReport, SecretService};
use crate::core::access::{Caller, Permission};
use crate::core::configs::now;
use crate::core::error::Result;
use crate::core::model::{AuditDraft, Metadata};
use crate::core::ports::{Documents, Rewrap};
use crate::core::secrets::model::SecretDocument;
use crate::core::validation::check_metadata;
use crate::core::versioned::Document;

impl SecretService {
    /// Wraps the data key of every stored version (of live and deleted secrets) under the
    /// current key-encryption key, so older key files can be retired. The values, data keys and
    /// ciphertexts do not change; each re-wrapped version is audited (`secret.rewrap`).
    pub async fn rewrap_all(&self, caller: &Caller, metadata: Metadata) -> Result<RewrapReport> {
        caller.require(Permission::ManageSecrets)?;
        check_metadata(&metadata)?;
        self.configs.ensure_writable()?;
        let secrets = self.store.secrets();
        let heads = secrets.heads().await?;
        // Every refusal before anything is sealed again.
        for head in &heads {
            caller.require_on(Permission::ManageSecrets, head.latest.id.as_str())?;
        }
        let webhooks_exist = !self.store.webhooks().await?.is_empty();
        if webhooks_exist {
            // Webhooks belong to no id: their secrets need a caller scoped to no prefix.
            caller.require_unscoped_ids()?;
        }
        let mut report = RewrapReport {
            key_id: self.keyring.current_id().to_owned(),
            rewrapped: 0,
            unchanged: 0,
            webhook_secrets_rewrapped: 0,
            webhook_secrets_unchanged: 0,
        };
        for head in heads {
            let name = head.latest.id.clone();
            let mut before = None;
            loop {
                let page = secrets.versions(&name, before, 100).await?;
                let Some(last) = page.last() else { break };
                before = Some(last.version);
                for version in page {
                    if version.document.sealed.key_id == report.key_id {
                        report.unchanged += 1;
                        continue;
                    }
                    let document = SecretDocument {
                        sealed: self.keyring.rewrap(
                            name.as_str(),
                            version.version,
                            &version.document.sealed,
                        )?,
                        ..version.document.clone()
                    };
                    let rewrap = Rewrap {
                        name: name.clone(),
                        version: version.version,
                        checksum: document.checksum()?,
                        document,
                        expected_checksum: version.checksum.clone(),
                        audit: AuditDraft {
                            actor: metadata.actor.clone(),
                            action: "secret.rewrap",
                            environments: Vec::new(),
                            message: metadata.message.clone(),
                            on_behalf_of: metadata.on_behalf_of.clone(),
                            details: Default::default(),
                        },
                        at: now(),
                    };
                    let store = self.store.clone();
                    self.configs
                        .commit(async move { store.rewrap(rewrap).await })
                        .await?;
                    report.rewrapped += 1;
                }
            }
        }
        if webhooks_exist {
            (
                report.webhook_secrets_rewrapped,
                report.webhook_secrets_unchanged,
            ) = self.webhooks.reseal(&metadata).await?;
        }
        Ok(report)
    }
}
