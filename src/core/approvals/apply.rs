//! Applying an approved change request, whatever document it changes: the approval workflow
//! checks and records, the subject's service writes (with the request's `applied` state in the
//! same transaction).

use super::model::{ChangeOperation, ChangeRequest, Subject};
use crate::core::access::Caller;
use crate::core::configs::ConfigService;
use crate::core::deployments::DeploymentService;
use crate::core::error::Result;
use crate::core::flags::FlagService;
use crate::core::model::Metadata;

/// Applies approved request `id`. Refused with 409 when its config or flag moved past the
/// request's base version (a new request is needed).
pub async fn apply(
    configs: &ConfigService,
    flags: &FlagService,
    deployments: &DeploymentService,
    caller: &Caller,
    id: &str,
    actor: &Metadata,
) -> Result<ChangeRequest> {
    let applying = configs.applying(caller, id, actor).await?;
    let written = match (&applying.request.subject, &applying.request.operation) {
        (Subject::Config(config), ChangeOperation::Deploy(deploy)) => deployments
            .apply_deploy(caller, config, deploy, &applying)
            .await
            .map(|deployment| deployment.version),
        (Subject::Config(config), _) => configs.apply_config(config, &applying).await,
        (Subject::Flag(key), _) => flags.apply_flag(key, &applying).await,
    };
    let version = written.map_err(|error| applying.rebase(error))?;
    Ok(applying.applied(version))
}
