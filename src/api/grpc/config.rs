//! `summit.config.v1.ConfigService`: each RPC parses, calls the core, converts.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::convert::{self as cv, environment};
use super::pb;
use super::pb::config_service_server::ConfigService as ConfigRpc;
use super::{caller_and_message, caller_of};
use crate::core::access::AccessService;
use crate::core::effective::AssignmentInput;
use crate::core::ids::{ConfigId, InstanceId};
use crate::core::ports::AuditSubject;
use crate::core::service::{AppliedReport, ConfigService, EffectiveQuery, Written};

type RpcResult<T> = Result<Response<T>, Status>;

pub struct GrpcConfigService {
    service: Arc<ConfigService>,
    /// Ends a watch whose credential stops authenticating.
    access: Arc<AccessService>,
    watch_buffer: usize,
    shutdown: CancellationToken,
}

impl GrpcConfigService {
    pub fn new(
        service: Arc<ConfigService>,
        access: Arc<AccessService>,
        watch_buffer: usize,
        shutdown: CancellationToken,
    ) -> Self {
        GrpcConfigService {
            service,
            access,
            watch_buffer,
            shutdown,
        }
    }
}

pub fn effective_query(request: &pb::GetEffectiveConfigRequest) -> Result<EffectiveQuery, Status> {
    use pb::get_effective_config_request::Assignment;
    let assignment = match &request.assignment {
        None => AssignmentInput::None,
        Some(Assignment::AssignmentKey(key)) => AssignmentInput::key(key.clone())?,
        Some(Assignment::AssignmentValue(value)) => AssignmentInput::Value(*value),
    };
    Ok(EffectiveQuery {
        environment: environment(&request.environment)?,
        assignment,
        resolve_secrets: request.resolve_secrets,
        instance_id: (!request.instance_id.is_empty())
            .then(|| InstanceId::parse_field(&request.instance_id, "instanceId"))
            .transpose()?
            .map(|id| id.to_string()),
    })
}

#[tonic::async_trait]
impl ConfigRpc for GrpcConfigService {
    async fn register_schema(
        &self,
        request: Request<pb::RegisterSchemaRequest>,
    ) -> RpcResult<pb::SchemaVersion> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let schema = self
            .service
            .put_schema(
                &caller,
                &id,
                cv::schema(&r.schema_json)?,
                caller.stamp(cv::metadata(r.metadata)?),
            )
            .await?;
        Ok(Response::new(cv::pb_schema(&schema)))
    }

    async fn get_schema(
        &self,
        request: Request<pb::GetSchemaRequest>,
    ) -> RpcResult<pb::SchemaVersion> {
        let caller = caller_of(&request)?;
        let id = ConfigId::parse(&request.into_inner().config_id)?;
        Ok(Response::new(cv::pb_schema(
            &self.service.schema(&caller, &id).await?,
        )))
    }

    async fn validate_config(
        &self,
        request: Request<pb::ValidateConfigRequest>,
    ) -> RpcResult<pb::ValidationReport> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let report = self
            .service
            .validate(&caller, &id, &cv::document(r.document)?)
            .await?;
        Ok(Response::new(cv::pb_report(&report)))
    }

    async fn put_config(
        &self,
        request: Request<pb::PutConfigRequest>,
    ) -> RpcResult<pb::VersionCreated> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let version = self
            .service
            .put_config(
                &caller,
                &id,
                cv::document(r.document)?,
                caller.stamp(cv::metadata(r.metadata)?),
                r.expected_version,
            )
            .await?;
        Ok(Response::new(cv::pb_written(&version)))
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> RpcResult<pb::ConfigVersion> {
        let caller = caller_of(&request)?;
        let id = ConfigId::parse(&request.into_inner().config_id)?;
        let version = self.service.config(&caller, &id).await?;
        Ok(Response::new(cv::pb_version(&version)))
    }

    async fn list_configs(
        &self,
        request: Request<pb::ListConfigsRequest>,
    ) -> RpcResult<pb::ListConfigsResponse> {
        let caller = caller_of(&request)?;
        let prefix = request.into_inner().prefix;
        let items = self
            .service
            .list_configs(&caller, (!prefix.is_empty()).then_some(prefix.as_str()))
            .await?
            .iter()
            .map(cv::pb_config_summary)
            .collect();
        Ok(Response::new(pb::ListConfigsResponse { items }))
    }

    async fn delete_config(
        &self,
        request: Request<pb::DeleteConfigRequest>,
    ) -> RpcResult<pb::DeleteConfigResponse> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let written = self
            .service
            .delete_config(
                &caller,
                &id,
                cv::metadata_or_own(&caller, r.metadata)?,
                r.expected_version,
            )
            .await?;
        Ok(Response::new(match written {
            Written::Done(version) => pb::DeleteConfigResponse {
                config_id: id.to_string(),
                version,
                change_request_id: String::new(),
            },
            Written::Pending(request) => pb::DeleteConfigResponse {
                config_id: id.to_string(),
                version: 0,
                change_request_id: request.id,
            },
        }))
    }

    async fn get_effective_config(
        &self,
        request: Request<pb::GetEffectiveConfigRequest>,
    ) -> RpcResult<pb::EffectiveConfig> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let query = effective_query(&r)?;
        let effective = self.service.effective(&caller, &id, query).await?;
        Ok(Response::new(cv::pb_effective(&effective)))
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> RpcResult<pb::ListVersionsResponse> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let page = self
            .service
            .versions(&caller, &id, cv::nonzero(r.cursor), cv::limit(r.limit)?)
            .await?;
        Ok(Response::new(pb::ListVersionsResponse {
            items: page.items.iter().map(cv::pb_version).collect(),
            next_cursor: page.next_cursor.unwrap_or(0),
        }))
    }

    async fn get_version(
        &self,
        request: Request<pb::GetVersionRequest>,
    ) -> RpcResult<pb::ConfigVersion> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        Ok(Response::new(cv::pb_version(
            &self.service.version(&caller, &id, r.version).await?,
        )))
    }

    async fn diff(&self, request: Request<pb::DiffRequest>) -> RpcResult<pb::DiffResponse> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let env = environment(&r.environment)?;
        // 0 (unset in proto3): the core's defaults, as over REST.
        let diff = self
            .service
            .diff(
                &caller,
                &id,
                cv::nonzero(r.from),
                cv::nonzero(r.to),
                env.as_ref(),
            )
            .await?;
        Ok(Response::new(pb::DiffResponse {
            config_id: id.to_string(),
            from: diff.from,
            to: diff.to,
            patch_json: diff.patch.to_string(),
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> RpcResult<pb::VersionCreated> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let version = self
            .service
            .rollback(
                &caller,
                &id,
                r.target_version,
                caller.stamp(cv::metadata(r.metadata)?),
                r.expected_version,
            )
            .await?;
        Ok(Response::new(cv::pb_written(&version)))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> RpcResult<pb::ListAuditResponse> {
        let (caller, r) = caller_and_message(request)?;
        let id: Option<ConfigId> = (!r.config_id.is_empty())
            .then(|| ConfigId::parse(&r.config_id))
            .transpose()?;
        let page = self
            .service
            .audit(
                &caller,
                id.map(AuditSubject::Config),
                cv::nonzero(r.cursor),
                cv::limit(r.limit)?,
            )
            .await?;
        Ok(Response::new(pb::ListAuditResponse {
            items: page.items.iter().map(cv::pb_audit).collect(),
            next_cursor: page.next_cursor.unwrap_or(0),
        }))
    }

    async fn record_applied(
        &self,
        request: Request<pb::RecordAppliedRequest>,
    ) -> RpcResult<pb::ConfigDrift> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let report = AppliedReport {
            environment: r.environment,
            instance_id: r.instance_id,
            version: r.version,
            checksum: r.checksum,
        };
        Ok(Response::new(cv::pb_drift(
            &self.service.record_applied(&caller, &id, report).await?,
        )))
    }

    async fn get_drift(&self, request: Request<pb::GetDriftRequest>) -> RpcResult<pb::ConfigDrift> {
        let (caller, r) = caller_and_message(request)?;
        let id = ConfigId::parse(&r.config_id)?;
        let env = environment(&r.environment)?;
        Ok(Response::new(cv::pb_drift(
            &self.service.drift(&caller, &id, env.as_ref()).await?,
        )))
    }

    async fn get_drift_report(
        &self,
        request: Request<pb::GetDriftReportRequest>,
    ) -> RpcResult<pb::DriftReport> {
        let caller = caller_of(&request)?;
        Ok(Response::new(cv::pb_drift_report(
            &self.service.drift_report(&caller).await?,
        )))
    }

    type WatchStream = super::watch::EventStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> RpcResult<Self::WatchStream> {
        let caller = caller_of(&request)?;
        // The stream outlives the call's authentication: it ends once that credential is
        // revoked or expires.
        let credential = crate::api::http::access::bearer(request.metadata().as_ref())
            .filter(|_| self.access.enabled())
            .map(|credential| (self.access.clone(), credential.to_owned()));
        let stream = super::watch::start(
            self.service.clone(),
            caller,
            credential,
            request.into_inner(),
            self.watch_buffer,
            self.shutdown.clone(),
        )
        .await?;
        Ok(Response::new(stream))
    }
}
