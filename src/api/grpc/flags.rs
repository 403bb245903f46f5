//! `summit.config.v1.FlagService`: each RPC parses, calls the core, converts.

use std::sync::Arc;

use serde_json::Value;
use tonic::{Request, Response, Status};

use super::convert::{self as cv, environment, json_field, json_text, time};
use super::pb::flag_service_server::FlagService as FlagRpc;
use super::{caller_and_message, caller_of, pb};
use crate::core::error::Error;
use crate::core::flags::service::{EvaluationScope, MAX_BATCH};
use crate::core::flags::{Evaluation, EvaluationContext, FlagDefinition, FlagService, FlagVersion};
use crate::core::ids::FlagKey;
use crate::core::service::Written;

type RpcResult<T> = Result<Response<T>, Status>;

pub struct GrpcFlagService {
    flags: Arc<FlagService>,
}

impl GrpcFlagService {
    pub fn new(flags: Arc<FlagService>) -> Self {
        GrpcFlagService { flags }
    }
}

fn flag_key(raw: &str) -> Result<FlagKey, Error> {
    FlagKey::parse_field(raw, "flagKey")
}

fn pb_flag(flag: &FlagVersion) -> pb::Flag {
    pb::Flag {
        flag_key: flag.id.to_string(),
        version: flag.version,
        definition_json: json_text(&flag.document),
        metadata: Some(cv::pb_metadata(&flag.metadata)),
        checksum: flag.checksum.clone(),
        created_at: time(flag.created_at),
        rollback_of: flag.rollback_of,
    }
}

/// A flag write's answer: the version, or the change request it became.
fn pb_written(written: &Written<Arc<FlagVersion>>) -> pb::FlagCreated {
    match written {
        Written::Done(flag) => pb::FlagCreated {
            flag_key: flag.id.to_string(),
            version: flag.version,
            checksum: flag.checksum.clone(),
            created_at: time(flag.created_at),
            rollback_of: flag.rollback_of,
            change_request_id: String::new(),
        },
        Written::Pending(request) => pb::FlagCreated {
            flag_key: request.subject.as_str().to_owned(),
            change_request_id: request.id.clone(),
            ..Default::default()
        },
    }
}

fn pb_evaluation(evaluation: &Evaluation) -> pb::FlagEvaluation {
    let mut out = pb::FlagEvaluation {
        flag_key: evaluation.key.clone(),
        version: evaluation.version,
        ..Default::default()
    };
    match &evaluation.outcome {
        Ok(resolution) => {
            out.value_json = json_text(&resolution.value);
            out.variant = resolution.variant.clone();
            out.reason = resolution.reason.as_str().to_owned();
        }
        Err(failure) => {
            out.reason = "ERROR".to_owned();
            out.error_code = failure.code.as_str().to_owned();
            out.error_message = failure.message.clone();
        }
    }
    out
}

fn scope(environment_name: &str, service: &str) -> Result<EvaluationScope, Error> {
    let environment = environment(environment_name)?;
    Ok(EvaluationScope {
        environment,
        service: (!service.is_empty()).then(|| service.to_owned()),
    })
}

fn context(text: &str) -> Result<EvaluationContext, Error> {
    let value: Value = json_field(text, "contextJson", Some(Value::Null))?;
    EvaluationContext::from_json(value, "contextJson")
}

#[tonic::async_trait]
impl FlagRpc for GrpcFlagService {
    async fn put_flag(&self, request: Request<pb::PutFlagRequest>) -> RpcResult<pb::FlagCreated> {
        let (caller, r) = caller_and_message(request)?;
        let key = flag_key(&r.flag_key)?;
        let definition: FlagDefinition = json_field(&r.definition_json, "definitionJson", None)?;
        let flag = self
            .flags
            .put_flag(
                &caller,
                &key,
                definition,
                caller.stamp(cv::metadata(r.metadata)?),
                r.expected_version,
            )
            .await?;
        Ok(Response::new(pb_written(&flag)))
    }

    async fn get_flag(&self, request: Request<pb::GetFlagRequest>) -> RpcResult<pb::Flag> {
        let caller = caller_of(&request)?;
        let key = flag_key(&request.into_inner().flag_key)?;
        let flag = self.flags.flag(&caller, &key).await?;
        Ok(Response::new(pb_flag(&flag)))
    }

    async fn list_flags(
        &self,
        request: Request<pb::ListFlagsRequest>,
    ) -> RpcResult<pb::ListFlagsResponse> {
        let caller = caller_of(&request)?;
        let service = request.into_inner().service;
        let flags = self
            .flags
            .flags(&caller, (!service.is_empty()).then_some(service.as_str()))
            .await?;
        Ok(Response::new(pb::ListFlagsResponse {
            flags: flags.iter().map(|f| pb_flag(f)).collect(),
        }))
    }

    async fn delete_flag(
        &self,
        request: Request<pb::DeleteFlagRequest>,
    ) -> RpcResult<pb::DeleteFlagResponse> {
        let (caller, r) = caller_and_message(request)?;
        let key = flag_key(&r.flag_key)?;
        let written = self
            .flags
            .delete_flag(
                &caller,
                &key,
                cv::metadata_or_own(&caller, r.metadata)?,
                r.expected_version,
            )
            .await?;
        Ok(Response::new(match written {
            Written::Done(version) => pb::DeleteFlagResponse {
                flag_key: key.to_string(),
                version,
                change_request_id: String::new(),
            },
            Written::Pending(request) => pb::DeleteFlagResponse {
                flag_key: key.to_string(),
                version: 0,
                change_request_id: request.id,
            },
        }))
    }

    async fn rollback_flag(
        &self,
        request: Request<pb::RollbackFlagRequest>,
    ) -> RpcResult<pb::FlagCreated> {
        let (caller, r) = caller_and_message(request)?;
        let key = flag_key(&r.flag_key)?;
        let flag = self
            .flags
            .rollback(
                &caller,
                &key,
                r.target_version,
                caller.stamp(cv::metadata(r.metadata)?),
                r.expected_version,
            )
            .await?;
        Ok(Response::new(pb_written(&flag)))
    }

    async fn evaluate_flag(
        &self,
        request: Request<pb::EvaluateFlagRequest>,
    ) -> RpcResult<pb::FlagEvaluation> {
        let (caller, r) = caller_and_message(request)?;
        let key = flag_key(&r.flag_key)?;
        let scope = scope(&r.environment, &r.service)?;
        let context = context(&r.context_json)?;
        let evaluation = self
            .flags
            .evaluate(&caller, key.as_str(), &scope, &context)
            .await?;
        if evaluation.version == 0 {
            return Err(Error::not_found("flag", key.as_str()).into());
        }
        Ok(Response::new(pb_evaluation(&evaluation)))
    }

    async fn evaluate_flags(
        &self,
        request: Request<pb::EvaluateFlagsRequest>,
    ) -> RpcResult<pb::EvaluateFlagsResponse> {
        let (caller, r) = caller_and_message(request)?;
        if r.flag_keys.len() > MAX_BATCH {
            return Err(Error::invalid("flagKeys", format!("at most {MAX_BATCH} flags")).into());
        }
        for (index, key) in r.flag_keys.iter().enumerate() {
            FlagKey::parse_field(key, &format!("flagKeys[{index}]"))?;
        }
        let scope = scope(&r.environment, &r.service)?;
        let context = context(&r.context_json)?;
        let keys = (!r.flag_keys.is_empty()).then_some(r.flag_keys.as_slice());
        let evaluations = self
            .flags
            .evaluate_many(&caller, keys, &scope, &context)
            .await?;
        Ok(Response::new(pb::EvaluateFlagsResponse {
            results: evaluations.iter().map(pb_evaluation).collect(),
        }))
    }
}
