//! `summit.config.v1.SecretService`: each RPC parses, calls the same `SecretService` as REST
//! (which checks `manage-secrets` on the name), converts. Values are JSON text both ways.

use std::sync::Arc;

use serde_json::Value;
use tonic::{Request, Response, Status};

use super::convert::{self as cv, json_field, json_text, time};
use super::pb::secret_service_server::SecretService as SecretRpc;
use super::{caller_and_message, caller_of, pb};
use crate::core::error::Error;
use crate::core::ids::SecretName;
use crate::core::secrets::SecretService;
use crate::core::secrets::model::{SecretSummary, Stage};
use crate::core::secrets::rotation::RotationPolicy;
use crate::core::secrets::service::{PolicyChange, RotateRequest, Selector};

type RpcResult<T> = Result<Response<T>, Status>;

pub struct GrpcSecretService {
    secrets: Arc<SecretService>,
}

impl GrpcSecretService {
    pub fn new(secrets: Arc<SecretService>) -> Self {
        GrpcSecretService { secrets }
    }
}

fn written(summary: &SecretSummary) -> pb::SecretWritten {
    pb::SecretWritten {
        name: summary.name.to_string(),
        version: summary.version,
        format: summary.format.as_str().to_owned(),
        key_id: summary.key_id.clone(),
        created_at: time(summary.created_at),
    }
}

fn value_field(text: &str, field: &str) -> Result<Value, Error> {
    json_field(text, field, None)
}

#[tonic::async_trait]
impl SecretRpc for GrpcSecretService {
    async fn put_secret(
        &self,
        request: Request<pb::PutSecretRequest>,
    ) -> RpcResult<pb::SecretWritten> {
        let (caller, r) = caller_and_message(request)?;
        let name = SecretName::parse(&r.name)?;
        let value = value_field(&r.value_json, "valueJson")?;
        let policy = match (r.rotation_json.trim().is_empty(), r.remove_rotation) {
            (true, false) => PolicyChange::Keep,
            (true, true) => PolicyChange::Remove,
            (false, false) => PolicyChange::Set(json_field::<RotationPolicy>(
                &r.rotation_json,
                "rotationJson",
                None,
            )?),
            (false, true) => {
                return Err(Error::invalid(
                    "removeRotation",
                    "remove a policy or set one, not both",
                )
                .into());
            }
        };
        let summary = self
            .secrets
            .put(
                &caller,
                &name,
                &value,
                caller.stamp(cv::metadata(r.metadata)?),
                policy,
                r.expected_version,
            )
            .await?;
        Ok(Response::new(written(&summary)))
    }

    async fn list_secrets(
        &self,
        request: Request<pb::ListSecretsRequest>,
    ) -> RpcResult<pb::ListSecretsResponse> {
        let caller = caller_of(&request)?;
        let items = self.secrets.list(&caller).await?;
        Ok(Response::new(pb::ListSecretsResponse {
            items: items.iter().map(written).collect(),
        }))
    }

    async fn describe_secret(
        &self,
        request: Request<pb::DescribeSecretRequest>,
    ) -> RpcResult<pb::SecretInfo> {
        let caller = caller_of(&request)?;
        let name = SecretName::parse(&request.into_inner().name)?;
        let info = self.secrets.describe(&caller, &name).await?;
        Ok(Response::new(pb::SecretInfo {
            name: info.name.to_string(),
            rotation_json: info.rotation.as_ref().map(json_text).unwrap_or_default(),
            next_rotation_at: info.next_rotation_at.map(time).unwrap_or_default(),
            previous_expires_at: info.previous_expires_at.map(time).unwrap_or_default(),
            versions: info
                .versions
                .into_iter()
                .map(|v| pb::SecretVersionInfo {
                    version: v.version,
                    stages: v.stages.iter().map(|s| s.as_str().to_owned()).collect(),
                    format: v.format.as_str().to_owned(),
                    key_id: v.key_id,
                    origin_json: v.origin.as_ref().map(json_text).unwrap_or_default(),
                    actor: v.actor,
                    message: v.message,
                    created_at: time(v.created_at),
                })
                .collect(),
        }))
    }

    async fn get_secret_value(
        &self,
        request: Request<pb::GetSecretValueRequest>,
    ) -> RpcResult<pb::SecretValue> {
        let (caller, r) = caller_and_message(request)?;
        let name = SecretName::parse(&r.name)?;
        let selector = match (r.stage.as_str(), r.version) {
            ("", None) => Selector::Stage(Stage::Current),
            ("", Some(0)) => return Err(Error::invalid("version", "versions start at 1").into()),
            ("", Some(version)) => Selector::Version(version),
            (stage, None) => Selector::Stage(Stage::parse(stage, "stage")?),
            (_, Some(_)) => {
                return Err(
                    Error::invalid("version", "name a stage or a version, not both").into(),
                );
            }
        };
        let metadata = cv::metadata_or_own(&caller, r.metadata)?;
        let value = self
            .secrets
            .value(&caller, &name, selector, &metadata)
            .await?;
        Ok(Response::new(pb::SecretValue {
            name: value.name.to_string(),
            version: value.version,
            value_json: json_text(&value.value),
        }))
    }

    async fn delete_secret(
        &self,
        request: Request<pb::DeleteSecretRequest>,
    ) -> RpcResult<pb::DeleteSecretResponse> {
        let (caller, r) = caller_and_message(request)?;
        let name = SecretName::parse(&r.name)?;
        let version = self
            .secrets
            .delete(
                &caller,
                &name,
                cv::metadata_or_own(&caller, r.metadata)?,
                r.expected_version,
            )
            .await?;
        Ok(Response::new(pb::DeleteSecretResponse {
            name: name.to_string(),
            version,
        }))
    }

    async fn rotate_secret(
        &self,
        request: Request<pb::RotateSecretRequest>,
    ) -> RpcResult<pb::SecretWritten> {
        let (caller, r) = caller_and_message(request)?;
        let name = SecretName::parse(&r.name)?;
        let value = if r.value_json.trim().is_empty() {
            None
        } else {
            Some(value_field(&r.value_json, "valueJson")?)
        };
        let rotate = RotateRequest {
            value,
            pending: r.pending,
            expected: r.expected_version,
        };
        let metadata = cv::metadata_or_own(&caller, r.metadata)?;
        let summary = self
            .secrets
            .rotate(&caller, &name, rotate, metadata)
            .await?;
        Ok(Response::new(written(&summary)))
    }

    async fn promote_secret(
        &self,
        request: Request<pb::PromoteSecretRequest>,
    ) -> RpcResult<pb::SecretWritten> {
        let (caller, r) = caller_and_message(request)?;
        let name = SecretName::parse(&r.name)?;
        let metadata = cv::metadata_or_own(&caller, r.metadata)?;
        let summary = self
            .secrets
            .promote(&caller, &name, r.version, metadata)
            .await?;
        Ok(Response::new(written(&summary)))
    }

    async fn rewrap_secrets(
        &self,
        request: Request<pb::RewrapSecretsRequest>,
    ) -> RpcResult<pb::RewrapSecretsResponse> {
        let caller = caller_of(&request)?;
        let metadata = cv::metadata_or_own(&caller, request.into_inner().metadata)?;
        let report = self.secrets.rewrap_all(&caller, metadata).await?;
        Ok(Response::new(pb::RewrapSecretsResponse {
            key_id: report.key_id,
            rewrapped: report.rewrapped,
            unchanged: report.unchanged,
            webhook_secrets_rewrapped: report.webhook_secrets_rewrapped,
            webhook_secrets_unchanged: report.webhook_secrets_unchanged,
        }))
    }
}
