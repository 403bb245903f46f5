//! The service registry's instances.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::{SqliteStore, db_error};
use crate::core::error::{Error, Result};
use crate::core::ids::{InstanceId, ServiceName};
use crate::core::ports::registry::check_instance_expectation;
use crate::core::ports::{
    Committed, InstanceRemove, InstanceRow, InstanceWrite, RegistryStore, Touch,
};
use crate::core::registry::model::Instance;
use crate::store::change::Numbered;
use crate::store::instance_rows::{
    InstanceColumns, InstanceValues, applied_json, instance_row, merge_touches, metrics_json,
};
use crate::store::to_i64;

#[derive(sqlx::FromRow)]
struct StoredRow {
    version: i64,
    document: String,
    last_heartbeat_ms: i64,
    expired: i64,
    applied: String,
    output: Option<String>,
    metrics: Option<String>,
}

impl StoredRow {
    fn decode(self) -> Result<Instance> {
        InstanceColumns {
            version: self.version,
            document: self.document,
            last_heartbeat_ms: self.last_heartbeat_ms,
            expired: self.expired != 0,
            applied: self.applied,
            output: self.output,
            metrics: self.metrics,
        }
        .decode()
    }
}

/// The row a write checks its expectation on, as the transaction sees it.
async fn row(
    tx: &mut SqliteConnection,
    service: &ServiceName,
    id: &InstanceId,
) -> Result<Option<InstanceRow>> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(include_str!("queries/instance_row.sql"))
        .bind(service.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(row
        .and_then(|(version, heartbeat, registered)| instance_row(version, heartbeat, registered)))
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn put_instance(&self, write: InstanceWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn remove_instance(&self, remove: InstanceRemove) -> Result<Committed> {
        self.commit(remove).await
    }

    async fn touch_instances(&self, touches: &[Touch]) -> Result<Vec<bool>> {
        // One statement over a JSON array: each statement is a round trip to SQLite's worker
        // thread, which cost more than the update itself.
        let (merged, slots) = merge_touches(touches);
        let rows = merged
            .iter()
            .map(|touch| {
                Ok(serde_json::json!({
                    "service": touch.service.as_str(),
                    "instance": touch.instance_id.as_str(),
                    "at": touch.at.timestamp_millis(),
                    "applied": applied_json(touch.applied.as_ref())?,
                    "output": touch.output,
                    "metrics": metrics_json(touch.metrics.as_ref())?,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        let found: Vec<(String, String)> =
            sqlx::query_as(include_str!("queries/instances_touch.sql"))
                .bind(serde_json::Value::Array(rows).to_string())
                .fetch_all(&self.writer)
                .await
                .map_err(db_error)?;
        let found: std::collections::HashSet<(&str, &str)> = found
            .iter()
            .map(|(service, id)| (service.as_str(), id.as_str()))
            .collect();
        Ok(slots
            .iter()
            .map(|&slot| {
                let touch = &merged[slot];
                found.contains(&(touch.service.as_str(), touch.instance_id.as_str()))
            })
            .collect())
    }

    async fn instances(&self, service: Option<&ServiceName>) -> Result<Vec<Instance>> {
        let query = sqlx::query_as(include_str!("queries/instances.sql"))
            .bind(service.map(ServiceName::as_str));
        self.fetch_decoded(query, StoredRow::decode).await
    }

    async fn instance(&self, service: &ServiceName, id: &InstanceId) -> Result<Option<Instance>> {
        let query = sqlx::query_as(include_str!("queries/instance.sql"))
            .bind(service.as_str())
            .bind(id.as_str());
        self.fetch_one_decoded(query, StoredRow::decode).await
    }

    async fn overdue_instances(&self, now: DateTime<Utc>) -> Result<Vec<Instance>> {
        let query = sqlx::query_as(include_str!("queries/instances_overdue.sql"))
            .bind(now.timestamp_millis());
        self.fetch_decoded(query, StoredRow::decode).await
    }
}

#[async_trait]
impl Operation for InstanceWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let instance = &self.instance;
        let found = row(tx, &instance.service_name, &instance.instance_id).await?;
        let version = check_instance_expectation(&self.expect, found, &self.subject)? + 1;
        let values = InstanceValues::of(self)?;
        sqlx::query(include_str!("queries/instance_upsert.sql"))
            .bind(instance.service_name.as_str())
            .bind(instance.instance_id.as_str())
            .bind(to_i64(version))
            .bind(&values.document)
            .bind(values.registered_ms)
            .bind(values.last_heartbeat_ms)
            .bind(values.ttl_ms)
            .bind(values.remove_after_ms)
            .bind(i64::from(instance.expired))
            .bind(&values.applied)
            .bind(&instance.output)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(self.numbered(version))
    }
}

#[async_trait]
impl Operation for InstanceRemove {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let Some(found) = row(tx, &self.service, &self.instance_id).await? else {
            return Err(Error::not_found("instance", self.subject.clone()));
        };
        let version = check_instance_expectation(&self.expect, Some(found), &self.subject)? + 1;
        sqlx::query(include_str!("queries/instance_delete.sql"))
            .bind(self.service.as_str())
            .bind(self.instance_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(self.numbered(version))
    }
}
