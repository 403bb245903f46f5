//! The service registry's instances.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::commit::{Change, Operation};
use super::{PostgresStore, db_error};
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
    expired: bool,
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
            expired: self.expired,
            applied: self.applied,
            output: self.output,
            metrics: self.metrics,
        }
        .decode()
    }
}

/// The row a write checks its expectation on, as the transaction sees it.
async fn row(
    tx: &mut PgConnection,
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
impl RegistryStore for PostgresStore {
    async fn put_instance(&self, write: InstanceWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn remove_instance(&self, remove: InstanceRemove) -> Result<Committed> {
        self.commit(remove).await
    }

    async fn touch_instances(&self, touches: &[Touch]) -> Result<Vec<bool>> {
        let (merged, slots) = merge_touches(touches);
        let mut services = Vec::with_capacity(merged.len());
        let mut ids = Vec::with_capacity(merged.len());
        let mut ats = Vec::with_capacity(merged.len());
        let mut applied = Vec::with_capacity(merged.len());
        let mut outputs = Vec::with_capacity(merged.len());
        let mut metrics = Vec::with_capacity(merged.len());
        for touch in &merged {
            services.push(touch.service.as_str());
            ids.push(touch.instance_id.as_str());
            ats.push(touch.at.timestamp_millis());
            applied.push(applied_json(touch.applied.as_ref())?);
            outputs.push(touch.output.as_deref());
            metrics.push(metrics_json(touch.metrics.as_ref())?);
        }
        // One statement, so one transaction and one fsync however many heartbeats.
        // Flushes of several replicas (and instance writes) lock rows in no common order: a
        // deadlock aborts one statement, which is then simply run again.
        let mut attempt = 0;
        let positions: Vec<i64> = loop {
            attempt += 1;
            let result = sqlx::query_scalar(include_str!("queries/instances_touch.sql"))
                .bind(&services)
                .bind(&ids)
                .bind(&ats)
                .bind(&applied)
                .bind(&outputs)
                .bind(&metrics)
                .fetch_all(&self.pool)
                .await;
            match result {
                Err(sqlx::Error::Database(db))
                    if attempt < 3
                        && matches!(db.code().as_deref(), Some("40P01") | Some("40001")) => {}
                other => break other.map_err(db_error)?,
            }
        };
        let mut found = vec![false; merged.len()];
        for position in positions {
            if let Some(found) = usize::try_from(position - 1)
                .ok()
                .and_then(|i| found.get_mut(i))
            {
                *found = true;
            }
        }
        // Each heartbeat answers as its instance's merged one did.
        let alive = slots.iter().map(|&slot| found[slot]).collect();
        Ok(alive)
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
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
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
            .bind(instance.expired)
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
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
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
