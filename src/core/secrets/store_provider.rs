//! `store:NAME[#field]`: references to the built-in secret store, resolved from the read cache
//! (no I/O) and opened with the keyring. The current version only; other stages are read through
//! `GET /api/v1/secrets/{name}/value`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::crypto::Keyring;
use super::model::ValueFormat;
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

/// `NAME` and the optional `#field` of a reference.
fn split(reference: &str) -> Result<(SecretName, Option<&str>), String> {
    let (name, field) = match reference.split_once('#') {
        Some((name, field)) if !field.is_empty() => (name, Some(field)),
        Some(_) => return Err("an empty #field".to_owned()),
        None => (reference, None),
    };
    if name.contains('?') {
        return Err(
            "store: references resolve the current version; stages and versions are read \
             through /api/v1/secrets/{name}/value"
                .to_owned(),
        );
    }
    let name = SecretName::parse(name).map_err(|_| "not a secret name".to_owned())?;
    Ok((name, field))
}

#[async_trait]
impl SecretProvider for StoreProvider {
    fn check(&self, reference: &str) -> Result<(), String> {
        split(reference).map(|_| ())
    }

    async fn resolve(&self, reference: &str) -> Result<String, SecretFailure> {
        self.current_value(reference)
            .map_err(SecretFailure::Unresolved)
    }
}

impl StoreProvider {
    fn current_value(&self, reference: &str) -> Result<String, String> {
        let (name, field) = split(reference)?;
        let head = self
            .cache
            .cached_secret(&name)
            .filter(|head| !head.deleted)
            .ok_or_else(|| "no such secret".to_owned())?;
        let latest = &head.latest;
        let text = self
            .keyring
            .open(name.as_str(), latest.version, &latest.document.sealed)
            .map_err(|_| "the sealed value does not open with this server's keys".to_owned())?;
        let text = String::from_utf8(text).map_err(|_| "not text".to_owned())?;
        match (field, latest.document.format) {
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
