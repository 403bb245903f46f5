//! Webhooks and deliveries pass through the read cache: the dispatcher reads them from the
//! database on the lease holder, so nothing of them is kept here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::CachedStore;
use crate::core::error::Result;
use crate::core::notifications::model::{Attempt, Delivery, NewDelivery, Webhook, WebhookHealth};
use crate::core::ports::{Committed, NotificationStore, WebhookDelete, WebhookWrite};

#[async_trait]
impl NotificationStore for CachedStore {
    async fn put_webhook(&self, write: WebhookWrite) -> Result<Committed> {
        self.observed(self.inner.put_webhook(write)).await
    }

    async fn delete_webhook(&self, write: WebhookDelete) -> Result<Committed> {
        self.observed(self.inner.delete_webhook(write)).await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.observed(self.inner.webhooks()).await
    }

    async fn sink_cursor(&self, sink: &str) -> Result<Option<u64>> {
        self.observed(self.inner.sink_cursor(sink)).await
    }

    async fn fan_out(
        &self,
        sink: &str,
        from: Option<u64>,
        to: u64,
        deliveries: Vec<NewDelivery>,
    ) -> Result<bool> {
        self.observed(self.inner.fan_out(sink, from, to, deliveries))
            .await
    }

    async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        sending: &[(String, String)],
    ) -> Result<Vec<Delivery>> {
        self.observed(self.inner.due_deliveries(now, limit, sending))
            .await
    }

    async fn record_attempts(
        &self,
        attempts: Vec<Attempt>,
        health: Vec<WebhookHealth>,
    ) -> Result<()> {
        self.observed(self.inner.record_attempts(attempts, health))
            .await
    }

    async fn deliveries(
        &self,
        webhook: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        self.observed(self.inner.deliveries(webhook, before, limit))
            .await
    }

    async fn redeliver(
        &self,
        webhook: &str,
        delivery: u64,
        at: DateTime<Utc>,
    ) -> Result<Option<Delivery>> {
        self.observed(self.inner.redeliver(webhook, delivery, at))
            .await
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        self.observed(self.inner.prune_deliveries(before)).await
    }

    async fn delivery_backlog(&self) -> Result<u64> {
        self.observed(self.inner.delivery_backlog()).await
    }
}
