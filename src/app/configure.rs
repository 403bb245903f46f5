//! What the settings make of each part: the secret providers, protected and deploying
//! environments, webhook retries and access control.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::data_dir;
use crate::core::access::service::{AccessSettings, JwtSettings};
use crate::core::ids::Environment;
use crate::core::secrets::{
    AwsSecretsManagerProvider, AwsSettings, RemoteSettings, SecretPolicy, SecretResolver,
    VaultProvider, VaultSettings, VaultToken,
};
use crate::settings::Settings;

/// The files holding the server's own keys, credentials and data, which no `file:` reference
/// may read: the secret store's keys, the generated admin token, the Vault token, the TLS key
/// and certificate, and an SQLite database with its journal files.
fn own_files(settings: &Settings) -> Vec<std::path::PathBuf> {
    let database = super::sqlite_file(&settings.database_url)
        .into_iter()
        .flat_map(|db| {
            let journal = |suffix: &str| {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                std::path::PathBuf::from(name)
            };
            [journal("-wal"), journal("-shm"), db]
        });
    std::iter::once(super::secret_key_file(settings))
        .chain(std::iter::once(
            super::data_dir(settings).join("admin-token"),
        ))
        .chain(database)
        .chain(settings.secret_previous_key_files.iter().cloned())
        .chain(settings.vault_token_file.clone())
        .chain(settings.tls_key_file.clone())
        .chain(settings.tls_cert_file.clone())
        .collect()
}

/// The `env` and `file` providers, and `vault` and `awssm` when their settings are present.
pub(super) fn secret_resolver(settings: &Settings) -> anyhow::Result<SecretResolver> {
    let timeout = Duration::from_millis(settings.secret_timeout_ms);
    let mut resolver = SecretResolver::new(&SecretPolicy {
        env_prefix: settings.secret_env_prefix.clone(),
        file_dir: settings.secret_file_dir.clone(),
        timeout,
        own_files: own_files(settings),
    });
    let remote = RemoteSettings {
        ttl: Duration::from_secs(settings.secret_cache_ttl_secs),
        max_entries: settings.secret_cache_max_entries,
        timeout,
    };
    let client = || {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Credentials go to the configured address only: a redirect is not followed (it
            // would carry X-Vault-Token to whatever host it names), nor is a proxy from the
            // environment used.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("building the HTTP client of the secret providers")
    };
    if let Some(addr) = &settings.vault_addr {
        let token = match (&settings.vault_token, &settings.vault_token_file) {
            (Some(token), _) => VaultToken::Inline(token.clone()),
            (None, Some(path)) => VaultToken::File(path.clone()),
            (None, None) => anyhow::bail!(
                "SUMMIT_VAULT_ADDR is set without SUMMIT_VAULT_TOKEN or SUMMIT_VAULT_TOKEN_FILE"
            ),
        };
        let vault = VaultSettings {
            addr: addr.clone(),
            token,
            namespace: settings.vault_namespace.clone(),
        };
        let provider = VaultProvider::new(vault, &remote, client()?).map_err(anyhow::Error::msg)?;
        resolver.register("vault", Arc::new(provider));
    }
    let region = settings
        .aws_region
        .clone()
        .or_else(|| settings.aws_default_region.clone());
    match (
        region,
        &settings.aws_access_key_id,
        &settings.aws_secret_access_key,
    ) {
        (Some(region), Some(access_key_id), Some(secret_access_key)) => {
            let aws = AwsSettings {
                region,
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
                session_token: settings.aws_session_token.clone(),
                endpoint: settings.awssm_endpoint.clone(),
            };
            let provider = AwsSecretsManagerProvider::new(aws, &remote, client()?)
                .map_err(anyhow::Error::msg)?;
            resolver.register("awssm", Arc::new(provider));
        }
        _ if settings.awssm_endpoint.is_some() => anyhow::bail!(
            "SUMMIT_AWSSM_ENDPOINT is set but AWS_REGION (or AWS_DEFAULT_REGION), \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not all set"
        ),
        _ => {}
    }
    Ok(resolver)
}

/// `production=2,staging=1` → approvals needed per environment.
pub(super) fn protected_environments(text: &str) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut protected = BTreeMap::new();
    for pair in list(text) {
        let pair = pair.as_str();
        let (env, count) = pair
            .split_once('=')
            .with_context(|| format!("protected environment '{pair}': expected name=approvals"))?;
        Environment::parse(env.trim())
            .map_err(|e| anyhow::anyhow!("protected environment '{pair}': {e}"))?;
        let count: u32 = count
            .trim()
            .parse()
            .with_context(|| format!("protected environment '{pair}': approvals is a number"))?;
        protected.insert(env.trim().to_owned(), count);
    }
    Ok(protected)
}

/// Comma-separated items, trimmed, empty ones dropped.
pub(super) fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `5s,5m,30m,2h` → the waits (units `ms`, `s`, `m`, `h`).
pub(super) fn retry_schedule(text: &str) -> anyhow::Result<Vec<Duration>> {
    list(text)
        .iter()
        .map(|item| {
            let split = item
                .find(|c: char| !c.is_ascii_digit())
                .with_context(|| format!("SUMMIT_WEBHOOK_RETRY_SCHEDULE '{item}': no unit"))?;
            let (number, unit) = item.split_at(split);
            let number: u64 = number
                .parse()
                .with_context(|| format!("SUMMIT_WEBHOOK_RETRY_SCHEDULE '{item}': no number"))?;
            Ok(match unit {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                "m" => Duration::from_secs(number * 60),
                "h" => Duration::from_secs(number * 3600),
                other => {
                    anyhow::bail!("SUMMIT_WEBHOOK_RETRY_SCHEDULE '{item}': unknown unit '{other}'")
                }
            })
        })
        .collect()
}

/// `production,staging` → the environments that require deployments.
pub(super) fn deployment_environments(text: &str) -> anyhow::Result<Vec<Environment>> {
    let mut environments = list(text)
        .iter()
        .map(|e| {
            Environment::parse(e)
                .map_err(|error| anyhow::anyhow!("SUMMIT_DEPLOYMENT_ENVIRONMENTS '{e}': {error}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    environments.sort();
    environments.dedup();
    Ok(environments)
}

pub(super) fn access_settings(settings: &Settings) -> anyhow::Result<AccessSettings> {
    let rs256_public_key_pem = settings
        .jwt_rs256_public_key_file
        .as_ref()
        .map(|path| std::fs::read(path).with_context(|| format!("reading {}", path.display())))
        .transpose()?;
    let rate = NonZeroU32::new(settings.rate_limit_per_sec);
    let burst = NonZeroU32::new(settings.rate_limit_burst.max(settings.rate_limit_per_sec));
    Ok(AccessSettings {
        enabled: !settings.no_auth,
        admin_token: settings.admin_token.clone(),
        data_dir: data_dir(settings),
        jwt: JwtSettings {
            hs256_secret: settings.jwt_hs256_secret.clone(),
            rs256_public_key_pem,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
        },
        rate_limit: rate.zip(burst),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_own_files_cover_the_keys_the_admin_token_and_an_sqlite_database() {
        let mut settings = Settings::for_tests("sqlite:///srv/summit/summit.db?mode=rwc");
        settings.tls_key_file = Some(PathBuf::from("/etc/tls/key.pem"));
        let own = own_files(&settings);
        for path in [
            "/srv/summit/secret-key",
            "/srv/summit/admin-token",
            "/srv/summit/summit.db",
            "/srv/summit/summit.db-wal",
            "/srv/summit/summit.db-shm",
            "/etc/tls/key.pem",
        ] {
            assert!(own.contains(&PathBuf::from(path)), "{path}: {own:?}");
        }
    }
}
