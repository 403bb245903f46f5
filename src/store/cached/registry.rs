//! The registry in the read cache: every registered instance by service, so discovery makes no
//! database round trip. Written through on this replica's writes; changes of other replicas
//! arrive as `instance.*` events and are reloaded from the database. Heartbeats change only the
//! cached applied map, when it changed (for `affectedInstances` of change events; the last
//! heartbeat shown by `GET …/services/{service}` is read from the database).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::CachedStore;
use crate::core::error::Result;
use crate::core::events::ChangeEvent;
use crate::core::ids::{ConfigId, InstanceId, ServiceName};
use crate::core::ports::{
    Committed, InstanceRemove, InstanceWrite, RegistryStore, ServiceInstances, Touch,
};
use crate::core::registry::model::Instance;

impl CachedStore {
    /// Keeps `instance` unless the cache holds a later state of it: a later registration, or a
    /// later version of the same one (versions start again after a removal). One step under
    /// the service's entry, so readers never find the instance missing in between.
    pub(super) fn remember_instance(&self, instance: Instance) {
        let mut entry = self
            .registry
            .entry(instance.service_name.clone())
            .or_default();
        let state = |i: &Instance| (i.registered_at, i.version);
        if entry
            .get(&instance.instance_id)
            .is_some_and(|cached| state(cached) > state(&instance))
        {
            return;
        }
        let mut next = ServiceInstances::clone(&entry);
        next.insert(instance.instance_id.clone(), instance);
        *entry = Arc::new(next);
    }

    /// A heartbeat's applied map, when it differs from the cached one (a change event names the
    /// instances applying the config it touches). Heartbeats that repeat it change nothing.
    fn remember_applied(&self, touch: &Touch, applied: &BTreeMap<ConfigId, String>) {
        let Some(mut entry) = self.registry.get_mut(&touch.service) else {
            return;
        };
        if entry
            .get(&touch.instance_id)
            .is_none_or(|cached| &cached.applied == applied)
        {
            return;
        }
        let mut next = ServiceInstances::clone(&entry);
        if let Some(instance) = next.get_mut(&touch.instance_id) {
            instance.applied = applied.clone();
        }
        *entry = Arc::new(next);
    }

    pub(super) fn forget_instance(&self, service: &ServiceName, id: &InstanceId) {
        if let Some(mut entry) = self.registry.get_mut(service)
            && entry.contains_key(id)
        {
            let mut next = ServiceInstances::clone(&entry);
            next.remove(id);
            *entry = Arc::new(next);
        }
    }

    /// The instance as the database has it now, in the cache.
    pub(super) async fn reload_instance(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<()> {
        match self.observed(self.inner.instance(service, id)).await? {
            Some(instance) => self.remember_instance(instance),
            None => self.forget_instance(service, id),
        }
        Ok(())
    }

    pub(super) async fn apply_instance_change(&self, event: &ChangeEvent) -> Result<()> {
        let Some((service, id)) = event.config_id.split_once('/') else {
            return Ok(());
        };
        self.reload_instance(&ServiceName::parse(service)?, &InstanceId::parse(id)?)
            .await
    }

    pub(super) fn registry_snapshot(&self) -> Vec<(ServiceName, Arc<ServiceInstances>)> {
        let mut services: Vec<_> = self
            .registry
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        services.sort_by(|a, b| a.0.cmp(&b.0));
        services
    }
}

#[async_trait]
impl RegistryStore for CachedStore {
    async fn put_instance(&self, write: InstanceWrite) -> Result<Committed> {
        let (service, id) = (
            write.instance.service_name.clone(),
            write.instance.instance_id.clone(),
        );
        let mut instance = write.instance.clone();
        let committed = self.observed(self.inner.put_instance(write)).await;
        match committed {
            Ok(committed) => {
                instance.version = committed.version;
                self.remember_instance(instance);
                Ok(committed)
            }
            Err(error) => {
                // A conflict means the cache may be behind: refresh what it knows.
                if matches!(
                    error,
                    crate::core::error::Error::ConcurrentModification { .. }
                ) {
                    let _ = self.reload_instance(&service, &id).await;
                }
                Err(error)
            }
        }
    }

    async fn remove_instance(&self, remove: InstanceRemove) -> Result<Committed> {
        let (service, id) = (remove.service.clone(), remove.instance_id.clone());
        let committed = self.observed(self.inner.remove_instance(remove)).await;
        match &committed {
            Ok(_) => self.forget_instance(&service, &id),
            Err(_) => {
                let _ = self.reload_instance(&service, &id).await;
            }
        }
        committed
    }

    async fn touch_instances(&self, touches: &[Touch]) -> Result<Vec<bool>> {
        let touched = self.observed(self.inner.touch_instances(touches)).await?;
        for (touch, _) in touches.iter().zip(&touched).filter(|(_, ok)| **ok) {
            if let Some(applied) = &touch.applied {
                self.remember_applied(touch, applied);
            }
        }
        Ok(touched)
    }

    async fn instances(&self, service: Option<&ServiceName>) -> Result<Vec<Instance>> {
        self.observed(self.inner.instances(service)).await
    }

    async fn instance(&self, service: &ServiceName, id: &InstanceId) -> Result<Option<Instance>> {
        self.observed(self.inner.instance(service, id)).await
    }

    async fn overdue_instances(&self, now: DateTime<Utc>) -> Result<Vec<Instance>> {
        self.observed(self.inner.overdue_instances(now)).await
    }
}
