//! Rotation: a rotation asked for now, a pending version promoted, and the sweep that rotates
//! every secret whose policy is due.

use super::{Draft, MAX_VALUE_BYTES, RotateRequest, SecretService, plaintext};
use crate::core::access::Caller;
use crate::core::error::{Error, Result};
use crate::core::ids::SecretName;
use crate::core::model::Metadata;
use crate::core::ports::Documents;
use crate::core::secrets::model::{Origin, SecretHead, SecretSummary, SecretVersion};
use crate::core::secrets::stages::SecretStages;

impl SecretService {
    /// A rotation asked for now: the supplied value, or one the policy generates; current
    /// unless `pending` is asked.
    pub async fn rotate(
        &self,
        caller: &Caller,
        name: &SecretName,
        request: RotateRequest,
        metadata: Metadata,
    ) -> Result<SecretSummary> {
        let (head, stages) = self.writing_live(caller, name, &metadata).await?;
        let rotation = stages.current.document.rotation.clone();
        let (format, text) = match request.value {
            Some(value) => {
                if let Some(policy) = &rotation {
                    policy.check_room(&value, MAX_VALUE_BYTES)?;
                }
                plaintext(&value)?
            }
            None => {
                let policy = rotation.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "/value",
                        "the secret has no rotation policy to generate a value: supply one",
                    )
                })?;
                plaintext(&policy.generate(&self.open(&stages.current)?)?)?
            }
        };
        if let Some(policy) = &rotation {
            policy.check(format, "/rotation")?;
        }
        let draft = Draft {
            format,
            text,
            rotation,
            pending: request.pending,
            origin: Some(Origin::Rotation {
                scheduled: false,
                due_at: None,
            }),
            action: "secret.rotate",
        };
        self.write(name, head, Some(&stages), draft, metadata, request.expected)
            .await
    }

    /// Makes the pending version current: a new version with its value (`origin.promotion`),
    /// the current one becoming `previous`. `version`, when given, must be the pending one.
    pub async fn promote(
        &self,
        caller: &Caller,
        name: &SecretName,
        version: Option<u64>,
        metadata: Metadata,
    ) -> Result<SecretSummary> {
        if version == Some(0) {
            return Err(Error::invalid("version", "versions start at 1"));
        }
        let (head, stages) = self.writing_live(caller, name, &metadata).await?;
        let pending = match (&stages.pending, version) {
            (Some(pending), Some(number)) if pending.version != number => {
                return Err(Error::VersionConflict {
                    expected: number,
                    actual: pending.version,
                });
            }
            (Some(pending), _) => pending.clone(),
            (None, _) => {
                return Err(Error::not_found("pending secret version", name.as_str()));
            }
        };
        self.promote_pending(name, head, &stages, &pending, None, metadata)
            .await
    }

    /// Rotates every secret whose rotation is due at `now` (the scheduler calls this on the
    /// replica holding the duties lease): promotes a pending version when there is one, else
    /// generates a value; a policy that waits for a supplied value and has none pending waits.
    /// Each rotation is conditional on the version it read, so one due time gets one rotation
    /// however many callers race. Returns the number rotated.
    pub async fn rotate_due(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u32> {
        let mut rotated = 0;
        let heads = self.store.secrets().heads().await?;
        for head in heads.iter().filter(|h| !h.deleted) {
            let name = &head.latest.id;
            // A policy that waits for a supplied value, with none pending, costs nothing until
            // one is supplied (its due time stays past by design).
            let due = self.cache.cached_secret(name).is_some_and(|stages| {
                let waiting = stages.pending.is_none()
                    && stages
                        .current
                        .document
                        .rotation
                        .as_ref()
                        .is_some_and(|policy| !policy.generates());
                !waiting && stages.next_rotation_at().is_some_and(|due| due <= now)
            });
            let version = head.latest.version;
            if !due || self.failed_rotations.waits(name, version, now) {
                continue;
            }
            match self.rotate_one(name, now).await {
                Ok(true) => {
                    rotated += 1;
                    self.failed_rotations.forget(name);
                    metrics::counter!("summit_secret_rotations_total", "result" => "success")
                        .increment(1);
                }
                Ok(false) => self.failed_rotations.forget(name),
                // Another replica (or an operator) wrote first: this due time is served.
                Err(Error::VersionConflict { .. }) => {}
                Err(error) => {
                    let retry_in = self.failed_rotations.failed(name, version, now);
                    metrics::counter!("summit_secret_rotations_total", "result" => "failure")
                        .increment(1);
                    tracing::warn!(
                        secret = %name,
                        %error,
                        retry_in_secs = retry_in.num_seconds(),
                        "scheduled rotation failed"
                    );
                }
            }
        }
        Ok(rotated)
    }

    async fn rotate_one(
        &self,
        name: &SecretName,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let (head, stages) = self.staged(name).await?;
        let Some(stages) = stages else {
            return Ok(false);
        };
        let (Some(policy), Some(due_at)) = (
            stages.current.document.rotation.clone(),
            stages.next_rotation_at(),
        ) else {
            return Ok(false);
        };
        if due_at > now {
            return Ok(false);
        }
        let metadata = Metadata {
            actor: "summit-config".to_owned(),
            message: Some(format!("scheduled rotation due at {}", due_at.to_rfc3339())),
            ..Default::default()
        };
        if let Some(pending) = stages.pending.clone() {
            self.promote_pending(name, head, &stages, &pending, Some(due_at), metadata)
                .await?;
            return Ok(true);
        }
        if !policy.generates() {
            return Ok(false); // waits for a supplied value
        }
        let (format, text) = plaintext(&policy.generate(&self.open(&stages.current)?)?)?;
        let draft = Draft {
            format,
            text,
            rotation: Some(policy),
            pending: false,
            origin: Some(Origin::Rotation {
                scheduled: true,
                due_at: Some(due_at),
            }),
            action: "secret.rotate",
        };
        self.write(name, head, Some(&stages), draft, metadata, None)
            .await?;
        Ok(true)
    }

    async fn promote_pending(
        &self,
        name: &SecretName,
        head: Option<SecretHead>,
        stages: &SecretStages,
        pending: &SecretVersion,
        due_at: Option<chrono::DateTime<chrono::Utc>>,
        metadata: Metadata,
    ) -> Result<SecretSummary> {
        let text = self
            .keyring
            .open(name.as_str(), pending.version, &pending.document.sealed)?;
        let draft = Draft {
            format: pending.document.format,
            text,
            rotation: stages.current.document.rotation.clone(),
            pending: false,
            origin: Some(match due_at {
                Some(due_at) => Origin::Rotation {
                    scheduled: true,
                    due_at: Some(due_at),
                },
                None => Origin::Promotion {
                    from: pending.version,
                },
            }),
            action: "secret.promote",
        };
        self.write(name, head, Some(stages), draft, metadata, None)
            .await
    }
}
