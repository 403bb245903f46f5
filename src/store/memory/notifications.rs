//! Webhooks, fan-out cursors and deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use super::commit::Change;
use crate::core::error::{Error, Result};
use crate::core::notifications::model::{Delivery, DeliveryStatus, Webhook};
use crate::core::ports::notifications::{webhook_exists, webhook_moved};
use crate::core::ports::{
    Committed, DeliveryQuery, DueQuery, FanOut, NotificationStore, Outcomes, Redelivery,
    WebhookDelete, WebhookWrite,
};

#[async_trait]
impl NotificationStore for MemoryStore {
    async fn put_webhook(&self, write: WebhookWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let mut webhook = write.webhook.clone();
        let position = state.webhooks.iter().position(|w| w.id == webhook.id);
        match (write.expected_seq, position) {
            (None, Some(_)) => return Err(webhook_exists(&webhook.id)),
            (None, None) => {
                webhook.since_revision = state.changes.len() as u64;
                state.webhooks.push(webhook);
            }
            (Some(_), None) => return Err(Error::not_found("webhook", webhook.id.as_str())),
            (Some(expected), Some(at)) => {
                let stored = &mut state.webhooks[at];
                if stored.seq != expected {
                    return Err(webhook_moved(&webhook.id));
                }
                webhook.since_revision = stored.since_revision;
                webhook.created_at = stored.created_at;
                *stored = webhook;
            }
        }
        Ok(state.commit(Change::from(&write)))
    }

    async fn delete_webhook(&self, write: WebhookDelete) -> Result<Committed> {
        let mut state = self.state.lock();
        let before = state.webhooks.len();
        state.webhooks.retain(|w| w.id != write.id);
        if state.webhooks.len() == before {
            return Err(Error::not_found("webhook", write.id.as_str()));
        }
        state.deliveries.retain(|_, d| d.webhook_id != write.id);
        Ok(state.commit(Change::from(&write)))
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        Ok(self.state.lock().webhooks.clone())
    }

    async fn sink_cursor(&self, sink: &str) -> Result<Option<u64>> {
        Ok(self.state.lock().cursors.get(sink).copied())
    }

    async fn fan_out(&self, fan_out: FanOut<'_>) -> Result<bool> {
        let mut state = self.state.lock();
        if state.cursors.get(fan_out.sink).copied() != fan_out.from {
            return Ok(false);
        }
        state.cursors.insert(fan_out.sink.to_owned(), fan_out.to);
        for new in fan_out.deliveries {
            if state
                .deliveries
                .values()
                .any(|d| d.webhook_id == new.webhook_id && d.revision == new.revision)
            {
                continue;
            }
            state.delivery_ids += 1;
            let id = state.delivery_ids;
            state.deliveries.insert(
                id,
                Delivery {
                    id,
                    webhook_id: new.webhook_id,
                    revision: new.revision,
                    kind: new.kind,
                    subject: new.subject,
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: new.at,
                    last_error: None,
                    last_status: None,
                    latency_ms: None,
                    created_at: new.at,
                    delivered_at: None,
                },
            );
        }
        Ok(true)
    }

    async fn due_deliveries(&self, due: DueQuery<'_>) -> Result<Vec<Delivery>> {
        let state = self.state.lock();
        let enabled = |id: &str| state.webhooks.iter().any(|w| w.id == id && w.enabled);
        let pending: Vec<&Delivery> = state
            .deliveries
            .values()
            .filter(|d| d.status == DeliveryStatus::Pending)
            .collect();
        Ok(pending
            .iter()
            .filter(|d| d.next_attempt_at <= due.now && enabled(&d.webhook_id))
            .filter(|d| {
                !due.sending
                    .iter()
                    .any(|(webhook, subject)| *webhook == d.webhook_id && *subject == d.subject)
            })
            .filter(|d| {
                !pending.iter().any(|e| {
                    e.webhook_id == d.webhook_id
                        && e.subject == d.subject
                        && e.id < d.id
                        && e.next_attempt_at > due.now
                })
            })
            .take(due.limit as usize)
            .map(|d| (*d).clone())
            .collect())
    }

    async fn record_attempts(&self, outcomes: Outcomes) -> Result<()> {
        let Outcomes { attempts, health } = outcomes;
        let mut state = self.state.lock();
        for attempt in attempts {
            let current = state.deliveries.get_mut(&attempt.delivery).filter(|d| {
                d.status == DeliveryStatus::Pending && d.attempts + 1 == attempt.attempts
            });
            if let Some(delivery) = current {
                delivery.status = attempt.status;
                delivery.attempts = attempt.attempts;
                delivery.next_attempt_at = attempt.next_attempt_at;
                delivery.last_error = attempt.last_error;
                delivery.last_status = attempt.last_status;
                delivery.latency_ms = Some(attempt.latency_ms);
                if attempt.status == DeliveryStatus::Delivered {
                    delivery.delivered_at = Some(attempt.at);
                }
            }
        }
        for update in health {
            let judged =
                |w: &&mut Webhook| w.id == update.id && w.failing_since == update.was_failing_since;
            if let Some(webhook) = state.webhooks.iter_mut().find(judged) {
                webhook.seq += 1;
                webhook.failing_since = update.failing_since;
                if let Some(reason) = update.disabled_reason {
                    webhook.enabled = false;
                    webhook.disabled_reason = Some(reason);
                }
            }
        }
        Ok(())
    }

    async fn deliveries(&self, page: DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
        let state = self.state.lock();
        Ok(super::page(
            state
                .deliveries
                .values()
                .filter(|d| d.webhook_id == page.webhook),
            |d| d.id,
            page.before,
            page.limit,
        ))
    }

    async fn redeliver(&self, redelivery: Redelivery<'_>) -> Result<Option<Delivery>> {
        let mut state = self.state.lock();
        let Some(found) = state
            .deliveries
            .get_mut(&redelivery.delivery)
            .filter(|d| d.webhook_id == redelivery.webhook)
        else {
            return Ok(None);
        };
        found.status = DeliveryStatus::Pending;
        found.attempts = 0;
        found.next_attempt_at = redelivery.at;
        found.last_error = None;
        found.delivered_at = None;
        Ok(Some(found.clone()))
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut state = self.state.lock();
        let count = state.deliveries.len();
        let webhooks: Vec<String> = state.webhooks.iter().map(|w| w.id.clone()).collect();
        state.deliveries.retain(|_, d| {
            let ended = match d.status {
                DeliveryStatus::Pending => None,
                DeliveryStatus::Delivered => d.delivered_at,
                DeliveryStatus::Failed => Some(d.next_attempt_at),
            };
            webhooks.contains(&d.webhook_id) && ended.is_none_or(|at| at >= before)
        });
        Ok((count - state.deliveries.len()) as u64)
    }

    async fn delivery_backlog(&self) -> Result<u64> {
        let state = self.state.lock();
        let pending = state.deliveries.values();
        Ok(pending
            .filter(|d| d.status == DeliveryStatus::Pending)
            .count() as u64)
    }
}
