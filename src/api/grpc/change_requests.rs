//! `summit.config.v1.ChangeRequestService`: the approval workflow. Each RPC parses, calls the
//! core (which decides who may do what), converts.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert as cv;
use super::pb;
use super::pb::change_request_service_server::ChangeRequestService as ChangeRequestRpc;
use super::{caller_and_message, caller_of};
use crate::core::access::Caller;
use crate::core::approvals;
use crate::core::deployments::DeploymentService;
use crate::core::error::Error;
use crate::core::flags::FlagService;
use crate::core::model::Metadata;
use crate::core::service::ConfigService;
use crate::core::validation::check_metadata;

type RpcResult<T> = Result<Response<T>, Status>;

pub struct GrpcChangeRequestService {
    service: Arc<ConfigService>,
    /// Applies approved flag requests.
    flags: Arc<FlagService>,
    deployments: Arc<DeploymentService>,
}

impl GrpcChangeRequestService {
    pub fn new(
        service: Arc<ConfigService>,
        flags: Arc<FlagService>,
        deployments: Arc<DeploymentService>,
    ) -> Self {
        GrpcChangeRequestService {
            service,
            flags,
            deployments,
        }
    }
}

/// Who decides, as over REST: the authenticated identity when access control is on (a
/// different `metadata.actor` becomes on-behalf-of); with it off, the actor `metadata` names.
fn actor(caller: &Caller, metadata: Option<pb::Metadata>) -> Result<Metadata, Status> {
    let metadata = match (caller.identity().unrestricted, metadata) {
        (false, metadata) => caller.stamp(
            metadata
                .map(|m| cv::metadata(Some(m)))
                .transpose()?
                .unwrap_or_default(),
        ),
        (true, Some(metadata)) => cv::metadata(Some(metadata))?,
        (true, None) => {
            return Err(Error::invalid(
                "metadata",
                "without access control the actor must be named in metadata.actor",
            )
            .into());
        }
    };
    check_metadata(&metadata)?;
    Ok(metadata)
}

#[tonic::async_trait]
impl ChangeRequestRpc for GrpcChangeRequestService {
    async fn list_change_requests(
        &self,
        request: Request<pb::ListChangeRequestsRequest>,
    ) -> RpcResult<pb::ListChangeRequestsResponse> {
        let caller = caller_of(&request)?;
        let query = cv::change_request_query(request.into_inner())?;
        let items = self
            .service
            .change_requests(&caller, query)
            .await?
            .iter()
            .map(cv::pb_change_request)
            .collect();
        Ok(Response::new(pb::ListChangeRequestsResponse { items }))
    }

    async fn get_change_request(
        &self,
        request: Request<pb::GetChangeRequestRequest>,
    ) -> RpcResult<pb::ChangeRequest> {
        let caller = caller_of(&request)?;
        let id = request.into_inner().change_request_id;
        let found = self.service.change_request(&caller, &id).await?;
        Ok(Response::new(cv::pb_change_request(&found)))
    }

    async fn approve_change_request(
        &self,
        request: Request<pb::ApproveChangeRequestRequest>,
    ) -> RpcResult<pb::ChangeRequest> {
        let (caller, r) = caller_and_message(request)?;
        let approver = actor(&caller, r.metadata)?;
        let approved = self
            .service
            .approve(&caller, &r.change_request_id, &approver)
            .await?;
        Ok(Response::new(cv::pb_change_request(&approved)))
    }

    async fn reject_change_request(
        &self,
        request: Request<pb::RejectChangeRequestRequest>,
    ) -> RpcResult<pb::ChangeRequest> {
        let (caller, r) = caller_and_message(request)?;
        let rejecter = actor(&caller, r.metadata)?;
        let rejected = self
            .service
            .reject(&caller, &r.change_request_id, &r.reason, &rejecter)
            .await?;
        Ok(Response::new(cv::pb_change_request(&rejected)))
    }

    async fn cancel_change_request(
        &self,
        request: Request<pb::CancelChangeRequestRequest>,
    ) -> RpcResult<pb::ChangeRequest> {
        let (caller, r) = caller_and_message(request)?;
        let canceller = actor(&caller, r.metadata)?;
        let cancelled = self
            .service
            .cancel(&caller, &r.change_request_id, &r.reason, &canceller)
            .await?;
        Ok(Response::new(cv::pb_change_request(&cancelled)))
    }

    async fn apply_change_request(
        &self,
        request: Request<pb::ApplyChangeRequestRequest>,
    ) -> RpcResult<pb::ChangeRequest> {
        let (caller, r) = caller_and_message(request)?;
        let applier = actor(&caller, r.metadata)?;
        let applied = approvals::apply(
            &self.service,
            &self.flags,
            &self.deployments,
            &caller,
            &r.change_request_id,
            &applier,
        )
        .await?;
        Ok(Response::new(cv::pb_change_request(&applied)))
    }
}
