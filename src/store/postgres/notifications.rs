//! Webhooks (written through the commit recipe), fan-out cursors and deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::commit::{Change, Operation};
use super::rows::{column, parse_json, to_json};
use super::{PostgresStore, db_error};
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
    failing_since: Option<DateTime<Utc>>,
    seq: i64,
    since_revision: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
            failing_since: self.failing_since,
            seq: to_u64(self.seq),
            since_revision: to_u64(self.since_revision),
            created_at: self.created_at,
            updated_at: self.updated_at,
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
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    last_status: Option<i32>,
    latency_ms: Option<i64>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
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
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            latency_ms: self.latency_ms.map(to_u64),
            created_at: self.created_at,
            delivered_at: self.delivered_at,
        })
    }
}

#[async_trait]
impl NotificationStore for PostgresStore {
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
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(revision.map(to_u64))
    }

    async fn fan_out(&self, fan_out: FanOut<'_>) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
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
            let at = first.at;
            sqlx::query(include_str!("queries/deliveries_insert.sql"))
                .bind(column(&fan_out.deliveries, |d| d.webhook_id.clone()))
                .bind(column(&fan_out.deliveries, |d| to_i64(d.revision)))
                .bind(column(&fan_out.deliveries, |d| d.kind.clone()))
                .bind(column(&fan_out.deliveries, |d| d.subject.clone()))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn due_deliveries(&self, due: DueQuery<'_>) -> Result<Vec<Delivery>> {
        let query = sqlx::query_as(include_str!("queries/deliveries_due.sql"))
            .bind(due.now)
            .bind(i64::from(due.limit))
            .bind(column(due.sending, |(webhook, _)| webhook.clone()))
            .bind(column(due.sending, |(_, subject)| subject.clone()));
        self.fetch_decoded(query, DeliveryRow::decode).await
    }

    async fn record_attempts(&self, outcomes: Outcomes) -> Result<()> {
        let Outcomes { attempts, health } = &outcomes;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        if !attempts.is_empty() {
            sqlx::query(include_str!("queries/deliveries_attempted.sql"))
                .bind(column(attempts, |a| to_i64(a.delivery)))
                .bind(column(attempts, |a| a.status.as_str()))
                .bind(column(attempts, |a| {
                    i32::try_from(a.attempts).unwrap_or(i32::MAX)
                }))
                .bind(column(attempts, |a| a.next_attempt_at))
                .bind(column(attempts, |a| a.last_error.clone()))
                .bind(column(attempts, |a| a.last_status.map(i32::from)))
                .bind(column(attempts, |a| to_i64(a.latency_ms)))
                .bind(column(attempts, |a| a.at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        if !health.is_empty() {
            sqlx::query(include_str!("queries/webhook_health.sql"))
                .bind(column(health, |h| h.id.clone()))
                .bind(column(health, |h| h.failing_since))
                .bind(column(health, |h| h.disabled_reason.clone()))
                .bind(column(health, |h| h.was_failing_since))
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
                .bind(redelivery.at)
                .bind(redelivery.webhook)
                .bind(to_i64(redelivery.delivery))
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        row.map(DeliveryRow::decode).transpose()
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(include_str!("queries/deliveries_prune.sql"))
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn delivery_backlog(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(include_str!("queries/deliveries_backlog.sql"))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(to_u64(count))
    }
}

#[async_trait]
impl Operation for WebhookWrite {
    /// A new webhook hears the changes after the latest one.
    fn reads_change_log(&self) -> bool {
        true
    }

    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
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
            .bind(webhook.failing_since)
            .bind(to_i64(webhook.seq))
            .bind(webhook.updated_at)
            .bind(&secrets)
            .bind(&webhook.id);
        let written = match self.expected_seq {
            None => fields.bind(webhook.created_at),
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
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>> {
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

async fn exists(tx: &mut PgConnection, id: &str) -> Result<bool> {
    let count: i64 = sqlx::query_scalar(include_str!("queries/webhook_exists.sql"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(count > 0)
}
