//! `RegistryService`: the registry's operations for both transports.

mod heartbeat;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use super::discovery::Rendered;
use super::health::HealthChecker;
use super::heartbeats::Heartbeats;
use super::model::{CheckedRegistration, Instance, Maintenance, Registration, Status, subject};
use crate::core::access::{Caller, Permission};
use crate::core::configs::{ConfigService, now};
use crate::core::error::{Error, Result, retrying_when_moved};
use crate::core::events::{ChangeKind, kind};
use crate::core::ids::{Environment, InstanceId, ServiceName};
use crate::core::model::AuditDraft;
use crate::core::ports::{
    InstanceExpectation, InstanceRemove, InstanceWrite, ReadCache, Storage, Store,
};

/// The actor of changes the registry makes by itself (expiry, removal, periodic checks).
pub(super) const SYSTEM_ACTOR: &str = "summit-config";
/// The most instances one service may have.
const MAX_INSTANCES_PER_SERVICE: usize = 10_000;

#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Discovery returns every instance (and says so) when fewer than this share of a service's
    /// instances are healthy; 0 turns the protection off.
    pub protection_threshold: f64,
    /// How long an active health check waits for its answer.
    pub health_timeout: Duration,
}

pub struct RegistryService {
    pub(super) store: Arc<dyn Store>,
    pub(super) cache: Arc<dyn ReadCache>,
    /// Commits and publishes through the same path as config writes (one change log, one bus).
    pub(super) configs: Arc<ConfigService>,
    pub(super) heartbeats: Heartbeats,
    pub(super) checker: HealthChecker,
    pub(super) settings: RegistrySettings,
    /// The hash of the applied map each instance last reported here, and when: an unchanged
    /// map is written again only before its reports would turn stale.
    pub(super) applied: DashMap<String, (u64, DateTime<Utc>)>,
    /// Discovery answers as JSON by (service, environment), with the map they were rendered
    /// from.
    pub(super) rendered: DashMap<(ServiceName, Option<Environment>), Rendered>,
}

fn audit(
    actor: &str,
    kind: ChangeKind,
    instance: Option<&Instance>,
    message: Option<String>,
) -> AuditDraft {
    AuditDraft {
        actor: actor.to_owned(),
        action: kind.as_str(),
        environments: instance
            .and_then(|i| i.environment.as_ref())
            .map(|e| vec![e.to_string()])
            .unwrap_or_default(),
        message,
        on_behalf_of: None,
        details: Default::default(),
    }
}

/// The checksum of an instance's recorded state (its version and heartbeat aside).
fn checksum(instance: &Instance) -> Result<String> {
    let mut value = serde_json::to_value(instance).map_err(Error::internal)?;
    if let Some(object) = value.as_object_mut() {
        for volatile in ["version", "lastHeartbeat", "output", "applied", "metrics"] {
            object.remove(volatile);
        }
    }
    Ok(crate::core::checksum::checksum(&value))
}

/// An environment-scoped caller reaches only instances of its environments (an instance
/// registered without one belongs to none of them).
pub(super) fn require_instance_environment(caller: &Caller, instance: &Instance) -> Result<()> {
    match &instance.environment {
        Some(environment) => caller.require_environment(environment.as_str()),
        None => caller.require_readable_environment(None),
    }
}

pub(super) fn not_registered(service: &ServiceName, id: &InstanceId) -> Error {
    Error::not_found("instance", subject(service, id))
}

impl RegistryService {
    pub fn new(storage: Storage, configs: Arc<ConfigService>, settings: RegistrySettings) -> Self {
        RegistryService {
            heartbeats: Heartbeats::start(storage.store.clone()),
            store: storage.store,
            cache: storage.cache,
            configs,
            checker: HealthChecker::new(settings.health_timeout),
            settings,
            applied: DashMap::new(),
            rendered: DashMap::new(),
        }
    }

    /// Stores `instance` as its next version, recording `kind` by `actor` (and its audit
    /// record); the instance as stored.
    pub(super) async fn write(
        &self,
        mut instance: Instance,
        expect: InstanceExpectation,
        kind: ChangeKind,
        actor: &str,
        message: Option<String>,
    ) -> Result<Instance> {
        self.configs.ensure_writable()?;
        let audit = audit(actor, kind, Some(&instance), message);
        let write = InstanceWrite {
            checksum: checksum(&instance)?,
            subject: instance.subject(),
            instance: instance.clone(),
            expect,
            kind,
            audit,
            at: now(),
        };
        let store = self.store.clone();
        let committed = self
            .configs
            .commit(async move { store.put_instance(write).await })
            .await?;
        instance.version = committed.version;
        Ok(instance)
    }

    /// Removes `instance`, recording `kind` by `actor` (and its audit record).
    pub(super) async fn remove(
        &self,
        instance: &Instance,
        expect: InstanceExpectation,
        kind: ChangeKind,
        actor: &str,
        message: Option<String>,
    ) -> Result<()> {
        self.configs.ensure_writable()?;
        let audit = audit(actor, kind, Some(instance), message);
        let remove = InstanceRemove {
            service: instance.service_name.clone(),
            instance_id: instance.instance_id.clone(),
            subject: instance.subject(),
            expect,
            kind,
            audit,
            at: now(),
        };
        let store = self.store.clone();
        self.configs
            .commit(async move { store.remove_instance(remove).await })
            .await?;
        self.applied.remove(&instance.subject());
        Ok(())
    }

    /// A service has room for another instance (a runaway registrant cannot grow it without
    /// bound).
    fn check_room(&self, service: &ServiceName) -> Result<()> {
        let registered = self
            .cache
            .cached_instances(service)
            .map_or(0, |instances| instances.len());
        if registered >= MAX_INSTANCES_PER_SERVICE {
            return Err(Error::conflict(format!(
                "service {service} has {registered} instances, the most one service may \
                 have; deregister some first"
            )));
        }
        Ok(())
    }

    /// Registers an instance, or registers it again (its id given): a new registration, alive
    /// and passing as of now. An operator's maintenance mark and the applied state survive it.
    pub async fn register(&self, caller: &Caller, registration: Registration) -> Result<Instance> {
        let checked = registration.check()?;
        caller.require_on_service(Permission::Register, checked.service_name.as_str())?;
        // An environment-scoped caller registers only into its environments: an instance
        // without one is seen by every environment's discovery.
        caller.require_readable_environment(checked.environment.as_ref().map(|e| e.as_str()))?;
        let instance_id = match checked.instance_id.clone() {
            Some(id) => id,
            None => InstanceId::parse(&uuid::Uuid::new_v4().to_string())?,
        };
        let registered =
            retrying_when_moved(|| self.try_register(caller, &checked, &instance_id)).await?;
        // Registered anew (perhaps in another environment): its next applied map is recorded,
        // not taken for one this replica recorded lately.
        self.applied
            .remove(&subject(&checked.service_name, &instance_id));
        Ok(registered)
    }

    /// One try of `register`: conditional on the instance (or its absence) as read.
    async fn try_register(
        &self,
        caller: &Caller,
        checked: &CheckedRegistration,
        instance_id: &InstanceId,
    ) -> Result<Instance> {
        let existing = self
            .store
            .instance(&checked.service_name, instance_id)
            .await?;
        match &existing {
            Some(existing) => require_instance_environment(caller, existing)?,
            None => self.check_room(&checked.service_name)?,
        }
        let at = now();
        let instance = Instance {
            service_name: checked.service_name.clone(),
            instance_id: instance_id.clone(),
            service_url: checked.service_url.clone(),
            health_check_url: checked.health_check_url.clone(),
            environment: checked.environment.clone(),
            weight: checked.weight,
            metadata: checked.metadata.clone(),
            ttl_secs: checked.ttl_secs,
            deregister_after_secs: checked.deregister_after_secs,
            status: Status::Passing,
            output: None,
            maintenance: existing.as_ref().and_then(|e| e.maintenance.clone()),
            expired: false,
            applied: existing
                .as_ref()
                .map(|e| e.applied.clone())
                .unwrap_or_default(),
            metrics: existing.as_ref().and_then(|e| e.metrics),
            registered_at: at,
            last_heartbeat: at,
            version: 0,
        };
        let expect = match &existing {
            Some(existing) => InstanceExpectation::as_read(existing),
            None => InstanceExpectation {
                version: Some(0),
                ..InstanceExpectation::default()
            },
        };
        let actor = caller.actor_or("anonymous");
        self.write(instance, expect, kind::INSTANCE_REGISTERED, &actor, None)
            .await
    }

    pub async fn deregister(
        &self,
        caller: &Caller,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<()> {
        caller.require_on_service(Permission::Register, service.as_str())?;
        retrying_when_moved(|| async {
            let Some(instance) = self.store.instance(service, id).await? else {
                return Err(not_registered(service, id));
            };
            require_instance_environment(caller, &instance)?;
            // Only as read: a registration in between (perhaps into an environment the caller
            // may not touch) is judged again.
            self.remove(
                &instance,
                InstanceExpectation::as_read(&instance),
                kind::INSTANCE_DEREGISTERED,
                &caller.actor_or("anonymous"),
                None,
            )
            .await
        })
        .await
    }

    /// Records a new status (from a heartbeat or a health check), conditional on the version it
    /// read; on a race the instance is read again and the change retried.
    pub(super) async fn change_status(
        &self,
        instance: Instance,
        status: Status,
        output: Option<String>,
        actor: &str,
    ) -> Result<Instance> {
        let key = (instance.service_name.clone(), instance.instance_id.clone());
        // The first try writes over the instance as given; a retry reads it again.
        let given = parking_lot::Mutex::new(Some(instance));
        retrying_when_moved(|| async {
            let taken = given.lock().take();
            let instance = match taken {
                Some(instance) => instance,
                None => {
                    let (service, id) = (&key.0, &key.1);
                    let instance = self
                        .store
                        .instance(service, id)
                        .await?
                        .filter(|i| !i.expired)
                        .ok_or_else(|| not_registered(service, id))?;
                    if instance.status == status {
                        return Ok(instance);
                    }
                    instance
                }
            };
            let message = format!("{} → {}", instance.status.as_str(), status.as_str());
            let expect = InstanceExpectation::as_read(&instance);
            let mut changed = instance;
            changed.status = status;
            changed.output = output.clone();
            self.write(
                changed,
                expect,
                kind::INSTANCE_STATUS_CHANGED,
                actor,
                Some(message),
            )
            .await
        })
        .await
    }

    /// Takes an instance out of service (or puts it back) without deregistering it.
    pub async fn set_maintenance(
        &self,
        caller: &Caller,
        service: &ServiceName,
        id: &InstanceId,
        enabled: bool,
        reason: Option<String>,
    ) -> Result<Instance> {
        caller.require_on_service(Permission::Write, service.as_str())?;
        if reason.as_ref().is_some_and(|r| r.len() > 1024) {
            return Err(Error::invalid(
                "/reason",
                "reason must be at most 1024 bytes",
            ));
        }
        if let Some(reason) = &reason {
            crate::core::validation::refuse_nul("/reason", reason)?;
        }
        retrying_when_moved(|| async {
            let Some(instance) = self.store.instance(service, id).await? else {
                return Err(not_registered(service, id));
            };
            require_instance_environment(caller, &instance)?;
            if instance.maintenance.is_some() == enabled {
                return Ok(instance);
            }
            let actor = caller.actor_or("anonymous");
            let mut changed = instance.clone();
            changed.maintenance = enabled.then(|| Maintenance {
                reason: reason.clone(),
                by: actor.clone(),
                since: now(),
            });
            let message = if enabled {
                "maintenance on"
            } else {
                "maintenance off"
            };
            let expect = InstanceExpectation::as_read(&instance);
            self.write(
                changed,
                expect,
                kind::INSTANCE_STATUS_CHANGED,
                &actor,
                Some(message.into()),
            )
            .await
        })
        .await
    }
}
