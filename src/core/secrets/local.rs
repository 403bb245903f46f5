//! The providers that read the server's own machine: `env:NAME` and `file:PATH`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::resolve::{SecretFailure, SecretProvider};

/// Which secrets the built-in providers may read, and how long a provider may take.
#[derive(Debug, Clone)]
pub struct SecretPolicy {
    /// `env:` references must name a variable starting with this (empty: any). Variables
    /// starting with `SUMMIT_`, `AWS_`, `PG` or `OTEL_` (the server's own settings and the
    /// credentials it or its libraries read) are never readable.
    pub env_prefix: String,
    /// `file:` references must resolve inside this directory; relative ones are taken from it.
    pub file_dir: PathBuf,
    /// Longest a provider may take to answer (a file read, a remote request).
    pub timeout: Duration,
    /// The server's own key, token, certificate and database files: never readable by a `file:`
    /// reference, even when they lie in `file_dir` (as mounted container secrets do).
    pub own_files: Vec<PathBuf>,
}

impl Default for SecretPolicy {
    fn default() -> Self {
        SecretPolicy {
            env_prefix: String::new(),
            file_dir: PathBuf::from("/run/secrets"),
            timeout: Duration::from_secs(2),
            own_files: Vec::new(),
        }
    }
}

/// Prefixes of the environment variables no `env:` reference may read.
const OWN_VARIABLES: [&str; 4] = ["SUMMIT_", "AWS_", "PG", "OTEL_"];

/// Largest secret a file reference may hold.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads `env:NAME` from the server's environment, within the policy's prefix.
pub struct EnvProvider {
    prefix: String,
}

impl EnvProvider {
    pub fn new(prefix: String) -> Self {
        EnvProvider { prefix }
    }
}

#[async_trait]
impl SecretProvider for EnvProvider {
    async fn resolve(&self, reference: &str) -> Result<String, SecretFailure> {
        self.check(reference).map_err(SecretFailure::Unresolved)?;
        std::env::var(reference).map_err(|_| {
            SecretFailure::Unresolved(format!("environment variable {reference} is not set"))
        })
    }

    fn check(&self, reference: &str) -> Result<(), String> {
        // The server's own settings, and the credentials its libraries read from the
        // environment: AWS (the awssm: provider), PostgreSQL (`PGPASSWORD`, `PGSERVICEFILE`…),
        // the OTLP exporter (`OTEL_EXPORTER_OTLP_HEADERS`).
        if OWN_VARIABLES.iter().any(|own| reference.starts_with(own)) {
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
/// one trailing newline. The read runs on the blocking pool, bounded by the policy's timeout.
pub struct FileProvider {
    dir: PathBuf,
    timeout: Duration,
    own_files: Arc<[PathBuf]>,
}

impl FileProvider {
    pub fn new(dir: PathBuf, timeout: Duration, own_files: Vec<PathBuf>) -> Self {
        FileProvider {
            dir,
            timeout,
            own_files: own_files.into(),
        }
    }
}

#[async_trait]
impl SecretProvider for FileProvider {
    fn check(&self, reference: &str) -> Result<(), String> {
        let path = Path::new(reference);
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

    async fn resolve(&self, reference: &str) -> Result<String, SecretFailure> {
        let (dir, owned) = (self.dir.clone(), reference.to_owned());
        let own_files = self.own_files.clone();
        let reading =
            tokio::task::spawn_blocking(move || read_secret_file(&dir, &own_files, &owned));
        match tokio::time::timeout(self.timeout, reading).await {
            Ok(Ok(read)) => read.map_err(SecretFailure::Unresolved),
            Ok(Err(_)) => Err(SecretFailure::Unavailable(format!(
                "reading file {reference} failed"
            ))),
            Err(_) => Err(SecretFailure::Unavailable(format!(
                "file {reference} was not read within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

fn read_secret_file(dir: &Path, own_files: &[PathBuf], reference: &str) -> Result<String, String> {
    let refused = || format!("file {reference} is outside the secrets directory");
    let dir = dir
        .canonicalize()
        .map_err(|_| format!("the secrets directory {} does not exist", dir.display()))?;
    let path = dir
        .join(reference)
        .canonicalize()
        .map_err(|e| format!("file {reference} cannot be read: {}", e.kind()))?;
    if !path.starts_with(&dir) {
        return Err(refused());
    }
    // Compared as the files are now: a link to one of them is refused as well.
    if own_files
        .iter()
        .any(|own| own.canonicalize().is_ok_and(|own| own == path))
    {
        return Err(format!("file {reference} is one of the server's own files"));
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::error::Error;
    use crate::core::secrets::{SecretResolver, reference_pointers};

    fn resolver_for(dir: &Path, env_prefix: &str) -> SecretResolver {
        SecretResolver::new(&SecretPolicy {
            env_prefix: env_prefix.into(),
            file_dir: dir.to_path_buf(),
            ..SecretPolicy::default()
        })
    }

    #[tokio::test]
    async fn file_references_drop_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "abc\n").unwrap();
        let resolver = resolver_for(dir.path(), "");
        let absolute = format!("file:{}", dir.path().join("token").display());
        let tree = json!({"t": {"$secret": absolute}, "r": {"$secret": "file:token"}});
        let resolved = resolver.resolve_tree(&tree).await.unwrap();
        assert_eq!(resolved, json!({"t": "abc", "r": "abc"}));
    }

    #[tokio::test]
    async fn file_references_stay_inside_the_secrets_directory() {
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
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::SecretUnresolved { .. }),
                "{reference}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_servers_own_key_files_are_never_read_even_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("summit-key"), "KEY-MATERIAL-1f2e").unwrap();
        std::fs::write(dir.path().join("db-password"), "fine").unwrap();
        std::os::unix::fs::symlink(dir.path().join("summit-key"), dir.path().join("alias"))
            .unwrap();
        let resolver = SecretResolver::new(&SecretPolicy {
            file_dir: dir.path().to_path_buf(),
            own_files: vec![dir.path().join("summit-key")],
            ..SecretPolicy::default()
        });
        let fine = resolver
            .resolve_tree(&json!({"$secret": "file:db-password"}))
            .await
            .unwrap();
        assert_eq!(fine, json!("fine"));
        for reference in ["file:summit-key", "file:alias", "file:./summit-key"] {
            let err = resolver
                .resolve_tree(&json!({"$secret": reference}))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::SecretUnresolved { .. }),
                "{reference}: {err:?}"
            );
            assert!(!format!("{err:?}").contains("KEY-MATERIAL"), "{err:?}");
        }
    }

    #[test]
    fn credentials_the_server_reads_from_its_environment_are_never_readable() {
        let dir = tempfile::tempdir().unwrap();
        let resolver = resolver_for(dir.path(), "");
        for (reference, ok) in [
            ("env:APP_DB", true),
            ("env:SUMMIT_ADMIN_TOKEN", false),
            ("env:AWS_SECRET_ACCESS_KEY", false),
            ("env:PGPASSWORD", false),
            ("env:OTEL_EXPORTER_OTLP_HEADERS", false),
        ] {
            let tree = json!({"s": {"$secret": reference}});
            assert_eq!(
                reference_pointers(&tree, "", &resolver).is_ok(),
                ok,
                "{reference}"
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

    #[tokio::test]
    async fn oversized_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![b'x'; 70 * 1024]).unwrap();
        let err = resolver_for(dir.path(), "")
            .resolve_tree(&json!({"s": {"$secret": "file:big"}}))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::SecretUnresolved { ref reason, .. } if reason.contains("larger"))
        );
    }

    #[tokio::test]
    async fn env_references_respect_the_prefix_and_never_read_server_settings() {
        // SAFETY: test-only variables with unique names; no other thread reads them.
        unsafe { std::env::set_var("APP_SECRET_OK", "fine") };
        unsafe { std::env::set_var("SUMMIT_TEST_INTERNAL", "no") };
        let dir = tempfile::tempdir().unwrap();
        let resolver = resolver_for(dir.path(), "APP_");
        assert_eq!(
            resolver
                .resolve_tree(&json!({"$secret": "env:APP_SECRET_OK"}))
                .await
                .unwrap(),
            json!("fine")
        );
        assert!(
            resolver
                .resolve_tree(&json!({"$secret": "env:HOME"}))
                .await
                .is_err()
        );
        let open = resolver_for(dir.path(), "");
        assert!(
            open.resolve_tree(&json!({"$secret": "env:SUMMIT_TEST_INTERNAL"}))
                .await
                .is_err()
        );
    }
}
