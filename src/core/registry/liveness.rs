//! Liveness: active health checks (on demand and periodic) and the expiry of instances without
//! heartbeats.

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::model::{CheckResult, Instance, Status};
use super::service::{RegistryService, SYSTEM_ACTOR};
use crate::core::access::{Caller, Permission};
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::ids::ServiceName;
use crate::core::ports::InstanceExpectation;

/// Health checks run at most this many at once.
const CHECK_CONCURRENCY: usize = 32;

/// An instance and what its check found (`None`: it has no health-check URL).
type Checked = (Instance, Option<(Status, Option<String>)>);

impl RegistryService {
    /// Calls the health-check URL of every instance of the service now and records what changed.
    pub async fn check_service(
        &self,
        caller: &Caller,
        service: &ServiceName,
    ) -> Result<Vec<CheckResult>> {
        caller.require_on_service(Permission::Write, service.as_str())?;
        let mut instances = self.store.instances(Some(service)).await?;
        // An environment-scoped caller checks (and changes the status of) only the instances
        // of its environments, as it reads only those: none of them is a service unknown to
        // it, as `GET …/services/{service}` answers.
        instances.retain(|instance| super::discovery::visible(caller, instance));
        if instances.is_empty() {
            return Err(Error::not_found("service", service.as_str()));
        }
        let actor = caller.actor_or("anonymous");
        self.check(instances, &actor).await
    }

    /// Checks every live instance of every service (the periodic checks; lease holder only).
    pub async fn check_all(&self) -> Result<usize> {
        let instances: Vec<Instance> = self
            .store
            .instances(None)
            .await?
            .into_iter()
            .filter(|i| !i.expired && i.health_check_url.is_some())
            .collect();
        let checked = instances.len();
        self.check(instances, SYSTEM_ACTOR).await?;
        Ok(checked)
    }

    async fn check(&self, instances: Vec<Instance>, actor: &str) -> Result<Vec<CheckResult>> {
        let checked: Vec<Checked> = futures::stream::iter(instances)
            .map(|instance| async move {
                let result = self.checker.check(&instance).await;
                (instance, result)
            })
            .buffer_unordered(CHECK_CONCURRENCY)
            .collect()
            .await;
        let mut results = Vec::with_capacity(checked.len());
        for (instance, result) in checked {
            let id = instance.instance_id.to_string();
            // An expired instance stays expired (critical) whatever its endpoint answers: it
            // must register again; the answer is not a status it has.
            let result = result.filter(|_| !instance.expired);
            let Some((status, output)) = result else {
                results.push(CheckResult {
                    instance_id: id,
                    status: instance.status,
                    output: None,
                    checked: false,
                });
                continue;
            };
            if status != instance.status {
                let subject = instance.subject();
                match self
                    .change_status(instance, status, output.clone(), actor)
                    .await
                {
                    Ok(_) | Err(Error::NotFound { .. }) => {}
                    // One instance's failure does not end the pass.
                    Err(error) => {
                        tracing::warn!(%error, instance = %subject, "recording a health check failed");
                    }
                }
            }
            results.push(CheckResult {
                instance_id: id,
                status,
                output,
                checked: true,
            });
        }
        results.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(results)
    }

    /// Expires the instances past their TTL and removes those past their deregistration time
    /// (lease holder only). Each change is conditional on the heartbeat it read, so a heartbeat
    /// arriving meanwhile wins. Returns how many changed.
    pub async fn expire_due(&self, at: DateTime<Utc>) -> Result<usize> {
        let mut changed = 0;
        for instance in self.store.overdue_instances(at).await? {
            let expect = InstanceExpectation {
                last_heartbeat: Some(instance.last_heartbeat),
                ..InstanceExpectation::as_read(&instance)
            };
            let silent = (at - instance.last_heartbeat).num_seconds();
            let result = if instance.removed_at() < at {
                let message = format!("removed: no heartbeat for {silent} s");
                self.remove(
                    &instance,
                    expect,
                    kind::INSTANCE_DEREGISTERED,
                    SYSTEM_ACTOR,
                    Some(message),
                )
                .await
            } else if !instance.expired {
                let message = format!("expired: no heartbeat for {silent} s");
                let mut expired = instance;
                expired.expired = true;
                expired.status = Status::Critical;
                self.write(
                    expired,
                    expect,
                    kind::INSTANCE_EXPIRED,
                    SYSTEM_ACTOR,
                    Some(message),
                )
                .await
                .map(drop)
            } else {
                continue;
            };
            match result {
                Ok(()) => changed += 1,
                Err(Error::ConcurrentModification { .. } | Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(changed)
    }
}
