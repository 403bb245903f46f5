//! `awssm:ID[#FIELD][?stage=LABEL | ?versionId=ID]`: a secret of AWS Secrets Manager, read with
//! a SigV4-signed `GetSecretValue`. The value is the version's `SecretString`; `#FIELD` picks a
//! field of one that holds a JSON object. Without a parameter the stage is `AWSCURRENT`.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::locator::{Locator, pick_field};
use super::remote_cache::{RemoteCache, RemoteSettings, describe_send_error, json_answer};
use super::resolve::{SecretFailure, SecretProvider};

/// `Debug` shows neither the secret access key nor the session token.
#[derive(Clone)]
pub struct AwsSettings {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Default: `https://secretsmanager.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

pub struct AwsSecretsManagerProvider {
    endpoint: String,
    region: String,
    credentials: Credentials,
    client: reqwest::Client,
    /// Versions by secret id and selector.
    cache: RemoteCache<(String, Selector), SecretText>,
}

/// Which version of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Selector {
    Stage(String),
    VersionId(String),
}

/// A parsed `awssm:` reference.
#[derive(Debug, PartialEq, Eq)]
struct AwsRef<'a> {
    id: &'a str,
    field: Option<&'a str>,
    selector: Option<(&'a str, &'a str)>,
}

/// One version's `SecretString`, and its fields when it holds a JSON object.
struct SecretText {
    text: String,
    object: Option<Map<String, Value>>,
}

fn parse(reference: &str) -> Result<AwsRef<'_>, String> {
    let locator = Locator::parse(reference)?;
    let id = locator.path;
    let id_char = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-:".contains(c);
    if id.len() > 2048 || !id.chars().all(id_char) {
        return Err(
            "a secret id is a name or ARN of letters, digits and /_+=.@-: (2048 at most)"
                .to_owned(),
        );
    }
    let selector = match locator.param {
        None => None,
        Some(("stage", label)) if label.len() <= 256 => Some(("stage", label)),
        Some(("versionId", version)) if (32..=64).contains(&version.len()) => {
            Some(("versionId", version))
        }
        Some(("stage" | "versionId", _)) => {
            return Err("a stage label is at most 256 characters, a versionId 32 to 64".to_owned());
        }
        Some((name, _)) => {
            return Err(format!(
                "unknown parameter ?{name}= (awssm: references take ?stage=LABEL or ?versionId=ID)"
            ));
        }
    };
    Ok(AwsRef {
        id,
        field: locator.field,
        selector,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValue {
    secret_string: Option<String>,
}

#[derive(Deserialize)]
struct AwsErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
}

impl AwsSecretsManagerProvider {
    pub fn new(
        settings: AwsSettings,
        remote: &RemoteSettings,
        client: reqwest::Client,
    ) -> Result<Self, String> {
        if settings.region.is_empty()
            || !settings
                .region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!("'{}' is not an AWS region", settings.region));
        }
        let endpoint = settings
            .endpoint
            .unwrap_or_else(|| format!("https://secretsmanager.{}.amazonaws.com", settings.region));
        let endpoint = format!("{}/", endpoint.trim_end_matches('/'));
        if !endpoint.starts_with("https://") && !endpoint.starts_with("http://") {
            return Err(format!(
                "the Secrets Manager endpoint {endpoint} is not an http(s) URL"
            ));
        }
        Ok(AwsSecretsManagerProvider {
            endpoint,
            region: settings.region,
            credentials: Credentials::new(
                settings.access_key_id,
                settings.secret_access_key,
                settings.session_token,
                None,
                "summit-config settings",
            ),
            client,
            cache: RemoteCache::new(remote),
        })
    }

    async fn fetch(&self, secret: &AwsRef<'_>) -> Result<SecretText, SecretFailure> {
        let mut body = json!({"SecretId": secret.id});
        match secret.selector {
            Some(("versionId", version)) => body["VersionId"] = json!(version),
            Some((_, stage)) => body["VersionStage"] = json!(stage),
            None => {}
        }
        let body = body.to_string();
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ];
        let signed = self
            .signature_headers(&headers, body.as_bytes())
            .map_err(|why| SecretFailure::Unavailable(format!("cannot sign the request: {why}")))?;
        let mut request = self.client.post(&self.endpoint).body(body);
        for (name, value) in headers
            .iter()
            .copied()
            .chain(signed.iter().map(|(name, value)| (*name, value.as_str())))
        {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SecretFailure::Unavailable(describe_send_error(&e, &self.endpoint)))?;
        let status = response.status();
        if status.is_success() {
            let read: GetSecretValue = json_answer(response).await.ok_or_else(|| {
                SecretFailure::Unavailable(
                    "Secrets Manager's answer is not a GetSecretValue result of at most 1 MiB"
                        .to_owned(),
                )
            })?;
            let text = read.secret_string.ok_or_else(|| {
                SecretFailure::Unresolved(
                    "the secret holds SecretBinary; only SecretString values are read".to_owned(),
                )
            })?;
            let object = serde_json::from_str(&text).ok();
            return Ok(SecretText { text, object });
        }
        // The error's type only: its message may quote the request.
        let kind = json_answer::<AwsErrorBody>(response)
            .await
            .and_then(|body| body.kind)
            .map(|kind| kind.rsplit('#').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        match kind.as_str() {
            "ResourceNotFoundException" => Err(SecretFailure::Unresolved(
                "Secrets Manager has no such secret, stage or version (ResourceNotFoundException)"
                    .to_owned(),
            )),
            "InvalidRequestException" | "InvalidParameterException" => Err(
                SecretFailure::Unresolved(format!("Secrets Manager refused the request ({kind})")),
            ),
            _ => Err(SecretFailure::Unavailable(format!(
                "Secrets Manager answered {status} {kind}"
            ))),
        }
    }

    /// The headers SigV4 adds (`authorization`, `x-amz-date`, `x-amz-security-token`).
    fn signature_headers(
        &self,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, String> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("secretsmanager")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let request = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        Ok(instructions
            .into_parts()
            .0
            .into_iter()
            .map(|header| (header.name(), header.value().to_owned()))
            .collect())
    }
}

#[async_trait]
impl SecretProvider for AwsSecretsManagerProvider {
    fn check(&self, reference: &str) -> Result<(), String> {
        parse(reference).map(|_| ())
    }

    async fn resolve(&self, reference: &str) -> Result<String, SecretFailure> {
        let secret = parse(reference).map_err(SecretFailure::Unresolved)?;
        let selector = match secret.selector {
            Some(("versionId", version)) => Selector::VersionId(version.to_owned()),
            Some((_, stage)) => Selector::Stage(stage.to_owned()),
            None => Selector::Stage("AWSCURRENT".to_owned()),
        };
        let key = (secret.id.to_owned(), selector);
        let version = self.cache.get_or_fetch(key, self.fetch(&secret)).await?;
        match (secret.field, &version.object) {
            (None, _) => Ok(version.text.clone()),
            (Some(field), Some(object)) => pick_field(object, field),
            (Some(_), None) => Err(SecretFailure::Unresolved(
                "a #field needs a SecretString holding a JSON object".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_secret_and_optionally_a_field_and_a_stage_or_version() {
        assert_eq!(
            parse("prod/db#password?stage=AWSPREVIOUS").unwrap(),
            AwsRef {
                id: "prod/db",
                field: Some("password"),
                selector: Some(("stage", "AWSPREVIOUS")),
            }
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf";
        assert_eq!(parse(arn).unwrap().id, arn);
        let version = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE";
        assert!(parse(&format!("db?versionId={version}")).is_ok());
        for bad in [
            "db?version=2",
            "db?versionId=short",
            "db name",
            "db?stage=A&versionId=B",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
