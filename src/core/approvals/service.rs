//! The approval workflow on `ConfigService`: a write touching a protected environment becomes a
//! change request (pending → approved → applied, or rejected / cancelled); every transition is
//! audited and is a change event. Also the environment-scope check of writes.

mod decisions;

use super::model::{ChangeOperation, ChangeRequest, ChangeRequestStatus, Proposal, Subject};
use crate::core::access::model::Denial;
use crate::core::access::{Caller, Permission};
use crate::core::effective::changed_environments;
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeKind, kind};
use crate::core::flags::model::changed_environments as flag_changed_environments;
use crate::core::ids::ConfigId;
use crate::core::ids::Touched;
use crate::core::model::{AuditDraft, Metadata};
use crate::core::ports::{AppliedRequest, ChangeRequestQuery, ChangeRequestWrite, Documents};
use crate::core::service::{ConfigService, now};

impl ConfigService {
    /// Refuses (and records) a change touching environments outside the caller's scope; a
    /// change to the base (`*`) touches every environment.
    pub(crate) async fn check_environment_scope(
        &self,
        metadata: &Metadata,
        touched: &Touched,
        resource: &str,
    ) -> Result<()> {
        let Some(allowed) = &metadata.allowed_environments else {
            return Ok(());
        };
        let outside = touched.outside(allowed);
        if outside.is_empty() {
            return Ok(());
        }
        let reason = format!(
            "'{}' may change environments {} only; this change touches {}",
            metadata.actor,
            allowed.join(", "),
            outside.join(", ")
        );
        let denial = Denial {
            id: 0,
            at: now(),
            actor: metadata.actor.clone(),
            operation: "write".into(),
            resource: Some(resource.to_owned()),
            reason: reason.clone(),
        };
        if let Err(error) = self.store.record_denial(denial).await {
            tracing::warn!(%error, "could not record a denied attempt");
        }
        Err(Error::Forbidden {
            reason,
            recorded: true,
            resource: Some(resource.to_owned()),
        })
    }

    /// The protected environments a change touches and the approvals it needs, if any.
    pub(crate) fn approvals_needed(&self, touched: &Touched) -> Option<(Vec<String>, u32)> {
        let protected = &self.settings.protected_environments;
        let hit: Vec<String> = protected
            .iter()
            .filter(|(env, required)| **required > 0 && touched.includes(env))
            .map(|(env, _)| env.clone())
            .collect();
        let required = hit
            .iter()
            .filter_map(|env| protected.get(env))
            .max()
            .copied()?;
        Some((hit, required))
    }

    pub(crate) async fn request_change(
        &self,
        subject: Subject,
        operation: ChangeOperation,
        base_version: u64,
        environments: Vec<String>,
        required_approvals: u32,
        metadata: &Metadata,
    ) -> Result<ChangeRequest> {
        let at = now();
        let request = ChangeRequest {
            id: uuid::Uuid::new_v4().to_string(),
            subject,
            operation,
            base_version,
            environments: environments.clone(),
            required_approvals,
            approvals: Vec::new(),
            status: ChangeRequestStatus::Pending,
            requested_by: metadata.actor.clone(),
            on_behalf_of: metadata.on_behalf_of.clone(),
            message: metadata.message.clone(),
            reason: None,
            applied_version: None,
            created_at: at,
            updated_at: at,
        };
        self.transition(
            request,
            None,
            kind::CHANGE_REQUEST_CREATED,
            "change_request.create",
            metadata,
        )
        .await
    }

    /// Commits a change request as it now is, if it is still as `expected` was read.
    async fn transition(
        &self,
        request: ChangeRequest,
        expected: Option<(ChangeRequestStatus, usize)>,
        event: ChangeKind,
        action: &'static str,
        metadata: &Metadata,
    ) -> Result<ChangeRequest> {
        let write = ChangeRequestWrite {
            request: request.clone(),
            expected,
            kind: event,
            audit: AuditDraft {
                actor: metadata.actor.clone(),
                action,
                environments: request.environments.clone(),
                message: Some(match &metadata.message {
                    Some(message) => format!("change request {}: {message}", request.id),
                    None => format!("change request {}", request.id),
                }),
                on_behalf_of: metadata.on_behalf_of.clone(),
                details: Default::default(),
            },
        };
        let store = self.store.clone();
        self.commit(async move { store.put_change_request(write).await })
            .await?;
        Ok(request)
    }

    pub async fn change_request(&self, caller: &Caller, id: &str) -> Result<ChangeRequest> {
        caller.require(Permission::Read)?;
        let request = self.stored_request(id).await?;
        caller.require_resource(request.subject.as_str())?;
        Ok(request)
    }

    async fn stored_request(&self, id: &str) -> Result<ChangeRequest> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Error::invalid(
                "changeRequestId",
                "a change request id is a UUID",
            ));
        }
        self.store
            .change_request(id)
            .await?
            .ok_or_else(|| Error::not_found("change request", id))
    }

    /// Requests on configs outside the caller's id scope are left out.
    pub async fn change_requests(
        &self,
        caller: &Caller,
        query: ChangeRequestQuery,
    ) -> Result<Vec<ChangeRequest>> {
        caller.require(Permission::Read)?;
        let query = ChangeRequestQuery {
            prefixes: caller.identity().scopes.config_prefixes.clone(),
            ..query
        };
        let mut requests = self.store.change_requests(query).await?;
        requests.retain(|request| caller.allows_resource(request.subject.as_str()));
        Ok(requests)
    }

    /// The request, if the caller may decide on it: the approve permission, its config in
    /// scope, and every environment the change touches in scope. A change to the base (a
    /// create, a delete, a new base config) touches every environment, so an
    /// environment-scoped approver cannot decide it.
    async fn decidable(&self, caller: &Caller, id: &str) -> Result<ChangeRequest> {
        caller.require(Permission::Approve)?;
        let request = self.stored_request(id).await?;
        caller.require_resource(request.subject.as_str())?;
        if caller.identity().scopes.environments.is_empty() {
            return Ok(request);
        }
        match self.touched_environments(&request).await? {
            Touched::Every => {
                return Err(Error::forbidden(format!(
                    "'{}' is scoped to environments; change request {} touches every \
                     environment (it changes the base or flag-wide fields, or creates or deletes \
                     the {})",
                    caller.identity().name,
                    request.id,
                    request.subject.kind_name()
                ))
                .on_resource(request.subject.as_str()));
            }
            Touched::Only(environments) => {
                for env in environments {
                    caller
                        .require_environment(&env)
                        .map_err(|error| error.on_resource(request.subject.as_str()))?;
                }
            }
        }
        Ok(request)
    }

    /// The environments a request's change touches, against its base version (`*`: all).
    async fn touched_environments(&self, request: &ChangeRequest) -> Result<Touched> {
        let (base, target) = (request.base_version, request.operation.target_version());
        match (&request.subject, &request.operation) {
            (_, ChangeOperation::Delete) => Ok(Touched::Every),
            (_, ChangeOperation::Deploy(deploy)) => {
                Ok(Touched::Only(vec![deploy.environment.to_string()]))
            }
            (Subject::Config(id), operation) => {
                let base = match base {
                    0 => None,
                    version => Some(self.stored_version(id, version).await?.document),
                };
                let proposed = match (operation, target) {
                    (ChangeOperation::Put { document }, _) => match &**document {
                        Proposal::Config(document) => document.clone(),
                        Proposal::Flag(_) => return Err(mismatched(request)),
                    },
                    (_, Some(target)) => self.stored_version(id, target).await?.document,
                    _ => return Err(mismatched(request)),
                };
                Ok(changed_environments(base.as_ref(), &proposed))
            }
            (Subject::Flag(key), operation) => {
                let flags = self.store.flags();
                let stored = |version| async move {
                    flags
                        .version(key, version)
                        .await?
                        .map(|v| v.document)
                        .ok_or_else(|| {
                            Error::not_found("flag version", format!("{key} v{version}"))
                        })
                };
                let base = match base {
                    0 => None,
                    version => Some(stored(version).await?),
                };
                let proposed = match (operation, target) {
                    (ChangeOperation::Put { document }, _) => match &**document {
                        Proposal::Flag(definition) => definition.clone(),
                        Proposal::Config(_) => return Err(mismatched(request)),
                    },
                    (_, Some(target)) => stored(target).await?,
                    _ => return Err(mismatched(request)),
                };
                Ok(flag_changed_environments(base.as_ref(), &proposed))
            }
        }
    }

    fn require_status(request: &ChangeRequest, allowed: &[ChangeRequestStatus]) -> Result<()> {
        if allowed.contains(&request.status) {
            return Ok(());
        }
        Err(Error::conflict(format!(
            "change request {} is {}; this needs it {}",
            request.id,
            request.status.as_str(),
            allowed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }

    /// The first half of applying request `id`: the caller may write its subject, it is
    /// approved, and what the write records. The subject's service makes the write
    /// (`approvals::apply`).
    pub(crate) async fn applying(
        &self,
        caller: &Caller,
        id: &str,
        actor: &Metadata,
    ) -> Result<Applying> {
        let request = self.change_request(caller, id).await?;
        caller.require_on(Permission::Write, request.subject.as_str())?;
        Self::require_status(&request, &[ChangeRequestStatus::Approved])?;
        let applies = AppliedRequest {
            id: request.id.clone(),
            audit: AuditDraft {
                actor: actor.actor.clone(),
                action: "change_request.apply",
                environments: request.environments.clone(),
                message: Some(format!("change request {}", request.id)),
                on_behalf_of: actor.on_behalf_of.clone(),
                details: Default::default(),
            },
        };
        let metadata = Metadata {
            actor: actor.actor.clone(),
            message: Some(match &request.message {
                Some(message) => format!("{message} (change request {})", request.id),
                None => format!("change request {}", request.id),
            }),
            on_behalf_of: actor.on_behalf_of.clone(),
            allowed_environments: actor.allowed_environments.clone(),
        };
        Ok(Applying {
            request,
            metadata,
            applies,
        })
    }

    /// Applies an approved config request: the version (or delete) and the request's `applied`
    /// state commit together.
    pub(crate) async fn apply_config(&self, id: &ConfigId, applying: &Applying) -> Result<u64> {
        let request = &applying.request;
        let (metadata, applies, expected) = applying.write_parts();
        let written = match &request.operation {
            ChangeOperation::Put { document } => {
                let Proposal::Config(document) = &**document else {
                    return Err(mismatched(request));
                };
                self.write_version(id, document.clone(), metadata, expected, None, applies)
                    .await?
                    .map(|version| version.version)
            }
            ChangeOperation::Rollback { target_version } => {
                let target = self.stored_version(id, *target_version).await?;
                self.write_version(
                    id,
                    target.document,
                    metadata,
                    expected,
                    Some(*target_version),
                    applies,
                )
                .await?
                .map(|version| version.version)
            }
            ChangeOperation::Delete => {
                self.delete_applying(id, metadata, expected, applies)
                    .await?
            }
            // Deployments start through `DeploymentService::apply_deploy`.
            ChangeOperation::Deploy(_) => return Err(mismatched(request)),
        };
        written.done()
    }
}

/// An approved request about to be applied, and what its write records.
pub struct Applying {
    pub request: ChangeRequest,
    /// The metadata of the version (or delete) the request becomes.
    pub metadata: Metadata,
    pub applies: AppliedRequest,
}

impl Applying {
    /// What the write applying the request carries: its metadata, the request it applies, and
    /// the version it expects (the request's base).
    pub(crate) fn write_parts(&self) -> (Metadata, Option<AppliedRequest>, Option<u64>) {
        (
            self.metadata.clone(),
            Some(self.applies.clone()),
            Some(self.request.base_version),
        )
    }

    /// A version conflict means the subject moved past the request's base: a new request is
    /// needed.
    pub fn rebase(&self, error: Error) -> Error {
        match error {
            Error::VersionConflict { actual, .. } => Error::conflict(format!(
                "the {} moved from version {} to {actual} since change request {} was made; \
                 create a new request against the current version (rebase needed)",
                self.request.subject.kind_name(),
                self.request.base_version,
                self.request.id
            )),
            other => other,
        }
    }

    /// The request as applied, as `version`.
    pub fn applied(self, version: u64) -> ChangeRequest {
        let mut request = self.request;
        request.status = ChangeRequestStatus::Applied;
        request.applied_version = Some(version);
        request.updated_at = now();
        request
    }
}

/// A stored request whose operation does not fit its subject (a flag definition proposed for a
/// config): data this version did not write.
fn mismatched(request: &ChangeRequest) -> Error {
    Error::internal(format!(
        "change request {} proposes a document of another kind than its {}",
        request.id,
        request.subject.kind_name()
    ))
}
