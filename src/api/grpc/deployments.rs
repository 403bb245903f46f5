//! `summit.config.v1.DeploymentService`: deployment strategies and deployments over gRPC,
//! through the same `StrategyService` and `DeploymentService` as REST (which check the
//! permissions).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self as cv, json_field, json_text, time};
use super::pb::deployment_service_server::DeploymentService as DeploymentRpc;
use super::{caller_and_message, caller_of, pb};
use crate::core::deployments::model::{Deployment, StrategyRef};
use crate::core::deployments::service::page_cursor;
use crate::core::deployments::strategies::NamedStrategy;
use crate::core::deployments::strategy::Strategy;
use crate::core::deployments::transitions::Action;
use crate::core::deployments::{DeploymentService, NewDeployment, StrategyService};
use crate::core::error::Error;
use crate::core::ids::{ConfigId, Environment, StrategyName};
use crate::core::ports::DeploymentQuery;
use crate::core::service::Written;

type RpcResult<T> = Result<Response<T>, Status>;

pub struct GrpcDeploymentService {
    strategies: Arc<StrategyService>,
    deployments: Arc<DeploymentService>,
}

impl GrpcDeploymentService {
    pub fn new(strategies: Arc<StrategyService>, deployments: Arc<DeploymentService>) -> Self {
        GrpcDeploymentService {
            strategies,
            deployments,
        }
    }
}

fn deployment_info(deployment: &Deployment) -> pb::DeploymentInfo {
    pb::DeploymentInfo {
        id: deployment.id.clone(),
        config_id: deployment.config_id.to_string(),
        environment: deployment.environment.to_string(),
        version: deployment.version,
        previous_version: deployment.previous_version,
        state: deployment.state.as_str().to_owned(),
        step: deployment.step,
        percent: deployment.percent,
        deployment_json: json_text(deployment),
        change_request_id: String::new(),
    }
}

fn info(named: NamedStrategy) -> pb::StrategyInfo {
    match named {
        NamedStrategy::BuiltIn(built_in) => pb::StrategyInfo {
            name: built_in.name.to_string(),
            built_in: true,
            version: 0,
            strategy_json: json_text(&built_in.strategy),
            checksum: String::new(),
            created_at: String::new(),
        },
        NamedStrategy::Stored(stored) => pb::StrategyInfo {
            name: stored.version.id.to_string(),
            built_in: false,
            version: stored.version.version,
            strategy_json: json_text(&stored.version.document),
            checksum: stored.version.checksum.clone(),
            created_at: time(stored.version.created_at),
        },
    }
}

#[tonic::async_trait]
impl DeploymentRpc for GrpcDeploymentService {
    async fn put_strategy(
        &self,
        request: Request<pb::PutStrategyRequest>,
    ) -> RpcResult<pb::StrategyInfo> {
        let (caller, r) = caller_and_message(request)?;
        let name = StrategyName::parse(&r.name)?;
        let strategy: Strategy = json_field(&r.strategy_json, "strategyJson", None)?;
        let metadata = caller.stamp(cv::metadata(r.metadata)?);
        let version = self
            .strategies
            .put(&caller, &name, strategy, metadata, r.expected_version)
            .await?;
        Ok(Response::new(pb::StrategyInfo {
            name: version.id.to_string(),
            built_in: false,
            version: version.version,
            strategy_json: json_text(&version.document),
            checksum: version.checksum.clone(),
            created_at: time(version.created_at),
        }))
    }

    async fn get_strategy(
        &self,
        request: Request<pb::GetStrategyRequest>,
    ) -> RpcResult<pb::StrategyInfo> {
        let caller = caller_of(&request)?;
        let name = StrategyName::parse(&request.get_ref().name)?;
        Ok(Response::new(info(
            self.strategies.get(&caller, &name).await?,
        )))
    }

    async fn list_strategies(
        &self,
        request: Request<pb::ListStrategiesRequest>,
    ) -> RpcResult<pb::ListStrategiesResponse> {
        let caller = caller_of(&request)?;
        let strategies = self.strategies.list(&caller).await?;
        Ok(Response::new(pb::ListStrategiesResponse {
            strategies: strategies.into_iter().map(info).collect(),
        }))
    }

    async fn delete_strategy(
        &self,
        request: Request<pb::DeleteStrategyRequest>,
    ) -> RpcResult<pb::DeleteStrategyResponse> {
        let (caller, r) = caller_and_message(request)?;
        let name = StrategyName::parse(&r.name)?;
        let metadata = cv::metadata_or_own(&caller, r.metadata)?;
        self.strategies
            .delete(&caller, &name, metadata, r.expected_version)
            .await?;
        Ok(Response::new(pb::DeleteStrategyResponse {}))
    }

    async fn create_deployment(
        &self,
        request: Request<pb::CreateDeploymentRequest>,
    ) -> RpcResult<pb::DeploymentInfo> {
        let (caller, r) = caller_and_message(request)?;
        let strategy = match (
            r.strategy_name.is_empty(),
            r.strategy_json.trim().is_empty(),
        ) {
            (false, true) => StrategyRef::Name(r.strategy_name),
            (true, false) => StrategyRef::Inline(Box::new(json_field(
                &r.strategy_json,
                "strategyJson",
                None,
            )?)),
            _ => {
                return Err(Error::invalid(
                    "strategy",
                    "give strategy_name or strategy_json (one of them)",
                )
                .into());
            }
        };
        let deployment = self
            .deployments
            .create(
                &caller,
                NewDeployment {
                    config_id: ConfigId::parse(&r.config_id)?,
                    environment: Environment::parse_field(&r.environment, "environment")?,
                    version: r.version,
                    strategy,
                    instances: (!r.instances.is_empty()).then_some(r.instances),
                    metadata: caller.stamp(cv::metadata(r.metadata)?),
                },
            )
            .await?;
        Ok(Response::new(match deployment {
            Written::Done(deployment) => deployment_info(&deployment),
            Written::Pending(request) => pb::DeploymentInfo {
                change_request_id: request.id,
                ..pb::DeploymentInfo::default()
            },
        }))
    }

    async fn get_deployment(
        &self,
        request: Request<pb::GetDeploymentRequest>,
    ) -> RpcResult<pb::DeploymentInfo> {
        let caller = caller_of(&request)?;
        let deployment = self.deployments.get(&caller, &request.get_ref().id).await?;
        Ok(Response::new(deployment_info(&deployment)))
    }

    async fn list_deployments(
        &self,
        request: Request<pb::ListDeploymentsRequest>,
    ) -> RpcResult<pb::ListDeploymentsResponse> {
        let (caller, r) = caller_and_message(request)?;
        let query = DeploymentQuery {
            config_id: (!r.config_id.is_empty())
                .then(|| cv::config_id(&r.config_id))
                .transpose()?,
            environment: cv::environment(&r.environment)?,
            active_only: r.active_only,
            before: r.cursor.map(page_cursor).transpose()?,
            limit: 0,
        };
        let page = self
            .deployments
            .list(&caller, query, (r.limit > 0).then_some(r.limit))
            .await?;
        Ok(Response::new(pb::ListDeploymentsResponse {
            deployments: page.items.iter().map(deployment_info).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    async fn act_on_deployment(
        &self,
        request: Request<pb::DeploymentActionRequest>,
    ) -> RpcResult<pb::DeploymentInfo> {
        let (caller, r) = caller_and_message(request)?;
        let action = Action::parse(&r.action)?;
        let metadata = cv::metadata_or_own(&caller, r.metadata)?;
        let deployment = self
            .deployments
            .act(&caller, &r.id, action, metadata)
            .await?;
        Ok(Response::new(deployment_info(&deployment)))
    }

    async fn get_deployment_log(
        &self,
        request: Request<pb::GetDeploymentRequest>,
    ) -> RpcResult<pb::DeploymentLog> {
        let caller = caller_of(&request)?;
        let entries = self.deployments.log(&caller, &request.get_ref().id).await?;
        Ok(Response::new(pb::DeploymentLog {
            entries_json: entries.iter().map(json_text).collect(),
        }))
    }
}
