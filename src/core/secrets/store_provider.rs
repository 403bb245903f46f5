//! `store:NAME[#field][?stage=…|?version=N]`: references to the built-in secret store, resolved
//! from the read cache (no I/O) and opened with the keyring. Configs are served the current
//! version, or the previous one while its grace period lasts; a pending version is read only
//! through `GET /api/v1/secrets/{name}/value`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::crypto::Keyring;
use super::model::{Stage, ValueFormat};
use super::resolve::{SecretFailure, SecretProvider};
use crate::core::ids::SecretName;
use crate::core::ports::ReadCache;

pub struct StoreProvider {
    cache: Arc<dyn ReadCache>,
    keyring: Arc<Keyring>,
}

impl StoreProvider {
    pub fn new(cache: Arc<dyn ReadCache>, keyring: Arc<Keyring>) -> Self {
        StoreProvider { cache, keyring }
    }
}

/// The stored secret a `store:` reference names, if it is well formed.
pub fn referenced_name(reference: &str) -> Option<SecretName> {
    parse(reference).ok().map(|parsed| parsed.name)
}

/// `NAME[#field][?stage=current|previous | ?version=N]`.
struct StoreRef<'a> {
    name: SecretName,
    field: Option<&'a str>,
    which: Which,
}

/// The version a reference wants: only versions holding `current` or `previous` (within its
/// grace period) are served to configs.
#[derive(Clone, Copy)]
enum Which {
    Stage(Stage),
    Version(u64),
}

fn parse(reference: &str) -> Result<StoreRef<'_>, String> {
    let (rest, query) = match reference.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (reference, None),
    };
    let (name, field) = match rest.split_once('#') {
        Some((name, field)) if !field.is_empty() => (name, Some(field)),
        Some(_) => return Err("an empty #field".to_owned()),
        None => (rest, None),
    };
    let name = SecretName::parse(name).map_err(|_| "not a secret name".to_owned())?;
    let which = match query.map(|q| q.split_once('=')) {
        None => Which::Stage(Stage::Current),
        Some(Some(("stage", "current"))) => Which::Stage(Stage::Current),
        Some(Some(("stage", "previous"))) => Which::Stage(Stage::Previous),
        Some(Some(("version", number))) => match number.parse::<u64>() {
            Ok(number) if number > 0 => Which::Version(number),
            _ => return Err("?version= takes a version number".to_owned()),
        },
        Some(_) => {
            return Err(
                "a store: reference takes ?stage=current, ?stage=previous or ?version=N".to_owned(),
            );
        }
    };
    Ok(StoreRef { name, field, which })
}

#[async_trait]
impl SecretProvider for StoreProvider {
    fn check(&self, reference: &str) -> Result<(), String> {
        parse(reference).map(|_| ())
    }

    async fn resolve(&self, reference: &str) -> Result<String, SecretFailure> {
        self.served_value(reference)
            .map_err(SecretFailure::Unresolved)
    }
}

impl StoreProvider {
    /// The value the reference names, if that version is served now; no I/O.
    fn served_value(&self, reference: &str) -> Result<String, String> {
        let StoreRef { name, field, which } = parse(reference)?;
        let stages = self
            .cache
            .cached_secret(&name)
            .ok_or_else(|| "no such secret".to_owned())?;
        let now = chrono::Utc::now();
        let version = match which {
            Which::Stage(stage) => stages.at(stage, now).ok_or_else(|| match stage {
                Stage::Previous => "no previous version within its grace period".to_owned(),
                _ => "no such stage".to_owned(),
            })?,
            Which::Version(number) => [Stage::Current, Stage::Previous]
                .into_iter()
                .filter_map(|stage| stages.at(stage, now))
                .find(|v| v.version == number)
                .ok_or_else(|| {
                    "that version is neither current nor previous within its grace period"
                        .to_owned()
                })?,
        };
        let text = self
            .keyring
            .open(name.as_str(), version.version, &version.document.sealed)
            .map_err(|_| "the sealed value does not open with this server's keys".to_owned())?;
        let text = String::from_utf8(text).map_err(|_| "not text".to_owned())?;
        match (field, version.document.format) {
            (None, _) => Ok(text),
            (Some(_), ValueFormat::String) => {
                Err("a #field needs a secret whose value is an object".to_owned())
            }
            (Some(field), ValueFormat::Object) => {
                let object: Value =
                    serde_json::from_str(&text).map_err(|_| "not JSON".to_owned())?;
                match object.get(field) {
                    Some(Value::String(text)) => Ok(text.clone()),
                    Some(other) => Ok(other.to_string()),
                    None => Err("the secret has no such field".to_owned()),
                }
            }
        }
    }
}
