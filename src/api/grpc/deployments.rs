//! `summit.config.v1.DeploymentService`: deployment strategies over gRPC, through the same
//! `StrategyService` as REST (which checks the permissions).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self as cv, json_field, json_text, time};
use super::pb::deployment_service_server::DeploymentService as DeploymentRpc;
use super::{caller_of, pb};
use crate::core::deployments::StrategyService;
use crate::core::deployments::strategies::NamedStrategy;
use crate::core::deployments::strategy::Strategy;
use crate::core::ids::StrategyName;

type RpcResult<T> = Result<Response<T>, Status>;

pub struct GrpcDeploymentService {
    strategies: Arc<StrategyService>,
}

impl GrpcDeploymentService {
    pub fn new(strategies: Arc<StrategyService>) -> Self {
        GrpcDeploymentService { strategies }
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
        let caller = caller_of(&request)?;
        let r = request.into_inner();
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
        let caller = caller_of(&request)?;
        let r = request.into_inner();
        let name = StrategyName::parse(&r.name)?;
        let metadata = caller.stamp(cv::metadata(r.metadata)?);
        self.strategies
            .delete(&caller, &name, metadata, r.expected_version)
            .await?;
        Ok(Response::new(pb::DeleteStrategyResponse {}))
    }
}
