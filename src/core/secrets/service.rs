//! `SecretService`: the built-in secret store for both transports. Values are sealed before
//! they reach the store and opened only for an explicit, audited read by a caller with
//! `manage-secrets`; listings and metadata never carry a value.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::crypto::Keyring;
use super::model::{
    SecretDocument, SecretSummary, SecretValue, SecretVersion, SecretVersionInfo, Stage,
    ValueFormat,
};
use crate::core::access::{Caller, Permission};
use crate::core::configs::{ConfigService, now};
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::ids::SecretName;
use crate::core::model::{AuditDraft, ConfigDocument, Metadata};
use crate::core::ports::{
    Documents, Record, Rewrap, SecretDeleteWrite, SecretWrite, Storage, Store,
};
use crate::core::secrets::SECRET_KEY;
use crate::core::validation::check_metadata;
use crate::core::versioned::{Document, NewVersion};

/// Largest value, in bytes of its JSON text.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// How many versions a secret's metadata lists (newest first).
const MAX_LISTED_VERSIONS: u32 = 100;

/// Which version of a secret a read wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Stage(Stage),
    Version(u64),
}

/// What a re-wrap did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RewrapReport {
    /// The key everything is wrapped under now.
    pub key_id: String,
    /// Versions wrapped again.
    pub rewrapped: u64,
    /// Versions that already were under that key.
    pub unchanged: u64,
}

/// A secret's metadata: its versions and their stages, never a value.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretInfo {
    pub name: SecretName,
    pub versions: Vec<SecretVersionInfo>,
}

pub struct SecretService {
    store: Arc<dyn Store>,
    /// Commits and publishes through the same path as config writes (one change log, one bus).
    configs: Arc<ConfigService>,
    keyring: Arc<Keyring>,
}

/// The text a value is sealed as, and its format.
fn plaintext(value: &Value) -> Result<(ValueFormat, Vec<u8>)> {
    let (format, text) = match value {
        Value::String(text) => (ValueFormat::String, text.clone().into_bytes()),
        Value::Object(_) => (
            ValueFormat::Object,
            serde_json::to_vec(value).map_err(Error::internal)?,
        ),
        _ => {
            return Err(Error::invalid(
                "/value",
                "a secret value is a string or a JSON object",
            ));
        }
    };
    if text.is_empty() || text.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "/value",
            format!("a secret value is 1 to {MAX_VALUE_BYTES} bytes"),
        ));
    }
    Ok((format, text))
}

impl SecretService {
    pub fn new(storage: Storage, configs: Arc<ConfigService>, keyring: Arc<Keyring>) -> Self {
        SecretService {
            store: storage.store,
            configs,
            keyring,
        }
    }

    /// A new version of `name` holding `value` (a string or an object), sealed.
    pub async fn put(
        &self,
        caller: &Caller,
        name: &SecretName,
        value: &Value,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<SecretSummary> {
        caller.require_on(Permission::ManageSecrets, name.as_str())?;
        check_metadata(&metadata)?;
        let (format, text) = plaintext(value)?;
        self.configs.ensure_writable()?;
        let head = self.store.secrets().head(name).await?;
        let live = head.as_ref().map_or(0, |h| h.live_version());
        if let Some(expected) = expected
            && expected != live
        {
            return Err(Error::VersionConflict {
                expected,
                actual: live,
            });
        }
        // The store numbers a version after the newest one, deleted or not; the number is sealed
        // with the value, and the expectation on the live version makes the guess exact.
        let number = head.as_ref().map_or(1, |h| h.latest.version + 1);
        let document = SecretDocument {
            format,
            sealed: self.keyring.seal(name.as_str(), number, &text)?,
        };
        let audit = AuditDraft {
            actor: metadata.actor.clone(),
            action: "secret.put",
            environments: Vec::new(),
            message: metadata.message.clone(),
            on_behalf_of: metadata.on_behalf_of.clone(),
        };
        let version = NewVersion {
            id: name.clone(),
            checksum: document.checksum()?,
            document,
            metadata,
            created_at: now(),
            rollback_of: None,
        };
        let write = SecretWrite {
            version: version.clone(),
            expected_live: live,
            expected_schema: 0,
            audit,
            applies: None,
        };
        let store = self.store.clone();
        let committed = self
            .configs
            .commit(async move { store.secrets().append(write).await })
            .await?;
        if committed.version != number {
            return Err(Error::internal(format!(
                "secret {name} was sealed as version {number} but stored as {}",
                committed.version
            )));
        }
        let summary = SecretSummary::of(&version.numbered(number));
        self.announce(name, number).await?;
        Ok(summary)
    }

    /// Live secrets the caller may manage, by name; no values.
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
            .map(|latest| SecretSummary::of(latest))
            .collect())
    }

    /// A secret's versions (newest first, at most 100) and their stages; no values.
    pub async fn describe(&self, caller: &Caller, name: &SecretName) -> Result<SecretInfo> {
        caller.require_on(Permission::ManageSecrets, name.as_str())?;
        let live = self.live_version(name).await?;
        let versions = self
            .store
            .secrets()
            .versions(name, None, MAX_LISTED_VERSIONS)
            .await?;
        let previous = versions
            .iter()
            .map(|v| v.version)
            .find(|&number| number < live);
        let versions = versions
            .into_iter()
            .map(|v| SecretVersionInfo {
                version: v.version,
                stages: match v.version {
                    n if n == live => vec![Stage::Current],
                    n if Some(n) == previous => vec![Stage::Previous],
                    _ => Vec::new(),
                },
                format: v.document.format,
                key_id: v.document.sealed.key_id,
                actor: v.metadata.actor,
                message: v.metadata.message,
                created_at: v.created_at,
            })
            .collect();
        Ok(SecretInfo {
            name: name.clone(),
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
        let text = self
            .keyring
            .open(name.as_str(), version.version, &version.document.sealed)?;
        let value = match version.document.format {
            ValueFormat::String => Value::String(
                String::from_utf8(text)
                    .map_err(|_| Error::internal(format!("secret {name} is not text")))?,
            ),
            ValueFormat::Object => serde_json::from_slice(&text)
                .map_err(|_| Error::internal(format!("secret {name} is not JSON")))?,
        };
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

    /// Marks a secret deleted: references to it no longer resolve; history and audit stay.
    pub async fn delete(
        &self,
        caller: &Caller,
        name: &SecretName,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<u64> {
        caller.require_on(Permission::ManageSecrets, name.as_str())?;
        check_metadata(&metadata)?;
        self.configs.ensure_writable()?;
        let live = self.live_version(name).await?;
        let write = SecretDeleteWrite {
            id: name.clone(),
            expected_live: expected.unwrap_or(live),
            audit: AuditDraft {
                actor: metadata.actor.clone(),
                action: "secret.delete",
                environments: Vec::new(),
                message: metadata.message.clone(),
                on_behalf_of: metadata.on_behalf_of.clone(),
            },
            at: now(),
            applies: None,
        };
        let store = self.store.clone();
        let committed = self
            .configs
            .commit(async move { store.secrets().delete(write).await })
            .await?;
        self.announce(name, committed.version).await?;
        Ok(committed.version)
    }

    /// Wraps the data key of every stored version (of live and deleted secrets) under the
    /// current key-encryption key, so older key files can be retired. The values, data keys and
    /// ciphertexts do not change; each re-wrapped version is audited (`secret.rewrap`).
    pub async fn rewrap_all(&self, caller: &Caller, metadata: Metadata) -> Result<RewrapReport> {
        caller.require(Permission::ManageSecrets)?;
        check_metadata(&metadata)?;
        self.configs.ensure_writable()?;
        let mut report = RewrapReport {
            key_id: self.keyring.current_id().to_owned(),
            rewrapped: 0,
            unchanged: 0,
        };
        let secrets = self.store.secrets();
        for head in secrets.heads().await? {
            let name = head.latest.id.clone();
            caller.require_on(Permission::ManageSecrets, name.as_str())?;
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
                        format: version.document.format,
                        sealed: self.keyring.rewrap(
                            name.as_str(),
                            version.version,
                            &version.document.sealed,
                        )?,
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
        Ok(report)
    }

    /// Tells the watchers of every live config that references `name` (`store:NAME`) that its
    /// resolved value changed: one `config.secrets_changed` change (revision, event, audit
    /// record) per config, subject the config id, version its live version.
    async fn announce(&self, name: &SecretName, version: u64) -> Result<()> {
        let heads = self.store.configs().heads().await?;
        for head in heads.iter().filter(|h| !h.deleted) {
            let latest = &head.latest;
            if !references_store_secret(&latest.document, name.as_str()) {
                continue;
            }
            let record = Record {
                kind: kind::CONFIG_SECRETS_CHANGED,
                subject: latest.id.to_string(),
                version: latest.version,
                audit: AuditDraft {
                    actor: "summit-config".to_owned(),
                    action: "config.secrets_changed",
                    environments: vec!["*".to_owned()],
                    message: Some(format!("secret {name} is at version {version}")),
                    on_behalf_of: None,
                },
                at: now(),
            };
            let store = self.store.clone();
            self.configs
                .commit(async move { store.record(record).await })
                .await?;
        }
        Ok(())
    }

    /// The live version's number; not found when the secret does not exist or was deleted.
    async fn live_version(&self, name: &SecretName) -> Result<u64> {
        match self.store.secrets().head(name).await? {
            Some(head) if !head.deleted => Ok(head.latest.version),
            _ => Err(Error::not_found("secret", name.as_str())),
        }
    }

    async fn selected(&self, name: &SecretName, selector: Selector) -> Result<SecretVersion> {
        let live = self.live_version(name).await?;
        let secrets = self.store.secrets();
        let found = match selector {
            Selector::Stage(Stage::Current) => secrets.version(name, live).await?,
            Selector::Stage(Stage::Previous) => secrets
                .versions(name, Some(live), 1)
                .await?
                .into_iter()
                .next(),
            Selector::Version(number) => secrets.version(name, number).await?,
        };
        found.ok_or_else(|| {
            let which = match selector {
                Selector::Stage(Stage::Current) => format!("{name} (current)"),
                Selector::Stage(Stage::Previous) => format!("{name} (previous)"),
                Selector::Version(number) => format!("{name} v{number}"),
            };
            Error::not_found("secret version", which)
        })
    }
}

/// Whether any layer of `document` holds a `store:` reference to secret `name`.
fn references_store_secret(document: &ConfigDocument, name: &str) -> bool {
    fn walk(value: &Value, name: &str) -> bool {
        match value {
            Value::Object(map) => match map.get(SECRET_KEY) {
                Some(Value::String(reference)) if map.len() == 1 => reference
                    .strip_prefix("store:")
                    .map(|rest| rest.split('#').next() == Some(name))
                    .unwrap_or(false),
                _ => map.values().any(|v| walk(v, name)),
            },
            Value::Array(items) => items.iter().any(|v| walk(v, name)),
            _ => false,
        }
    }
    walk(&document.config, name)
        || document.overrides.values().any(|v| walk(v, name))
        || document
            .canary
            .as_ref()
            .is_some_and(|c| walk(&c.config, name))
        || document
            .ab_test
            .as_ref()
            .is_some_and(|t| t.variants.iter().any(|v| walk(&v.config, name)))
}
