//! Secret references (`{"$secret": "provider:reference"}`) and their resolution: the provider
//! trait, the providers by name, and the walk that replaces every reference in a tree —
//! including references found inside resolved values, to a bounded depth.
//!
//! References are stored as written; values are resolved only when a read asks, and never
//! stored, logged or audited.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::local::{EnvProvider, FileProvider, SecretPolicy};
use crate::core::error::{Error, Result};

pub const SECRET_KEY: &str = "$secret";

/// Most references on one chain: the one written in the config, then each found in the value
/// the previous one resolved to.
pub const MAX_REFERENCE_DEPTH: usize = 4;

/// A parsed `provider:reference`, borrowed from the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretRef<'a> {
    pub provider: &'a str,
    pub reference: &'a str,
    /// `provider:reference` as written.
    pub text: &'a str,
}

/// Why a provider gave no value. Never carries a value or a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFailure {
    /// The provider answered without the secret: no such secret, field, version or stage, or a
    /// reference outside its policy.
    Unresolved(String),
    /// The provider could not be asked or failed: unreachable, no answer in time, an error
    /// status, refused credentials. It may succeed later.
    Unavailable(String),
}

/// Resolves references of one provider (`env`, `vault`, ...). Implementations must not log
/// values or put them in a failure.
#[async_trait]
pub trait SecretProvider: Send + Sync {
    /// The secret's text.
    async fn resolve(&self, reference: &str) -> std::result::Result<String, SecretFailure>;

    /// Whether a reference is well formed and within this provider's policy, checked when it is
    /// written so a reference that could never resolve is refused early. No I/O.
    fn check(&self, reference: &str) -> std::result::Result<(), String> {
        let _ = reference;
        Ok(())
    }
}

/// Providers by name.
#[derive(Clone)]
pub struct SecretResolver {
    providers: HashMap<String, Arc<dyn SecretProvider>>,
}

impl Default for SecretResolver {
    fn default() -> Self {
        SecretResolver::new(&SecretPolicy::default())
    }
}

/// Asked before a reference is resolved: whether the reader may have its value.
pub type Reader<'r> = &'r (dyn Fn(&SecretRef<'_>) -> Result<()> + Sync);

/// A reference found in a tree, with its pointer there.
struct Slot<'a> {
    value: &'a mut Value,
    pointer: String,
}

impl SecretResolver {
    /// The built-in `env` and `file` providers, limited by `policy`.
    pub fn new(policy: &SecretPolicy) -> Self {
        let mut resolver = SecretResolver {
            providers: HashMap::new(),
        };
        resolver.register("env", Arc::new(EnvProvider::new(policy.env_prefix.clone())));
        resolver.register(
            "file",
            Arc::new(FileProvider::new(
                policy.file_dir.clone(),
                policy.timeout,
                policy.own_files.clone(),
            )),
        );
        resolver
    }

    pub fn register(&mut self, name: &str, provider: Arc<dyn SecretProvider>) {
        self.providers.insert(name.to_owned(), provider);
    }

    /// Names of the registered providers, sorted.
    pub fn provider_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// A copy of `value` with every reference replaced by its value; the first failure is an error.
    pub async fn resolve_tree(&self, value: &Value) -> Result<Value> {
        self.resolve_owned(value.clone()).await
    }

    /// As `resolve_tree`, taking the value rather than copying it. References are resolved
    /// concurrently; a tree without any costs one walk.
    pub async fn resolve_owned(&self, value: Value) -> Result<Value> {
        self.resolve_owned_for(value, &|_| Ok(())).await
    }

    /// As `resolve_owned`, for a reader who must be allowed each reference before it is
    /// resolved, at any depth of a chain (`reader` refuses with the error to answer).
    pub async fn resolve_owned_for(&self, mut value: Value, reader: Reader<'_>) -> Result<Value> {
        let mut slots = Vec::new();
        find_references(&mut value, &mut String::new(), &mut slots)
            .map_err(|(pointer, message)| Error::invalid(pointer_or_root(&pointer), message))?;
        if !slots.is_empty() {
            futures::future::try_join_all(slots.into_iter().map(|slot| async move {
                self.resolve_slot(slot.value, &slot.pointer, &[], reader)
                    .await
            }))
            .await?;
        }
        Ok(value)
    }

    /// Replaces the reference in `value` by its text; `pointer` names it in the config.
    async fn resolve_slot(
        &self,
        value: &mut Value,
        pointer: &str,
        chain: &[&str],
        reader: Reader<'_>,
    ) -> Result<()> {
        let text = match as_reference(value) {
            Some(Ok(secret)) => {
                self.resolve_reference(secret, pointer, chain, reader)
                    .await?
            }
            // `find_references` kept only well-formed references.
            _ => return Ok(()),
        };
        *value = Value::String(text);
        Ok(())
    }

    /// The text of one reference, reached through the references on `chain`.
    #[tracing::instrument(level = "debug", name = "secret.resolve", skip_all, fields(provider = secret.provider))]
    async fn resolve_reference(
        &self,
        secret: SecretRef<'_>,
        pointer: &str,
        chain: &[&str],
        reader: Reader<'_>,
    ) -> Result<String> {
        let unresolved = |reason: String| Error::SecretUnresolved {
            pointer: pointer_or_root(pointer),
            provider: secret.provider.to_owned(),
            reference: secret.text.to_owned(),
            reason: reached_through(reason, chain),
        };
        if chain.contains(&secret.text) {
            return Err(unresolved(format!(
                "a cycle: {} refers back to itself",
                secret.text
            )));
        }
        if chain.len() >= MAX_REFERENCE_DEPTH {
            return Err(unresolved(format!(
                "more than {MAX_REFERENCE_DEPTH} references on one chain"
            )));
        }
        let provider = self.providers.get(secret.provider).ok_or_else(|| {
            unresolved(format!(
                "no provider '{}' is configured on this server",
                secret.provider
            ))
        })?;
        if !chain.is_empty() {
            // Written in a secret's value, so never checked when the config was written.
            provider.check(secret.reference).map_err(unresolved)?;
        }
        reader(&secret)?;
        let text = match provider.resolve(secret.reference).await {
            Ok(text) => text,
            Err(SecretFailure::Unresolved(reason)) => return Err(unresolved(reason)),
            Err(SecretFailure::Unavailable(reason)) => {
                tracing::warn!(
                    provider = secret.provider,
                    reference = secret.text,
                    pointer,
                    %reason,
                    "secret provider failed"
                );
                return Err(Error::SecretProviderFailed {
                    pointer: pointer_or_root(pointer),
                    provider: secret.provider.to_owned(),
                    reference: secret.text.to_owned(),
                    reason: reached_through(reason, chain),
                });
            }
        };
        if !may_hold_references(&text) {
            return Ok(text);
        }
        let mut chain = chain.to_vec();
        chain.push(secret.text);
        Box::pin(self.resolve_nested(text, pointer, &chain, reader)).await
    }

    /// A resolved text that is a JSON object holding references: a reference itself resolves
    /// to what it refers to; any other object gets its references replaced and is JSON text
    /// again. Other text is returned as it is.
    async fn resolve_nested(
        &self,
        text: String,
        pointer: &str,
        chain: &[&str],
        reader: Reader<'_>,
    ) -> Result<String> {
        let Ok(mut nested) = serde_json::from_str::<Value>(&text) else {
            return Ok(text);
        };
        let malformed = |at: String, message: String| {
            let (provider, reference) = chain
                .last()
                .and_then(|text| text.split_once(':').map(|(provider, _)| (provider, *text)))
                .unwrap_or_default();
            Error::SecretUnresolved {
                pointer: pointer_or_root(pointer),
                provider: provider.to_owned(),
                reference: reference.to_owned(),
                reason: reached_through(
                    format!(
                        "the value holds a malformed reference at {}: {message}",
                        pointer_or_root(&at)
                    ),
                    chain,
                ),
            }
        };
        let mut slots = Vec::new();
        find_references(&mut nested, &mut String::new(), &mut slots)
            .map_err(|(at, message)| malformed(at, message))?;
        if slots.is_empty() {
            return Ok(text);
        }
        // A remote value is written outside summit-config's access control: it may name other
        // values of its own provider only, never the server's environment, files or store.
        let outer = chain
            .last()
            .and_then(|text| text.split_once(':'))
            .map_or("", |(provider, _)| provider);
        if outer != "store" {
            for slot in &slots {
                if let Some(Ok(inner)) = as_reference(slot.value)
                    && inner.provider != outer
                {
                    return Err(malformed(
                        slot.pointer.clone(),
                        format!("a {outer}: value may reference only {outer}: values"),
                    ));
                }
            }
        }
        futures::future::try_join_all(
            slots
                .into_iter()
                .map(|slot| self.resolve_slot(slot.value, pointer, chain, reader)),
        )
        .await?;
        Ok(match nested {
            Value::String(resolved) => resolved,
            other => other.to_string(),
        })
    }
}

/// Whether a resolved text may be a JSON object with references (a cheap test before parsing).
fn may_hold_references(text: &str) -> bool {
    text.trim_start().starts_with('{') && text.contains("\"$secret\"")
}

fn reached_through(reason: String, chain: &[&str]) -> String {
    if chain.is_empty() {
        reason
    } else {
        format!("{reason} (reached through {})", chain.join(" → "))
    }
}

/// Every well-formed reference in `value` with its pointer below `pointer`; a malformed one is
/// `(pointer, why)`. Pointers are built only for references.
fn find_references<'a>(
    value: &'a mut Value,
    pointer: &mut String,
    found: &mut Vec<Slot<'a>>,
) -> std::result::Result<(), (String, String)> {
    if let Some(secret) = as_reference(value) {
        secret.map_err(|message| (pointer.clone(), message))?;
        found.push(Slot {
            value,
            pointer: pointer.clone(),
        });
        return Ok(());
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if !child.is_object() && !child.is_array() {
                    continue;
                }
                let len = pointer.len();
                push_token(pointer, key);
                find_references(child, pointer, found)?;
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                if !child.is_object() && !child.is_array() {
                    continue;
                }
                let len = pointer.len();
                push_index(pointer, index);
                find_references(child, pointer, found)?;
                pointer.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `Some(Ok)` for a well-formed reference, `Some(Err)` for an object that uses `$secret` wrongly.
fn as_reference(value: &Value) -> Option<std::result::Result<SecretRef<'_>, String>> {
    let map = value.as_object()?;
    let raw = map.get(SECRET_KEY)?;
    if map.len() != 1 {
        return Some(Err(
            "a secret reference must be an object with the single key \"$secret\"".into(),
        ));
    }
    let Some(text) = raw.as_str() else {
        return Some(Err("\"$secret\" must be a string like \"env:NAME\"".into()));
    };
    match text.split_once(':') {
        Some((provider, reference)) if !provider.is_empty() && !reference.is_empty() => {
            Some(Ok(SecretRef {
                provider,
                reference,
                text,
            }))
        }
        _ => Some(Err(
            "\"$secret\" must have the form \"provider:reference\"".into()
        )),
    }
}

/// JSON pointers of every secret reference in `value`; malformed references are errors
/// named by `prefix` + pointer, and unknown providers are refused.
pub fn reference_pointers(
    value: &Value,
    prefix: &str,
    resolver: &SecretResolver,
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    collect(value, &mut prefix.to_owned(), resolver, &mut found)?;
    Ok(found)
}

fn collect(
    value: &Value,
    pointer: &mut String,
    resolver: &SecretResolver,
    found: &mut Vec<String>,
) -> Result<()> {
    if let Some(secret) = as_reference(value) {
        let secret = secret.map_err(|message| Error::invalid(pointer.clone(), message))?;
        let Some(provider) = resolver.providers.get(secret.provider) else {
            return Err(Error::invalid(
                pointer.clone(),
                format!(
                    "unknown secret provider '{}' (configured here: {})",
                    secret.provider,
                    resolver.provider_names().join(", ")
                ),
            ));
        };
        provider.check(secret.reference).map_err(|message| {
            Error::invalid(pointer.clone(), format!("{}: {message}", secret.text))
        })?;
        found.push(pointer.clone());
        return Ok(());
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = pointer.len();
                push_token(pointer, key);
                collect(child, pointer, resolver, found)?;
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let len = pointer.len();
                push_index(pointer, index);
                collect(child, pointer, resolver, found)?;
                pointer.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Appends one RFC 6901 reference token.
pub fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

fn push_index(pointer: &mut String, index: usize) {
    use std::fmt::Write;
    let _ = write!(pointer, "/{index}");
}

/// How problems name the whole document: `/` (an empty RFC 6901 pointer reads as nothing).
pub fn pointer_or_root(pointer: &str) -> String {
    if pointer.is_empty() {
        "/".into()
    } else {
        pointer.to_owned()
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
