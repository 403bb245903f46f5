//! The service registry's instances.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::core::error::{Error, Result};
use crate::core::ids::{InstanceId, ServiceName};
use crate::core::ports::registry::check_instance_expectation;
use crate::core::ports::{
    Committed, InstanceRemove, InstanceRow, InstanceWrite, RegistryStore, Touch,
};
use crate::core::registry::model::Instance;
use crate::store::change::Numbered;

/// Millisecond precision, as the durable backends keep a heartbeat.
fn millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

fn row_of(instance: &Instance) -> InstanceRow {
    InstanceRow {
        version: instance.version,
        last_heartbeat: instance.last_heartbeat,
        registered_at: instance.registered_at,
    }
}

#[async_trait]
impl RegistryStore for MemoryStore {
    async fn put_instance(&self, write: InstanceWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let key = (
            write.instance.service_name.clone(),
            write.instance.instance_id.clone(),
        );
        let existing = state.instances.get(&key);
        let row = existing.map(row_of);
        let version = check_instance_expectation(&write.expect, row, &write.subject)? + 1;
        let mut instance = write.instance.clone();
        instance.version = version;
        instance.last_heartbeat = millis(instance.last_heartbeat);
        // As the SQL backends: the later heartbeat, and the stored applied map, stay.
        if let Some(existing) = existing {
            instance.last_heartbeat = instance.last_heartbeat.max(existing.last_heartbeat);
            instance.applied = existing.applied.clone();
            instance.metrics = existing.metrics;
        }
        state.instances.insert(key, instance);
        Ok(state.commit(write.numbered(version)))
    }

    async fn remove_instance(&self, remove: InstanceRemove) -> Result<Committed> {
        let mut state = self.state.lock();
        let key = (remove.service.clone(), remove.instance_id.clone());
        let Some(row) = state.instances.get(&key).map(row_of) else {
            return Err(Error::not_found("instance", remove.subject.clone()));
        };
        let version = check_instance_expectation(&remove.expect, Some(row), &remove.subject)? + 1;
        state.instances.remove(&key);
        Ok(state.commit(remove.numbered(version)))
    }

    async fn touch_instances(&self, touches: &[Touch]) -> Result<Vec<bool>> {
        let mut state = self.state.lock();
        Ok(touches
            .iter()
            .map(|touch| {
                let key = (touch.service.clone(), touch.instance_id.clone());
                match state.instances.get_mut(&key) {
                    Some(instance)
                        if !instance.expired && instance.expires_at() >= millis(touch.at) =>
                    {
                        instance.last_heartbeat = instance.last_heartbeat.max(millis(touch.at));
                        // A changed applied map forgets the metrics, the heartbeat's own too:
                        // they were measured running what the instance ran before.
                        let changed = touch
                            .applied
                            .as_ref()
                            .is_some_and(|applied| *applied != instance.applied);
                        if changed {
                            instance.metrics = None;
                        }
                        if let Some(applied) = &touch.applied {
                            instance.applied = applied.clone();
                        }
                        if let Some(output) = &touch.output {
                            instance.output = Some(output.clone());
                        }
                        if touch.metrics.is_some() && !changed {
                            instance.metrics = touch.metrics;
                        }
                        true
                    }
                    _ => false,
                }
            })
            .collect())
    }

    async fn instances(&self, service: Option<&ServiceName>) -> Result<Vec<Instance>> {
        let state = self.state.lock();
        Ok(state
            .instances
            .values()
            .filter(|i| service.is_none_or(|s| &i.service_name == s))
            .cloned()
            .collect())
    }

    async fn instance(&self, service: &ServiceName, id: &InstanceId) -> Result<Option<Instance>> {
        let state = self.state.lock();
        Ok(state.instances.get(&(service.clone(), id.clone())).cloned())
    }

    async fn overdue_instances(&self, now: DateTime<Utc>) -> Result<Vec<Instance>> {
        let state = self.state.lock();
        Ok(state
            .instances
            .values()
            .filter(|i| (!i.expired && i.expires_at() < now) || i.removed_at() < now)
            .cloned()
            .collect())
    }
}
