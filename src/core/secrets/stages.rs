//! Which version of a secret holds each stage. `current` is the newest version that is not
//! pending; `previous` is the version current before it (each current version names it), served
//! until the grace period of the current version's rotation policy ends; `pending` is the
//! newest version when it is a pending one.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::model::{SecretDocument, SecretHead, SecretVersion, Stage};
use crate::core::error::Result;
use crate::core::ports::DocumentStore;

/// Versions read per page while looking for the current one below pending versions.
const PAGE: u32 = 100;

/// The staged versions of a live secret.
#[derive(Debug, Clone)]
pub struct SecretStages {
    pub current: Arc<SecretVersion>,
    /// The version current before `current`, whether or not its grace period is over: see
    /// [`SecretStages::previous_at`].
    pub previous: Option<Arc<SecretVersion>>,
    pub pending: Option<Arc<SecretVersion>>,
}

impl SecretStages {
    /// The stages of the secret `head` is the head of; `None` when it is deleted.
    pub async fn load(
        store: &dyn DocumentStore<SecretDocument>,
        head: &SecretHead,
    ) -> Result<Option<SecretStages>> {
        let Some(latest) = head.live() else {
            return Ok(None);
        };
        let name = &latest.id;
        let (current, pending) = if latest.document.pending {
            let mut before = latest.version;
            loop {
                let page = store.versions(name, Some(before), PAGE).await?;
                let Some(last) = page.last() else {
                    // Only pending versions: nothing is served yet.
                    return Ok(None);
                };
                before = last.version;
                if let Some(current) = page.into_iter().find(|v| !v.document.pending) {
                    break (Arc::new(current), Some(latest.clone()));
                }
            }
        } else {
            (latest.clone(), None)
        };
        let previous = match current.document.previous {
            Some(number) => store.version(name, number).await?.map(Arc::new),
            None => None,
        };
        Ok(Some(SecretStages {
            current,
            previous,
            pending,
        }))
    }

    /// The stages once `new`, the version after every one these stages know, is appended;
    /// `None` when they cannot tell without reading older versions.
    pub fn after(&self, new: Arc<SecretVersion>) -> Option<SecretStages> {
        if new.document.pending {
            return Some(SecretStages {
                current: self.current.clone(),
                previous: self.previous.clone(),
                pending: Some(new),
            });
        }
        match new.document.previous {
            Some(number) if number == self.current.version => Some(SecretStages {
                previous: Some(self.current.clone()),
                current: new,
                pending: None,
            }),
            None => Some(SecretStages {
                current: new,
                previous: None,
                pending: None,
            }),
            Some(_) => None,
        }
    }

    /// When `previous` stops being served: the current version's creation plus its policy's
    /// grace period; at once without a policy (no grace period was asked for, and a value
    /// replaced in a hurry must stop being served). `None` when there is no previous version.
    pub fn previous_expires_at(&self) -> Option<DateTime<Utc>> {
        self.previous.as_ref()?;
        let grace = self
            .current
            .document
            .rotation
            .as_ref()
            .map_or(0, |policy| policy.grace_period_secs);
        Some(self.current.created_at + seconds(grace))
    }

    /// The previous version, if it is still in its grace period at `now`.
    pub fn previous_at(&self, now: DateTime<Utc>) -> Option<&Arc<SecretVersion>> {
        let previous = self.previous.as_ref()?;
        match self.previous_expires_at() {
            Some(expires) if expires <= now => None,
            _ => Some(previous),
        }
    }

    /// When the next rotation is due: the current version's creation plus its policy's interval.
    pub fn next_rotation_at(&self) -> Option<DateTime<Utc>> {
        let policy = self.current.document.rotation.as_ref()?;
        Some(self.current.created_at + seconds(policy.interval_secs))
    }

    /// The version holding `stage` at `now`.
    pub fn at(&self, stage: Stage, now: DateTime<Utc>) -> Option<&Arc<SecretVersion>> {
        match stage {
            Stage::Current => Some(&self.current),
            Stage::Previous => self.previous_at(now),
            Stage::Pending => self.pending.as_ref(),
        }
    }

    /// The stages version `number` holds at `now`.
    pub fn of(&self, number: u64, now: DateTime<Utc>) -> Vec<Stage> {
        [Stage::Current, Stage::Previous, Stage::Pending]
            .into_iter()
            .filter(|&stage| self.at(stage, now).is_some_and(|v| v.version == number))
            .collect()
    }
}

/// Seconds as a duration; policies bound them to ten years, so this is exact.
fn seconds(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}
