//! Webhooks (written through the commit recipe), fan-out cursors and deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

use super::commit::{Change, Operation};
use super::rows::{parse_json, parse_optional_time, parse_time, timestamp, to_json};
use super::{SqliteStore, db_error};
use crate::core::error::{Error, Result};
use crate::core::notifications::model::{Delivery, DeliveryStatus, Webhook};
use crate::core::ports::notifications::{webhook_exists, webhook_moved};
use crate::core::ports::{
    Committed, DeliveryQuery, DueQuery, FanOut, NotificationStore, Outcomes, Redelivery,
    WebhookDelete, WebhookWrite,
};
use crate::store::{to_i64, to_u64};

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    url: String,
    events: String,
    filter: String,
    description: String,
    enabled: bool,
    disabled_reason: Option<String>,
    failing_since: Option<String>,
    seq: i64,
    since_revision: i64,
    created_at: String,
    updated_at: String,
    secrets: String,
}

impl WebhookRow {
    fn decode(self) -> Result<Webhook> {
        Ok(Webhook {
            id: self.id,
            url: self.url,
            events: parse_json(&self.events)?,
            filter: parse_json(&self.filter)?,
            description: self.description,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            failing_since: parse_optional_time(self.failing_since.as_deref())?,
            seq: to_u64(self.seq),
            since_revision: to_u64(self.since_revision),
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
            secrets: parse_json(&self.secrets)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    webhook_id: String,
    revision: i64,
    kind: String,
    subject: String,
    status: String,
    attempts: i64,
    next_attempt_at: String,
    last_error: Option<String>,
    last_status: Option<i64>,
    latency_ms: Option<i64>,
    created_at: String,
    delivered_at: Option<String>,
}

impl DeliveryRow {
    fn decode(self) -> Result<Delivery> {
        Ok(Delivery {
            id: to_u64(self.id),
            webhook_id: self.webhook_id,
            revision: to_u64(self.revision),
            kind: self.kind,
            subject: self.subject,
            status: DeliveryStatus::parse(&self.status)?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: parse_time(&self.next_attempt_at)?,
            last_error: self.last_error,
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            latency_ms: self.latency_ms.map(to_u64),
            created_at: parse_time(&self.created_at)?,
            delivered_at: parse_optional_time(self.delivered_at.as_deref())?,
        })
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn put_webhook(&self, write: WebhookWrite) -> Result<Committed> {
        self.commit(write).await
    }

    async fn delete_webhook(&self, write: WebhookDelete) -> Result<Committed> {
        self.commit(write).await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.fetch_decoded(
            sqlx::query_as(include_str!("queries/webhooks.sql")),
            WebhookRow::decode,
        )
        .await
    }

    async fn sink_cursor(&self, sink: &str) -> Result<Option<u64>> {
        let revision: Option<i64> = sqlx::query_scalar(include_str!("queries/sink_cursor.sql"))
            .bind(sink)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(revision.map(to_u64))
    }

    async fn fan_out(&self, fan_out: FanOut<'_>) -> Result<bool> {
        let mut connection = self.writer.acquire().await.map_err(db_error)?;
        let mut tx = connection.begin().await.map_err(db_error)?;
        let moved = match fan_out.from {
            None => sqlx::query(include_str!("queries/sink_cursor_insert.sql"))
                .bind(fan_out.sink)
                .bind(to_i64(fan_out.to)),
            Some(from) => sqlx::query(include_str!("queries/sink_cursor_move.sql"))
                .bind(to_i64(fan_out.to))
                .bind(fan_out.sink)
                .bind(to_i64(from)),
        }
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(first) = fan_out.deliveries.first() {
            let rows: Vec<serde_json::Value> = fan_out
                .deliveries
                .iter()
                .map(|d| {
                    serde_json::json!({"webhook": d.webhook_id, "revision": d.revision,
                        "kind": d.kind, "subject": d.subject})
                })
                .collect();
            sqlx::query(include_str!("queries/deliveries_insert.sql"))
                .bind(to_json(&rows)?)
                .bind(timestamp(first.at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn due_deliveries(&self, due: DueQuery<'_>) -> Result<Vec<Delivery>> {
        let now = timestamp(due.now);
        let query = sqlx::query_as(include_str!("queries/deliveries_due.sql"))
            .bind(&now)
            .bind(&now)
            .bind(to_json(&due.sending)?)
            .bind(i64::from(due.limit));
        self.fetch_decoded(query, DeliveryRow::decode).await
    }

    async fn record_attempts(&self, outcomes: Outcomes) -> Result<()> {
        let Outcomes { attempts, health } = &outcomes;
        let mut connection = self.writer.acquire().await.map_err(db_error)?;
        let mut tx = connection.begin().await.map_err(db_error)?;
        if !attempts.is_empty() {
            let rows: Vec<serde_json::Value> = attempts
                .iter()
                .map(|a| {
                    serde_json::json!({"id": a.delivery, "status": a.status.as_str(),
                        "attempts": a.attempts, "next": timestamp(a.next_attempt_at),
                        "error": a.last_error, "code": a.last_status, "latency": a.latency_ms,
                        "at": timestamp(a.at)})
                })
                .collect();
            sqlx::query(include_str!("queries/deliveries_attempted.sql"))
                .bind(to_json(&rows)?)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        for webhook in health {
            sqlx::query(include_str!("queries/webhook_health.sql"))
                .bind(webhook.failing_since.map(timestamp))
                .bind(&webhook.disabled_reason)
                .bind(&webhook.disabled_reason)
                .bind(&webhook.id)
                .bind(webhook.was_failing_since.map(timestamp))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn deliveries(&self, page: DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
        let query = sqlx::query_as(include_str!("queries/deliveries.sql"))
            .bind(page.webhook)
            .bind(page.before.map_or(i64::MAX, to_i64))
            .bind(i64::from(page.limit));
        self.fetch_decoded(query, DeliveryRow::decode).await
    }

    async fn redeliver(&self, redelivery: Redelivery<'_>) -> Result<Option<Delivery>> {
        let row: Option<DeliveryRow> =
            sqlx::query_as(include_str!("queries/delivery_redeliver.sql"))
                .bind(timestamp(redelivery.at))
                .bind(redelivery.webhook)
                .bind(to_i64(redelivery.delivery))
                .fetch_optional(&self.writer)
                .await
                .map_err(db_error)?;
        row.map(DeliveryRow::decode).transpose()
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(include_str!("queries/deliveries_prune.sql"))
            .bind(timestamp(before))
            .execute(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn delivery_backlog(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(include_str!("queries/deliveries_backlog.sql"))
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(to_u64(count))
    }
}

#[async_trait]
impl Operation for WebhookWrite {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let webhook = &self.webhook;
        let events = to_json(&webhook.events)?;
        let filter = to_json(&webhook.filter)?;
        let secrets = to_json(&webhook.secrets)?;
        let statement = match self.expected_seq {
            None => include_str!("queries/webhook_insert.sql"),
            Some(_) => include_str!("queries/webhook_update.sql"),
        };
        let fields = sqlx::query(statement)
            .bind(&webhook.url)
            .bind(&events)
            .bind(&filter)
            .bind(&webhook.description)
            .bind(webhook.enabled)
            .bind(&webhook.disabled_reason)
            .bind(webhook.failing_since.map(timestamp))
            .bind(to_i64(webhook.seq))
            .bind(timestamp(webhook.updated_at))
            .bind(&secrets)
            .bind(&webhook.id);
        let written = match self.expected_seq {
            None => fields.bind(timestamp(webhook.created_at)),
            Some(expected) => fields.bind(to_i64(expected)),
        }
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if written.rows_affected() == 0 {
            return Err(match self.expected_seq {
                None => webhook_exists(&webhook.id),
                Some(_) if exists(tx, &webhook.id).await? => webhook_moved(&webhook.id),
                Some(_) => Error::not_found("webhook", webhook.id.as_str()),
            });
        }
        Ok(Change::from(self))
    }
}

#[async_trait]
impl Operation for WebhookDelete {
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>> {
        let deleted = sqlx::query(include_str!("queries/webhook_delete.sql"))
            .bind(&self.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found("webhook", self.id.as_str()));
        }
        sqlx::query(include_str!("queries/webhook_deliveries_delete.sql"))
            .bind(&self.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Change::from(self))
    }
}

async fn exists(tx: &mut SqliteConnection, id: &str) -> Result<bool> {
    let count: i64 = sqlx::query_scalar(include_str!("queries/webhook_exists.sql"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(count > 0)
}
