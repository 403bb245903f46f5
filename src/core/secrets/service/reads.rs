//! Reading secrets: listings and metadata without values, and the one audited read of a value.

use std::sync::Arc;

use super::{MAX_LISTED_VERSIONS, SecretInfo, SecretService, Selector};
use crate::core::access::{Caller, Permission};
use crate::core::configs::now;
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::ids::SecretName;
use crate::core::model::{AuditDraft, Metadata};
use crate::core::ports::{Documents, Record};
use crate::core::secrets::model::{SecretHead, SecretSummary, SecretValue, SecretVersionInfo};
use crate::core::secrets::stages::SecretStages;

impl SecretService {
    /// Live secrets the caller may manage, by name, each at its current version; no values.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<SecretSummary>> {
        caller.require(Permission::ManageSecrets)?;
        Ok(self
            .store
            .secrets()
            .heads()
            .await?
            .iter()
            .filter_map(|head| head.live())
            .filter(|latest| caller.allows_resource(latest.id.as_str()))
            .filter_map(|latest| self.cache.cached_secret(&latest.id))
            .map(|stages| SecretSummary::of(&stages.current))
            .collect())
    }

    /// A secret's versions (newest first, at most 100) and their stages; no values.
    pub async fn describe(&self, caller: &Caller, name: &SecretName) -> Result<SecretInfo> {
        caller.require_on(Permission::ManageSecrets, name.as_str())?;
        let secrets = self.store.secrets();
        let versions = secrets.versions(name, None, MAX_LISTED_VERSIONS).await?;
        // The stages of the versions listed: the (cached) head may not have the newest yet.
        let (head, _) = self.staged(name).await?;
        let head = match (head, versions.first()) {
            (Some(head), Some(newest)) if newest.version > head.latest.version => SecretHead {
                latest: Arc::new(newest.clone()),
                deleted: false,
            },
            (Some(head), _) => head,
            (None, _) => return Err(Error::not_found("secret", name.as_str())),
        };
        let stages = SecretStages::load(secrets, &head)
            .await?
            .ok_or_else(|| Error::not_found("secret", name.as_str()))?;
        let at = now();
        let versions = versions
            .into_iter()
            .map(|v| SecretVersionInfo {
                version: v.version,
                stages: stages.of(v.version, at),
                format: v.document.format,
                key_id: v.document.sealed.key_id,
                origin: v.document.origin,
                actor: v.metadata.actor,
                message: v.metadata.message,
                created_at: v.created_at,
            })
            .collect();
        Ok(SecretInfo {
            name: name.clone(),
            rotation: stages.current.document.rotation.clone(),
            next_rotation_at: stages.next_rotation_at(),
            previous_expires_at: stages.previous_expires_at(),
            versions,
        })
    }

    /// The value of one version, opened for this caller; recorded in the audit (`secret.read`)
    /// before it is returned.
    pub async fn value(
        &self,
        caller: &Caller,
        name: &SecretName,
        selector: Selector,
        metadata: &Metadata,
    ) -> Result<SecretValue> {
        caller.require_on(Permission::ManageSecrets, name.as_str())?;
        let version = self.selected(name, selector).await?;
        let value = self.open(&version)?;
        self.store
            .record(Record {
                kind: kind::SECRET_READ,
                subject: name.to_string(),
                version: version.version,
                audit: AuditDraft {
                    actor: metadata.actor.clone(),
                    action: "secret.read",
                    environments: Vec::new(),
                    message: metadata.message.clone(),
                    on_behalf_of: metadata.on_behalf_of.clone(),
                    details: Default::default(),
                },
                at: now(),
            })
            .await?;
        Ok(SecretValue {
            name: name.clone(),
            version: version.version,
            value,
        })
    }
}
