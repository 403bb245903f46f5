//! Secret references (`{"$secret": "env:NAME"}`, `{"$secret": "file:/path"}`) and their resolution.
//!
//! References are stored as written; values are resolved only when a read asks, and never
//! stored, logged or audited.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::error::{Error, Result};

pub const SECRET_KEY: &str = "$secret";

/// A parsed `provider:reference` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub provider: String,
    pub reference: String,
}

/// Resolves references of one provider (`env`, `file`, ...). Implementations must not log values.
pub trait SecretProvider: Send + Sync {
    fn resolve(&self, reference: &str) -> std::result::Result<String, String>;
}

/// Reads `env:NAME` from the server's environment.
pub struct EnvProvider;

impl SecretProvider for EnvProvider {
    fn resolve(&self, reference: &str) -> std::result::Result<String, String> {
        std::env::var(reference).map_err(|_| format!("environment variable {reference} is not set"))
    }
}

/// Reads `file:/path`, without one trailing newline.
pub struct FileProvider;

impl SecretProvider for FileProvider {
    fn resolve(&self, reference: &str) -> std::result::Result<String, String> {
        let text = std::fs::read_to_string(reference)
            .map_err(|e| format!("file {reference} cannot be read: {}", e.kind()))?;
        Ok(text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text)
            .to_owned())
    }
}

/// Providers by name.
#[derive(Clone)]
pub struct SecretResolver {
    providers: HashMap<String, Arc<dyn SecretProvider>>,
}

impl Default for SecretResolver {
    fn default() -> Self {
        let mut resolver = SecretResolver {
            providers: HashMap::new(),
        };
        resolver.register("env", Arc::new(EnvProvider));
        resolver.register("file", Arc::new(FileProvider));
        resolver
    }
}

impl SecretResolver {
    pub fn register(&mut self, name: &str, provider: Arc<dyn SecretProvider>) {
        self.providers.insert(name.to_owned(), provider);
    }

    pub fn knows(&self, provider: &str) -> bool {
        self.providers.contains_key(provider)
    }

    /// A copy of `value` with every reference replaced by its value; the first failure is an error.
    pub fn resolve_tree(&self, value: &Value) -> Result<Value> {
        let mut out = value.clone();
        self.resolve_in_place(&mut out, &mut String::new())?;
        Ok(out)
    }

    fn resolve_in_place(&self, value: &mut Value, pointer: &mut String) -> Result<()> {
        if let Some(secret) = as_reference(value) {
            let secret = secret.map_err(|message| Error::invalid(pointer.clone(), message))?;
            let provider =
                self.providers
                    .get(&secret.provider)
                    .ok_or_else(|| Error::SecretUnresolved {
                        pointer: pointer_or_root(pointer),
                        provider: secret.provider.clone(),
                        reason: "unknown secret provider".into(),
                    })?;
            let resolved =
                provider
                    .resolve(&secret.reference)
                    .map_err(|reason| Error::SecretUnresolved {
                        pointer: pointer_or_root(pointer),
                        provider: secret.provider.clone(),
                        reason,
                    })?;
            *value = Value::String(resolved);
            return Ok(());
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    let len = pointer.len();
                    push_token(pointer, key);
                    self.resolve_in_place(child, pointer)?;
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    push_token(pointer, &index.to_string());
                    self.resolve_in_place(child, pointer)?;
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `Some(Ok)` for a well-formed reference, `Some(Err)` for an object that uses `$secret` wrongly.
fn as_reference(value: &Value) -> Option<std::result::Result<SecretRef, String>> {
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
                provider: provider.to_owned(),
                reference: reference.to_owned(),
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
        if !resolver.knows(&secret.provider) {
            return Err(Error::invalid(
                pointer.clone(),
                format!("unknown secret provider '{}'", secret.provider),
            ));
        }
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
                push_token(pointer, &index.to_string());
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
    pointer.push_str(&token.replace('~', "~0").replace('/', "~1"));
}

fn pointer_or_root(pointer: &str) -> String {
    if pointer.is_empty() {
        "/".into()
    } else {
        pointer.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_env_references_anywhere_in_the_tree() {
        // SAFETY: test-only variable with a unique name; no other thread reads it.
        unsafe { std::env::set_var("SUMMIT_TEST_SECRET_A", "s3cret") };
        let tree = json!({"db": {"password": {"$secret": "env:SUMMIT_TEST_SECRET_A"}}, "list": [{"$secret": "env:SUMMIT_TEST_SECRET_A"}]});
        let resolved = SecretResolver::default().resolve_tree(&tree).unwrap();
        assert_eq!(
            resolved,
            json!({"db": {"password": "s3cret"}, "list": ["s3cret"]})
        );
    }

    #[test]
    fn unresolvable_reference_names_pointer_and_provider_only() {
        let tree = json!({"a/b": {"$secret": "env:SUMMIT_TEST_SECRET_MISSING"}});
        let err = SecretResolver::default().resolve_tree(&tree).unwrap_err();
        match err {
            Error::SecretUnresolved {
                pointer, provider, ..
            } => {
                assert_eq!(pointer, "/a~1b");
                assert_eq!(provider, "env");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn file_references_drop_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        let tree = json!({"t": {"$secret": format!("file:{}", path.display())}});
        let resolved = SecretResolver::default().resolve_tree(&tree).unwrap();
        assert_eq!(resolved, json!({"t": "abc"}));
    }

    #[test]
    fn malformed_references_are_refused_with_their_pointer() {
        let resolver = SecretResolver::default();
        let bad = json!({"x": {"$secret": 5}});
        let err = reference_pointers(&bad, "/config", &resolver).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { ref field, .. } if field == "/config/x"));
        let unknown = json!({"x": {"$secret": "vault:kv/a"}});
        assert!(reference_pointers(&unknown, "", &resolver).is_err());
        let ok = json!({"x": [{"$secret": "env:A"}]});
        assert_eq!(
            reference_pointers(&ok, "", &resolver).unwrap(),
            vec!["/x/0"]
        );
    }
}
