//! A webhook's signing secrets: new ones, rotation (the old one keeps signing during an
//! overlap) and sealing them again under the keyring's current key.

use super::{
    NotificationService, Rotation, WithSecret, audit, require_manager, retrying_when_moved,
    sealing_name,
};
use crate::core::access::Caller;
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::model::{AuditDraft, Metadata};
use crate::core::notifications::model::SigningSecret;
use crate::core::notifications::signing;
use crate::core::secrets::service::SealedElsewhere;
use crate::core::service::now;

/// How long a rotated-out secret keeps signing by default, and at most.
const DEFAULT_OVERLAP_SECS: u64 = 24 * 3600;
const MAX_OVERLAP_SECS: u64 = 7 * 24 * 3600;
/// Most earlier secrets that sign beside the current one (rotations within an overlap).
const MAX_PREVIOUS_SECRETS: usize = 3;

impl NotificationService {
    /// A new current secret; the old one keeps signing for `overlap_secs` (default a day).
    pub async fn rotate(
        &self,
        caller: &Caller,
        id: &str,
        rotation: Rotation,
    ) -> Result<WithSecret> {
        require_manager(caller)?;
        // A change of its health meanwhile: rotate what is there now.
        retrying_when_moved(|| self.try_rotate(caller, id, rotation.clone())).await
    }

    async fn try_rotate(
        &self,
        caller: &Caller,
        id: &str,
        rotation: Rotation,
    ) -> Result<WithSecret> {
        let overlap = rotation.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
        if overlap > MAX_OVERLAP_SECS {
            return Err(Error::invalid(
                "/overlapSecs",
                format!("overlapSecs is at most {MAX_OVERLAP_SECS} (7 days)"),
            ));
        }
        let mut webhook = self.stored(id).await?;
        let expected = webhook.seq;
        let at = now();
        let generation = webhook
            .secrets
            .iter()
            .map(|s| s.generation)
            .max()
            .unwrap_or(0)
            + 1;
        let (secret, sealed) = self.new_secret(id, generation)?;
        let expires_at = at + chrono::Duration::seconds(overlap as i64);
        // The secret signing until now signs on for the overlap; earlier ones still within
        // their own overlap keep it (never past the new one's end), so a second rotation does
        // not cut short what the first promised. Newest first, a few at most.
        let mut previous: Vec<SigningSecret> = webhook
            .secrets
            .into_iter()
            .filter(|s| s.expires_at.is_none_or(|end| end > at))
            .map(|s| SigningSecret {
                expires_at: Some(s.expires_at.map_or(expires_at, |end| end.min(expires_at))),
                ..s
            })
            .collect();
        previous.sort_by_key(|s| std::cmp::Reverse(s.generation));
        previous.truncate(MAX_PREVIOUS_SECRETS);
        if overlap == 0 {
            previous.clear();
        }
        webhook.secrets = std::iter::once(sealed).chain(previous).collect();
        webhook.seq = expected + 1;
        webhook.updated_at = at;
        let audit = audit(caller, "webhook.rotate");
        self.write(webhook, Some(expected), kind::WEBHOOK_UPDATED, audit)
            .await?;
        let webhook = self.get(caller, id).await?;
        Ok(WithSecret { webhook, secret })
    }

    async fn try_reseal(&self, id: &str, metadata: &Metadata) -> Result<(u64, u64)> {
        let mut webhook = match self.stored(id).await {
            Ok(webhook) => webhook,
            // Deleted since the list was read: nothing left to seal.
            Err(Error::NotFound { .. }) => return Ok((0, 0)),
            Err(error) => return Err(error),
        };
        let current = self.keyring.current_id();
        let stale = webhook
            .secrets
            .iter()
            .filter(|s| s.sealed.key_id != current)
            .count() as u64;
        let unchanged = webhook.secrets.len() as u64 - stale;
        if stale == 0 {
            return Ok((0, unchanged));
        }
        let name = sealing_name(id);
        for secret in webhook
            .secrets
            .iter_mut()
            .filter(|s| s.sealed.key_id != current)
        {
            secret.sealed = self
                .keyring
                .rewrap(&name, secret.generation, &secret.sealed)?;
        }
        let expected = webhook.seq;
        webhook.seq = expected + 1;
        webhook.updated_at = now();
        let audit = AuditDraft {
            actor: metadata.actor.clone(),
            action: "webhook.rewrap",
            environments: Vec::new(),
            message: metadata.message.clone(),
            on_behalf_of: metadata.on_behalf_of.clone(),
            details: Default::default(),
        };
        self.write(webhook, Some(expected), kind::WEBHOOK_UPDATED, audit)
            .await?;
        Ok((stale, unchanged))
    }

    pub(super) fn new_secret(&self, id: &str, generation: u64) -> Result<(String, SigningSecret)> {
        let bytes = signing::new_secret()?;
        let sealed = self.keyring.seal(&sealing_name(id), generation, &bytes)?;
        let secret = SigningSecret {
            generation,
            sealed,
            expires_at: None,
        };
        Ok((signing::secret_text(&bytes), secret))
    }
}

/// Every webhook signing secret that is not under the keyring's current key, sealed again
/// under it; the secret itself is unchanged, so receivers notice nothing. Part of the secret
/// store's re-wrap (`SecretService::rewrap_all`, which decides who may).
#[async_trait::async_trait]
impl SealedElsewhere for NotificationService {
    async fn reseal(&self, metadata: &Metadata) -> Result<(u64, u64)> {
        let mut counts = (0, 0);
        for listed in self.store.webhooks().await? {
            let (resealed, unchanged) =
                retrying_when_moved(|| self.try_reseal(&listed.id, metadata)).await?;
            counts.0 += resealed;
            counts.1 += unchanged;
        }
        Ok(counts)
    }
}
