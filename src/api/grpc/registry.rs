//! `summit.config.v1.RegistryService`: each RPC parses, calls the same `RegistryService` as
//! REST (which checks the permission on the service), converts.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::time;
use super::pb::registry_service_server::RegistryService as RegistryRpc;
use super::{caller_and_message, caller_of, pb};
use crate::core::error::Error;
use crate::core::ids::{Environment, InstanceId, ServiceName};
use crate::core::registry::RegistryService;
use crate::core::registry::model::{
    Heartbeat, Instance, Registration, ServiceSummary, Status as Health,
};

type RpcResult<T> = Result<Response<T>, Status>;

pub struct GrpcRegistryService {
    registry: Arc<RegistryService>,
}

impl GrpcRegistryService {
    pub fn new(registry: Arc<RegistryService>) -> Self {
        GrpcRegistryService { registry }
    }
}

fn pb_instance(instance: Instance) -> pb::Instance {
    let healthy = instance.healthy();
    let (maintenance_by, maintenance_since) = instance
        .maintenance
        .as_ref()
        .map(|m| (m.by.clone(), time(m.since)))
        .unwrap_or_default();
    let metrics = instance.metrics.unwrap_or_default();
    pb::Instance {
        service_name: instance.service_name.to_string(),
        instance_id: instance.instance_id.to_string(),
        service_url: instance.service_url,
        health_check_url: instance.health_check_url.unwrap_or_default(),
        environment: instance.environment.map(String::from).unwrap_or_default(),
        weight: instance.weight,
        metadata: instance.metadata.into_iter().collect(),
        ttl_secs: instance.ttl_secs,
        deregister_after_secs: instance.deregister_after_secs,
        status: instance.status.as_str().to_owned(),
        output: instance.output.unwrap_or_default(),
        maintenance: instance.maintenance.is_some(),
        maintenance_reason: instance
            .maintenance
            .and_then(|m| m.reason)
            .unwrap_or_default(),
        expired: instance.expired,
        applied: instance
            .applied
            .into_iter()
            .map(|(id, checksum)| (String::from(id), checksum))
            .collect(),
        registered_at: time(instance.registered_at),
        last_heartbeat: time(instance.last_heartbeat),
        version: instance.version,
        healthy,
        maintenance_by,
        maintenance_since,
        error_rate: metrics.error_rate,
        latency_p99_ms: metrics.latency_p99_ms,
    }
}

fn pb_summary(summary: ServiceSummary) -> pb::ServiceSummary {
    pb::ServiceSummary {
        service_name: summary.service_name,
        instances: summary.instances,
        healthy: summary.healthy,
        passing: summary.passing,
        warning: summary.warning,
        critical: summary.critical,
        maintenance: summary.maintenance,
        expired: summary.expired,
    }
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn environment(text: &str) -> Result<Option<Environment>, Error> {
    non_empty(text.to_owned())
        .map(|e| Environment::parse_field(&e, "environment"))
        .transpose()
}

#[tonic::async_trait]
impl RegistryRpc for GrpcRegistryService {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> RpcResult<pb::Instance> {
        let (caller, r) = caller_and_message(request)?;
        let registration = Registration {
            service_name: r.service_name,
            service_url: r.service_url,
            health_check_url: non_empty(r.health_check_url),
            instance_id: non_empty(r.instance_id),
            environment: non_empty(r.environment),
            weight: r.weight,
            metadata: (!r.metadata.is_empty()).then(|| r.metadata.into_iter().collect()),
            ttl_secs: r.ttl_secs,
            deregister_after_secs: r.deregister_after_secs,
        };
        let instance = self.registry.register(&caller, registration).await?;
        Ok(Response::new(pb_instance(instance)))
    }

    async fn deregister(
        &self,
        request: Request<pb::DeregisterRequest>,
    ) -> RpcResult<pb::DeregisterResponse> {
        let (caller, r) = caller_and_message(request)?;
        let service = ServiceName::parse_field(&r.service_name, "serviceName")?;
        let id = InstanceId::parse_field(&r.instance_id, "instanceId")?;
        self.registry.deregister(&caller, &service, &id).await?;
        Ok(Response::new(pb::DeregisterResponse {}))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> RpcResult<pb::HeartbeatResponse> {
        let (caller, r) = caller_and_message(request)?;
        let service = ServiceName::parse_field(&r.service_name, "serviceName")?;
        let id = InstanceId::parse_field(&r.instance_id, "instanceId")?;
        let status = match r.status.as_str() {
            "" => None,
            "passing" => Some(Health::Passing),
            "warning" => Some(Health::Warning),
            "critical" => Some(Health::Critical),
            _ => {
                return Err(Error::invalid(
                    "status",
                    "status must be passing, warning or critical",
                )
                .into());
            }
        };
        let heartbeat = Heartbeat {
            status,
            applied: (!r.applied.is_empty()).then(|| r.applied.into_iter().collect()),
            output: non_empty(r.output),
            error_rate: r.error_rate,
            latency_p99_ms: r.latency_p99_ms,
        };
        let instance = self
            .registry
            .heartbeat(&caller, &service, &id, heartbeat)
            .await?;
        Ok(Response::new(pb::HeartbeatResponse {
            status: instance.status.as_str().to_owned(),
            healthy: instance.healthy(),
            last_heartbeat: time(instance.last_heartbeat),
            expires_at: time(instance.expires_at()),
        }))
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> RpcResult<pb::ListServicesResponse> {
        let caller = caller_of(&request)?;
        let services = self.registry.services(&caller)?;
        Ok(Response::new(pb::ListServicesResponse {
            services: services.into_iter().map(pb_summary).collect(),
        }))
    }

    async fn get_service(
        &self,
        request: Request<pb::GetServiceRequest>,
    ) -> RpcResult<pb::ServiceInstances> {
        let caller = caller_of(&request)?;
        let service = ServiceName::parse_field(&request.get_ref().service_name, "serviceName")?;
        let instances = self.registry.service(&caller, &service).await?;
        Ok(Response::new(pb::ServiceInstances {
            service_name: service.to_string(),
            instances: instances.into_iter().map(pb_instance).collect(),
        }))
    }

    async fn discover(
        &self,
        request: Request<pb::DiscoverRequest>,
    ) -> RpcResult<pb::DiscoverResponse> {
        let caller = caller_of(&request)?;
        let r = request.get_ref();
        let service = ServiceName::parse_field(&r.service_name, "serviceName")?;
        let discovery =
            self.registry
                .discover(&caller, &service, environment(&r.environment)?.as_ref())?;
        Ok(Response::new(pb::DiscoverResponse {
            service_name: discovery.service_name,
            protection_active: discovery.protection_active,
            healthy: discovery.healthy,
            total: discovery.total,
            instances: discovery.instances.into_iter().map(pb_instance).collect(),
        }))
    }

    async fn get_service_url(
        &self,
        request: Request<pb::DiscoverRequest>,
    ) -> RpcResult<pb::ServiceUrl> {
        let caller = caller_of(&request)?;
        let r = request.get_ref();
        let service = ServiceName::parse_field(&r.service_name, "serviceName")?;
        let instance =
            self.registry
                .pick(&caller, &service, environment(&r.environment)?.as_ref())?;
        Ok(Response::new(pb::ServiceUrl {
            service_name: instance.service_name.to_string(),
            instance_id: instance.instance_id.to_string(),
            url: instance.service_url,
            weight: instance.weight,
        }))
    }

    async fn check_health(
        &self,
        request: Request<pb::CheckHealthRequest>,
    ) -> RpcResult<pb::CheckHealthResponse> {
        let caller = caller_of(&request)?;
        let service = ServiceName::parse_field(&request.get_ref().service_name, "serviceName")?;
        let results = self.registry.check_service(&caller, &service).await?;
        Ok(Response::new(pb::CheckHealthResponse {
            results: results
                .into_iter()
                .map(|r| pb::CheckResult {
                    instance_id: r.instance_id,
                    status: r.status.as_str().to_owned(),
                    output: r.output.unwrap_or_default(),
                    checked: r.checked,
                })
                .collect(),
        }))
    }

    async fn set_maintenance(
        &self,
        request: Request<pb::SetMaintenanceRequest>,
    ) -> RpcResult<pb::Instance> {
        let (caller, r) = caller_and_message(request)?;
        let service = ServiceName::parse_field(&r.service_name, "serviceName")?;
        let id = InstanceId::parse_field(&r.instance_id, "instanceId")?;
        let instance = self
            .registry
            .set_maintenance(&caller, &service, &id, r.enabled, non_empty(r.reason))
            .await?;
        Ok(Response::new(pb_instance(instance)))
    }
}
