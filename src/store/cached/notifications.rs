//! Webhooks and deliveries pass through the read cache: the dispatcher reads them from the
//! database on the lease holder, so nothing of them is kept here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::CachedStore;
use crate::core::error::Result;
use crate::core::notifications::model::{Delivery, Webhook};
use crate::core::ports::{
    Committed, DeliveryQuery, DueQuery, FanOut, NotificationStore, Outcomes, Redelivery,
    WebhookDelete, WebhookWrite,
};

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

    async fn fan_out(&self, fan_out: FanOut<'_>) -> Result<bool> {
        self.observed(self.inner.fan_out(fan_out)).await
    }

    async fn due_deliveries(&self, due: DueQuery<'_>) -> Result<Vec<Delivery>> {
        self.observed(self.inner.due_deliveries(due)).await
    }

    async fn record_attempts(&self, outcomes: Outcomes) -> Result<()> {
        self.observed(self.inner.record_attempts(outcomes)).await
    }

    async fn deliveries(&self, page: DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
        self.observed(self.inner.deliveries(page)).await
    }

    async fn redeliver(&self, redelivery: Redelivery<'_>) -> Result<Option<Delivery>> {
        self.observed(self.inner.redeliver(redelivery)).await
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        self.observed(self.inner.prune_deliveries(before)).await
    }

    async fn delivery_backlog(&self) -> Result<u64> {
        self.observed(self.inner.delivery_backlog()).await
    }
}
