//! Reading the registry: listings, discovery (answered from the read cache, rendered once per
//! state of a service's instances) and the weighted pick of one instance.

use std::sync::Arc;

use rand::Rng;

use super::model::{Discovery, Instance, ServiceSummary};
use super::service::RegistryService;
use crate::core::access::{Caller, Permission};
use crate::core::error::{Error, Result};
use crate::core::ids::{Environment, ServiceName};
use crate::core::ports::ServiceInstances;

/// At most this many rendered discovery answers are kept (then they are all dropped).
const MAX_RENDERED: usize = 10_000;

/// A rendered discovery answer and the map of instances it was rendered from.
pub(super) type Rendered = (Option<Arc<ServiceInstances>>, bytes::Bytes);

/// Whether `caller` sees `instance`: every one, unless it is environment-scoped.
pub(super) fn visible(caller: &Caller, instance: &Instance) -> bool {
    super::service::require_instance_environment(caller, instance).is_ok()
}

/// Whether an answer rendered from `then` still describes `now`: the same map, or none both
/// times. (The rendered entry holds its map, so a new map never reuses its address.)
fn same_state(then: &Option<Arc<ServiceInstances>>, now: &Option<Arc<ServiceInstances>>) -> bool {
    match (then, now) {
        (Some(then), Some(now)) => Arc::ptr_eq(then, now),
        (None, None) => true,
        _ => false,
    }
}

impl RegistryService {
    /// Every service with its instances counted by state, from memory.
    /// (Of the instances in the caller's environments, when it is environment-scoped.)
    pub fn services(&self, caller: &Caller) -> Result<Vec<ServiceSummary>> {
        caller.require(Permission::Read)?;
        Ok(self
            .cache
            .cached_services()
            .iter()
            .map(|(name, instances)| {
                let visible = instances.values().filter(|i| visible(caller, i));
                ServiceSummary::of(name, visible)
            })
            .filter(|summary| summary.instances > 0)
            .collect())
    }

    /// A service's instances as the database has them now (last heartbeats included).
    pub async fn service(&self, caller: &Caller, service: &ServiceName) -> Result<Vec<Instance>> {
        caller.require(Permission::Read)?;
        let instances: Vec<Instance> = self
            .store
            .instances(Some(service))
            .await?
            .into_iter()
            .filter(|i| visible(caller, i))
            .collect();
        if instances.is_empty() {
            return Err(Error::not_found("service", service.as_str()));
        }
        Ok(instances)
    }

    /// The healthy instances of a service (of one environment when named), from memory; every
    /// instance when fewer than the protection threshold's share are healthy.
    pub fn discover(
        &self,
        caller: &Caller,
        service: &ServiceName,
        environment: Option<&Environment>,
    ) -> Result<Discovery> {
        self.authorize_read(caller, environment)?;
        let instances = self.cache.cached_instances(service);
        Ok(self.discovery(service, environment, instances.as_deref()))
    }

    /// `discover` as JSON, rendered once per state of the service's instances: the read cache
    /// swaps a service's map on every change, so an answer rendered from the map this replica
    /// still holds is current, and heartbeats (which change no cached state) keep it.
    pub fn discover_json(
        &self,
        caller: &Caller,
        service: &ServiceName,
        environment: Option<&Environment>,
    ) -> Result<bytes::Bytes> {
        self.authorize_read(caller, environment)?;
        let instances = self.cache.cached_instances(service);
        let key = (service.clone(), environment.cloned());
        if let Some(rendered) = self.rendered.get(&key)
            && same_state(&rendered.0, &instances)
        {
            return Ok(rendered.1.clone());
        }
        let discovery = self.discovery(service, environment, instances.as_deref());
        let json = bytes::Bytes::from(serde_json::to_vec(&discovery).map_err(Error::internal)?);
        if self.rendered.len() >= MAX_RENDERED && !self.rendered.contains_key(&key) {
            self.rendered.clear();
        }
        self.rendered.insert(key, (instances, json.clone()));
        Ok(json)
    }

    /// Reading, and an environment-scoped caller names one of its environments.
    fn authorize_read(&self, caller: &Caller, environment: Option<&Environment>) -> Result<()> {
        caller.require(Permission::Read)?;
        caller.require_readable_environment(environment.map(Environment::as_str))
    }

    fn discovery(
        &self,
        service: &ServiceName,
        environment: Option<&Environment>,
        instances: Option<&ServiceInstances>,
    ) -> Discovery {
        let all: Vec<&Instance> = instances
            .map(|instances| {
                instances
                    .values()
                    .filter(|i| environment.is_none_or(|e| i.environment.as_ref() == Some(e)))
                    .collect()
            })
            .unwrap_or_default();
        let total = all.len() as u32;
        let healthy = all.iter().filter(|i| i.healthy()).count() as u32;
        let protection_active =
            total > 0 && f64::from(healthy) < self.settings.protection_threshold * f64::from(total);
        Discovery {
            service_name: service.to_string(),
            environment: environment.map(|e| e.to_string()),
            protection_active,
            healthy,
            total,
            instances: all
                .into_iter()
                .filter(|i| protection_active || i.healthy())
                .cloned()
                .collect(),
        }
    }

    /// One healthy instance, picked at random in proportion to the weights; `Unavailable` when
    /// none is healthy.
    pub fn pick(
        &self,
        caller: &Caller,
        service: &ServiceName,
        environment: Option<&Environment>,
    ) -> Result<Instance> {
        self.authorize_read(caller, environment)?;
        let instances = self.cache.cached_instances(service);
        let healthy: Vec<&Instance> = instances
            .iter()
            .flat_map(|instances| instances.values())
            .filter(|i| i.healthy())
            .filter(|i| environment.is_none_or(|e| i.environment.as_ref() == Some(e)))
            .collect();
        let total: u64 = healthy.iter().map(|i| u64::from(i.weight)).sum();
        if total == 0 {
            return Err(Error::Unavailable {
                reason: format!("service {service} has no healthy instance"),
            });
        }
        let mut point = rand::rng().random_range(0..total);
        for instance in healthy {
            let weight = u64::from(instance.weight);
            if point < weight {
                return Ok(instance.clone());
            }
            point -= weight;
        }
        unreachable!("the point lies below the total weight")
    }
}
