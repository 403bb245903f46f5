//! `vault:MOUNT/PATH[#FIELD][?version=N]`: a secret of a Vault (or OpenBao) KV version 2
//! engine, read with `GET {addr}/v1/{MOUNT}/data/{PATH}`. Without `#FIELD` the whole data
//! object is the value, as JSON text.

use std::path::PathBuf;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::locator::{Locator, pick_field};
use super::remote_cache::{RemoteCache, RemoteSettings, describe_send_error, json_answer};
use super::resolve::{SecretFailure, SecretProvider};

/// Where the token comes from. `Debug` never shows an inline token.
#[derive(Clone)]
pub enum VaultToken {
    Inline(String),
    /// Read again on every fetch, so an agent may renew it in place.
    File(PathBuf),
}

impl std::fmt::Debug for VaultToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultToken::Inline(_) => f.write_str("Inline(<redacted>)"),
            VaultToken::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// `https://vault.internal:8200`, without `/v1`.
    pub addr: String,
    pub token: VaultToken,
    pub namespace: Option<String>,
}

pub struct VaultProvider {
    addr: String,
    token: VaultToken,
    namespace: Option<HeaderValue>,
    client: reqwest::Client,
    /// Data objects by `MOUNT/PATH` and version (0: the current one).
    cache: RemoteCache<(String, u64), Map<String, Value>>,
}

/// A parsed `vault:` reference.
#[derive(Debug, PartialEq, Eq)]
struct VaultRef<'a> {
    mount: &'a str,
    path: &'a str,
    field: Option<&'a str>,
    version: Option<u64>,
}

/// Characters escaped in one path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn parse(reference: &str) -> Result<VaultRef<'_>, String> {
    let locator = Locator::parse(reference)?;
    let version = match locator.param {
        None => None,
        Some(("version", number)) => Some(
            number
                .parse::<u64>()
                .ok()
                .filter(|version| *version >= 1)
                .ok_or_else(|| "?version= takes a version number (1 or more)".to_owned())?,
        ),
        Some((name, _)) => {
            return Err(format!(
                "unknown parameter ?{name}= (vault: references take ?version=N)"
            ));
        }
    };
    let Some((mount, path)) = locator.path.split_once('/') else {
        return Err("a vault: reference reads MOUNT/PATH, e.g. secret/app/db".to_owned());
    };
    // Segments of [A-Za-z0-9._-] only: nothing a URL parser could read as a separator or a
    // step up (a `\` is a `/` to it), so a reference never reaches outside its mount's data.
    let plain = |segment: &str| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !locator.path.split('/').all(plain) {
        return Err("path segments are [A-Za-z0-9._-], not empty, '.' or '..'".to_owned());
    }
    Ok(VaultRef {
        mount,
        path,
        field: locator.field,
        version,
    })
}

#[derive(Deserialize)]
struct KvRead {
    data: KvData,
}

#[derive(Deserialize)]
struct KvData {
    /// Null for a deleted or destroyed version.
    data: Option<Map<String, Value>>,
}

impl VaultProvider {
    pub fn new(
        settings: VaultSettings,
        remote: &RemoteSettings,
        client: reqwest::Client,
    ) -> Result<Self, String> {
        let namespace = settings
            .namespace
            .map(|namespace| {
                HeaderValue::from_str(&namespace)
                    .map_err(|_| "the Vault namespace is not a valid header value".to_owned())
            })
            .transpose()?;
        if !settings.addr.starts_with("https://") && !settings.addr.starts_with("http://") {
            return Err(format!(
                "the Vault address {} is not an http(s) URL",
                settings.addr
            ));
        }
        Ok(VaultProvider {
            addr: settings.addr.trim_end_matches('/').to_owned(),
            token: settings.token,
            namespace,
            client,
            cache: RemoteCache::new(remote),
        })
    }

    async fn token(&self) -> Result<HeaderValue, SecretFailure> {
        let token = match &self.token {
            VaultToken::Inline(token) => token.clone(),
            VaultToken::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| {
                    SecretFailure::Unavailable(format!(
                        "the Vault token file {} cannot be read: {}",
                        path.display(),
                        e.kind()
                    ))
                })?
                .trim()
                .to_owned(),
        };
        let mut value = HeaderValue::from_str(&token).map_err(|_| {
            SecretFailure::Unavailable("the Vault token is not a valid header value".to_owned())
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    async fn fetch(&self, secret: &VaultRef<'_>) -> Result<Map<String, Value>, SecretFailure> {
        let path: Vec<String> = secret
            .path
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        let url = format!(
            "{}/v1/{}/data/{}",
            self.addr,
            utf8_percent_encode(secret.mount, SEGMENT),
            path.join("/")
        );
        let mut request = self
            .client
            .get(url)
            .header("X-Vault-Token", self.token().await?);
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.clone());
        }
        if let Some(version) = secret.version {
            request = request.query(&[("version", version)]);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SecretFailure::Unavailable(describe_send_error(&e, &self.addr)))?;
        let status = response.status();
        let named = || match secret.version {
            Some(version) => format!("version {version} of {}/{}", secret.mount, secret.path),
            None => format!("{}/{}", secret.mount, secret.path),
        };
        match status {
            _ if status.is_success() => {
                let read: KvRead = json_answer(response).await.ok_or_else(|| {
                    SecretFailure::Unavailable(
                        "Vault's answer is not a KV version 2 read of at most 1 MiB".to_owned(),
                    )
                })?;
                read.data.data.ok_or_else(|| {
                    SecretFailure::Unresolved(format!("{} is deleted or destroyed", named()))
                })
            }
            StatusCode::NOT_FOUND => Err(SecretFailure::Unresolved(format!(
                "Vault has no secret {}",
                named()
            ))),
            StatusCode::FORBIDDEN => Err(SecretFailure::Unavailable(
                "Vault refused the token (403 permission denied)".to_owned(),
            )),
            _ => Err(SecretFailure::Unavailable(format!(
                "Vault answered {status}"
            ))),
        }
    }
}

#[async_trait]
impl SecretProvider for VaultProvider {
    fn check(&self, reference: &str) -> Result<(), String> {
        parse(reference).map(|_| ())
    }

    async fn resolve(&self, reference: &str) -> Result<String, SecretFailure> {
        let secret = parse(reference).map_err(SecretFailure::Unresolved)?;
        let key = (
            format!("{}/{}", secret.mount, secret.path),
            secret.version.unwrap_or(0),
        );
        let data = self.cache.get_or_fetch(key, self.fetch(&secret)).await?;
        match secret.field {
            Some(field) => pick_field(&data, field),
            None => serde_json::to_string(&*data).map_err(|_| {
                SecretFailure::Unavailable("Vault's data object is not JSON".to_owned())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_mount_a_path_and_optionally_a_field_and_a_version() {
        assert_eq!(
            parse("secret/app/db#password?version=2").unwrap(),
            VaultRef {
                mount: "secret",
                path: "app/db",
                field: Some("password"),
                version: Some(2),
            }
        );
        assert_eq!(
            parse("kv/db").unwrap(),
            VaultRef {
                mount: "kv",
                path: "db",
                field: None,
                version: None,
            }
        );
        for bad in [
            "secret",
            "secret/",
            "/app",
            "secret//db",
            "secret/../sys/seal",
            "secret/db?version=0",
            "secret/db?version=x",
            "secret/db?stage=AWSPREVIOUS",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
