//! Heartbeats: an instance stays alive, and reports the configs it applied, without a recorded
//! change unless its status or its applied map changed.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};

use super::{RegistryService, not_registered, require_instance_environment};
use crate::core::access::{Caller, Permission};
use crate::core::configs::now;
use crate::core::error::{Error, Result};
use crate::core::ids::{InstanceId, ServiceName};
use crate::core::ports::Touch;
use crate::core::registry::model::{CheckedHeartbeat, Heartbeat, Instance, subject};

/// At most this many instances' last applied maps are remembered.
const MAX_APPLIED_MEMO: usize = 100_000;

fn applied_hash(applied: &BTreeMap<crate::core::ids::ConfigId, String>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    applied.hash(&mut hasher);
    hasher.finish()
}

/// A report on a config that does not exist is bad input naming it.
fn unknown_config(error: Error, config: &crate::core::ids::ConfigId) -> Error {
    match error {
        Error::NotFound { .. } => Error::invalid(
            format!("/applied/{config}"),
            format!("config {config} does not exist"),
        ),
        other => other,
    }
}

impl RegistryService {
    /// A heartbeat: the instance is alive now, durable once this returns. Not found (404) when
    /// the instance is not registered or has expired: it must register again. A status that
    /// differs from the recorded one, and an applied map that differs from the last one, are
    /// recorded too.
    pub async fn heartbeat(
        &self,
        caller: &Caller,
        service: &ServiceName,
        id: &InstanceId,
        heartbeat: Heartbeat,
    ) -> Result<Instance> {
        caller.require_on_service(Permission::Register, service.as_str())?;
        let heartbeat = heartbeat.check()?;
        let known = self.known(service, id).await?;
        require_instance_environment(caller, &known)?;
        let key = subject(service, id);
        let at = now();
        let fresh_until = at - self.configs.settings.stale_after / 2;
        let reported = self.applied.get(&key).map(|entry| *entry);
        // A map this replica recorded lately is not recorded in the drift report again; the
        // instance's stored map is written with every heartbeat that carries one all the same
        // (another replica may have stored a different one since, or the instance be new).
        let changed = match (&heartbeat.applied, &known.environment) {
            (Some(_), None) => {
                return Err(Error::invalid(
                    "/applied",
                    "register the instance with an environment to report applied configs",
                ));
            }
            (Some(applied), Some(environment))
                if reported.is_none_or(|(hash, when)| {
                    hash != applied_hash(applied) || when < fresh_until
                }) =>
            {
                // Checked before anything is written: a refused report changes nothing.
                for config in applied.keys() {
                    self.configs
                        .check_applied_report(caller, config, environment)
                        .await
                        .map_err(|error| unknown_config(error, config))?;
                }
                Some(applied.clone())
            }
            _ => None,
        };
        let touch = Touch {
            service: service.clone(),
            instance_id: id.clone(),
            at,
            applied: heartbeat.applied.clone(),
            output: heartbeat.output.clone(),
            metrics: heartbeat.metrics,
        };
        if !self.heartbeats.touch(touch).await? {
            return Err(not_registered(service, id));
        }
        let mut instance = known;
        instance.last_heartbeat = at;
        if let Some(applied) = changed {
            // The heartbeat is stored: a report that fails now (a config deleted since it was
            // checked) is not the heartbeat's failure; the next heartbeat reports again.
            match self.record_applied(caller, &instance, &applied, at).await {
                Ok(()) => {
                    if self.applied.len() >= MAX_APPLIED_MEMO {
                        // Instances come and go (removals on other replicas leave entries
                        // here): start over rather than grow; each instance reports once more.
                        self.applied.clear();
                    }
                    self.applied.insert(key, (applied_hash(&applied), at));
                }
                Err(error) => tracing::warn!(
                    instance = %key, %error,
                    "recording an applied-state report failed; the next heartbeat reports again"
                ),
            }
        }
        // As the store does: a changed applied map forgets the metrics, the heartbeat's own too.
        match &heartbeat.applied {
            Some(applied) if *applied != instance.applied => {
                instance.applied = applied.clone();
                instance.metrics = None;
            }
            _ if heartbeat.metrics.is_some() => instance.metrics = heartbeat.metrics,
            _ => {}
        }
        if heartbeat.output.is_some() {
            instance.output = heartbeat.output.clone();
        }
        match heartbeat {
            CheckedHeartbeat {
                status: Some(status),
                output,
                ..
            } if status != instance.status => {
                let actor = caller.actor_or("anonymous");
                self.change_status(instance, status, output, &actor).await
            }
            _ => Ok(instance),
        }
    }

    /// The applied map joins the drift report: one applied-state report per config.
    async fn record_applied(
        &self,
        caller: &Caller,
        instance: &Instance,
        applied: &BTreeMap<crate::core::ids::ConfigId, String>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let Some(environment) = &instance.environment else {
            return Ok(());
        };
        for (config, checksum) in applied {
            self.configs
                .record_applied_checksum(
                    caller,
                    config,
                    environment,
                    &instance.subject(),
                    checksum,
                    at,
                )
                .await
                .map_err(|error| unknown_config(error, config))?;
        }
        Ok(())
    }

    /// The instance as this replica knows it (the cache), or as the database has it (just
    /// registered through another replica).
    async fn known(&self, service: &ServiceName, id: &InstanceId) -> Result<Instance> {
        if let Some(instance) = self
            .cache
            .cached_instances(service)
            .and_then(|instances| instances.get(id).cloned())
        {
            return Ok(instance);
        }
        self.store
            .instance(service, id)
            .await?
            .ok_or_else(|| not_registered(service, id))
    }
}
