//! Secret references (`{"$secret": "env:NAME"}`, `{"$secret": "file:/path"}`) and their resolution.
//!
//! References are stored as written; values are resolved only when a read asks, and never
//! stored, logged or audited.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::core::error::{Error, Result};

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

    /// Whether a reference is within this provider's policy, checked when it is written so a
    /// reference that could never resolve is refused early. No I/O.
    fn check(&self, reference: &str) -> std::result::Result<(), String> {
        let _ = reference;
        Ok(())
    }
}

/// Which secrets the built-in providers may read.
#[derive(Debug, Clone)]
pub struct SecretPolicy {
    /// `env:` references must name a variable starting with this (empty: any). Variables
    /// starting with `SUMMIT_` (the server's own settings) are never readable.
    pub env_prefix: String,
    /// `file:` references must resolve inside this directory; relative ones are taken from it.
    pub file_dir: PathBuf,
}

impl Default for SecretPolicy {
    fn default() -> Self {
        SecretPolicy {
            env_prefix: String::new(),
            file_dir: PathBuf::from("/run/secrets"),
        }
    }
}

/// Largest secret a file reference may hold.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads `env:NAME` from the server's environment, within the policy's prefix.
pub struct EnvProvider {
    prefix: String,
}

impl SecretProvider for EnvProvider {
    fn resolve(&self, reference: &str) -> std::result::Result<String, String> {
        self.check(reference)?;
        std::env::var(reference).map_err(|_| format!("environment variable {reference} is not set"))
    }

    fn check(&self, reference: &str) -> std::result::Result<(), String> {
        if reference.starts_with("SUMMIT_") {
            return Err(format!(
                "environment variable {reference} is one of the server's own settings"
            ));
        }
        if !reference.starts_with(&self.prefix) {
            return Err(format!(
                "environment variable {reference} does not start with the readable prefix '{}'",
                self.prefix
            ));
        }
        Ok(())
    }
}

/// Reads `file:PATH` (at most 64 KiB, regular files inside the policy's directory), without
/// one trailing newline.
pub struct FileProvider {
    dir: PathBuf,
}

impl SecretProvider for FileProvider {
    fn check(&self, reference: &str) -> std::result::Result<(), String> {
        let path = std::path::Path::new(reference);
        let escapes = path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
        if escapes || (path.is_absolute() && !path.starts_with(&self.dir)) {
            return Err(format!(
                "file {reference} is outside the secrets directory {}",
                self.dir.display()
            ));
        }
        Ok(())
    }

    fn resolve(&self, reference: &str) -> std::result::Result<String, String> {
        let refused = || format!("file {reference} is outside the secrets directory");
        let dir = self.dir.canonicalize().map_err(|_| {
            format!(
                "the secrets directory {} does not exist",
                self.dir.display()
            )
        })?;
        let path = dir
            .join(reference)
            .canonicalize()
            .map_err(|e| format!("file {reference} cannot be read: {}", e.kind()))?;
        if !path.starts_with(&dir) {
            return Err(refused());
        }
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("file {reference} cannot be read: {}", e.kind()))?;
        let metadata = file
            .metadata()
            .map_err(|e| format!("file {reference} cannot be read: {}", e.kind()))?;
        if !metadata.is_file() {
            return Err(format!("{reference} is not a regular file"));
        }
        let mut text = String::new();
        file.take(MAX_SECRET_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("file {reference} cannot be read: {}", e.kind()))?;
        if text.len() as u64 > MAX_SECRET_FILE_BYTES {
            return Err(format!(
                "file {reference} is larger than {MAX_SECRET_FILE_BYTES} bytes"
            ));
        }
        let trimmed = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t));
        Ok(trimmed.unwrap_or(&text).to_owned())
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

impl SecretResolver {
    /// The built-in `env` and `file` providers, limited by `policy`.
    pub fn new(policy: &SecretPolicy) -> Self {
        let mut resolver = SecretResolver {
            providers: HashMap::new(),
        };
        resolver.register(
            "env",
            Arc::new(EnvProvider {
                prefix: policy.env_prefix.clone(),
            }),
        );
        resolver.register(
            "file",
            Arc::new(FileProvider {
                dir: policy.file_dir.clone(),
            }),
        );
        resolver
    }

    pub fn register(&mut self, name: &str, provider: Arc<dyn SecretProvider>) {
        self.providers.insert(name.to_owned(), provider);
    }

    /// A copy of `value` with every reference replaced by its value; the first failure is an error.
    pub fn resolve_tree(&self, value: &Value) -> Result<Value> {
        self.resolve_owned(value.clone())
    }

    /// As `resolve_tree`, taking the value rather than copying it.
    pub fn resolve_owned(&self, mut value: Value) -> Result<Value> {
        self.resolve_in_place(&mut value, &mut String::new())?;
        Ok(value)
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
        let Some(provider) = resolver.providers.get(&secret.provider) else {
            return Err(Error::invalid(
                pointer.clone(),
                format!("unknown secret provider '{}'", secret.provider),
            ));
        };
        provider
            .check(&secret.reference)
            .map_err(|message| Error::invalid(pointer.clone(), message))?;
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

/// How problems name the whole document: `/` (an empty RFC 6901 pointer reads as nothing).
pub fn pointer_or_root(pointer: &str) -> String {
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
        unsafe { std::env::set_var("APP_TEST_SECRET_A", "s3cret") };
        let tree = json!({"db": {"password": {"$secret": "env:APP_TEST_SECRET_A"}}, "list": [{"$secret": "env:APP_TEST_SECRET_A"}]});
        let resolved = SecretResolver::default().resolve_tree(&tree).unwrap();
        assert_eq!(
            resolved,
            json!({"db": {"password": "s3cret"}, "list": ["s3cret"]})
        );
    }

    #[test]
    fn unresolvable_reference_names_pointer_and_provider_only() {
        let tree = json!({"a/b": {"$secret": "env:APP_TEST_SECRET_MISSING"}});
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

    fn resolver_for(dir: &std::path::Path, env_prefix: &str) -> SecretResolver {
        SecretResolver::new(&SecretPolicy {
            env_prefix: env_prefix.into(),
            file_dir: dir.to_path_buf(),
        })
    }

    #[test]
    fn file_references_drop_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "abc\n").unwrap();
        let resolver = resolver_for(dir.path(), "");
        let absolute = format!("file:{}", dir.path().join("token").display());
        let tree = json!({"t": {"$secret": absolute}, "r": {"$secret": "file:token"}});
        let resolved = resolver.resolve_tree(&tree).unwrap();
        assert_eq!(resolved, json!({"t": "abc", "r": "abc"}));
    }

    #[test]
    fn file_references_stay_inside_the_secrets_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        let resolver = resolver_for(dir.path(), "");
        for reference in [
            format!("file:{}", outside.path().display()),
            "file:../../../etc/passwd".to_owned(),
            "file:/dev/zero".to_owned(),
        ] {
            let err = resolver
                .resolve_tree(&json!({"s": {"$secret": reference}}))
                .unwrap_err();
            assert!(
                matches!(err, Error::SecretUnresolved { .. }),
                "{reference}: {err:?}"
            );
        }
    }

    #[test]
    fn references_outside_the_policy_are_refused_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let resolver = resolver_for(dir.path(), "APP_");
        for (reference, ok) in [
            ("env:APP_DB", true),
            ("env:HOME", false),
            ("env:SUMMIT_ADMIN_TOKEN", false),
            ("file:db-password", true),
            ("file:../escape", false),
            ("file:/etc/passwd", false),
        ] {
            let tree = json!({"s": {"$secret": reference}});
            assert_eq!(
                reference_pointers(&tree, "", &resolver).is_ok(),
                ok,
                "{reference}"
            );
        }
        let inside = format!("file:{}", dir.path().join("x").display());
        assert!(reference_pointers(&json!({"$secret": inside}), "", &resolver).is_ok());
    }

    #[test]
    fn oversized_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![b'x'; 70 * 1024]).unwrap();
        let err = resolver_for(dir.path(), "")
            .resolve_tree(&json!({"s": {"$secret": "file:big"}}))
            .unwrap_err();
        assert!(
            matches!(err, Error::SecretUnresolved { ref reason, .. } if reason.contains("larger"))
        );
    }

    #[test]
    fn env_references_respect_the_prefix_and_never_read_server_settings() {
        // SAFETY: test-only variables with unique names; no other thread reads them.
        unsafe { std::env::set_var("APP_SECRET_OK", "fine") };
        unsafe { std::env::set_var("SUMMIT_TEST_INTERNAL", "no") };
        let dir = tempfile::tempdir().unwrap();
        let resolver = resolver_for(dir.path(), "APP_");
        assert_eq!(
            resolver
                .resolve_tree(&json!({"$secret": "env:APP_SECRET_OK"}))
                .unwrap(),
            json!("fine")
        );
        assert!(
            resolver
                .resolve_tree(&json!({"$secret": "env:HOME"}))
                .is_err()
        );
        let open = resolver_for(dir.path(), "");
        assert!(
            open.resolve_tree(&json!({"$secret": "env:SUMMIT_TEST_INTERNAL"}))
                .is_err()
        );
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
