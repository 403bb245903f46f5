//! Webhooks, the fan-out cursors of the change log and the deliveries it makes.
//!
//! The change log is the outbox: every change is recorded in its write's transaction, so a
//! rolled-back write notifies nobody and a committed one is never lost. Each sink (`webhooks`,
//! `kafka`) keeps a cursor over the log; fanning out records the deliveries of a stretch of the
//! log and moves the cursor in one transaction, conditional on where the cursor was.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Committed;
use crate::core::error::{Error, Result};
use crate::core::events::ChangeKind;
use crate::core::model::AuditDraft;
use crate::core::notifications::model::{Attempt, Delivery, NewDelivery, Webhook, WebhookHealth};

/// Create a webhook (`expected_seq: None`; `Conflict` when its id exists) or replace it
/// (`ConcurrentModification` unless its `seq` is `expected_seq`, `NotFound` when absent):
/// `kind` (`webhook.created`/`webhook.updated`, subject the id) and its audit record commit
/// with it. On create the store sets `since_revision` to the revision before this change.
#[derive(Debug, Clone)]
pub struct WebhookWrite {
    pub webhook: Webhook,
    pub expected_seq: Option<u64>,
    pub kind: ChangeKind,
    pub audit: AuditDraft,
}

/// Delete a webhook and its deliveries (`NotFound` when absent); records `webhook.deleted`.
#[derive(Debug, Clone)]
pub struct WebhookDelete {
    pub id: String,
    pub at: DateTime<Utc>,
    pub audit: AuditDraft,
}

/// A stretch of the change log fanned out to one sink: its deliveries, and the move of the
/// sink's cursor from `from` (`None`: the sink has no cursor yet) to `to`.
#[derive(Debug)]
pub struct FanOut<'a> {
    pub sink: &'a str,
    pub from: Option<u64>,
    pub to: u64,
    pub deliveries: Vec<NewDelivery>,
}

/// Which pending deliveries are due: at `now`, at most `limit`, none of the (webhook id,
/// subject) groups in `sending`.
#[derive(Debug, Clone, Copy)]
pub struct DueQuery<'a> {
    pub now: DateTime<Utc>,
    pub limit: u32,
    pub sending: &'a [(String, String)],
}

/// What one round of sending came to: its attempts, and the webhooks' health after them.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    pub attempts: Vec<Attempt>,
    pub health: Vec<WebhookHealth>,
}

/// A page of a webhook's deliveries: at most `limit`, ids below `before` when given.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryQuery<'a> {
    pub webhook: &'a str,
    pub before: Option<u64>,
    pub limit: u32,
}

/// A delivery of `webhook` to send again, due at `at`.
#[derive(Debug, Clone, Copy)]
pub struct Redelivery<'a> {
    pub webhook: &'a str,
    pub delivery: u64,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    async fn put_webhook(&self, write: WebhookWrite) -> Result<Committed>;
    async fn delete_webhook(&self, write: WebhookDelete) -> Result<Committed>;
    /// Every webhook, oldest first.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;

    /// The revision up to which `sink` has fanned out; `None` before its first fan-out.
    async fn sink_cursor(&self, sink: &str) -> Result<Option<u64>>;
    /// Records `deliveries` (one per webhook and revision; a repeat is ignored) and moves the
    /// cursor of `sink` from `from` to `to`, in one transaction. `false`, with nothing
    /// written, when the cursor is no longer at `from` (another replica moved it).
    async fn fan_out(&self, fan_out: FanOut<'_>) -> Result<bool>;
    /// Pending deliveries of enabled webhooks that are due at `now`, oldest first, leaving out
    /// any behind an earlier pending delivery of the same webhook and subject that is not due,
    /// and those of the (webhook id, subject) groups in `sending`: they are being sent already,
    /// and a long backlog of one would otherwise fill `limit` while every other group waits.
    async fn due_deliveries(&self, due: DueQuery<'_>) -> Result<Vec<Delivery>>;
    /// Records attempts and the webhooks' health after them, in one transaction. An attempt is
    /// recorded only if its delivery is still pending with one attempt fewer (a late outcome
    /// is dropped); a health change moves the webhook's `seq`.
    async fn record_attempts(&self, outcomes: Outcomes) -> Result<()>;
    /// A webhook's deliveries, newest first, ids below `before` when given.
    async fn deliveries(&self, page: DeliveryQuery<'_>) -> Result<Vec<Delivery>>;
    /// Makes a delivery of `webhook` pending again, due at `at` (attempts start over);
    /// `None` when there is no such delivery.
    async fn redeliver(&self, redelivery: Redelivery<'_>) -> Result<Option<Delivery>>;
    /// Deletes deliveries that ended before `before` (delivered then, or failed at their last
    /// attempt then), and deliveries of webhooks that no longer exist; how many. A pending
    /// delivery is never deleted, however old.
    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64>;
    /// How many deliveries are pending (due or waiting for a retry): the queue's depth.
    async fn delivery_backlog(&self) -> Result<u64>;
}

/// The version every webhook change event carries (webhooks are not versioned documents).
pub const WEBHOOK_CHANGE_VERSION: u64 = 0;

pub fn webhook_exists(id: &str) -> Error {
    Error::conflict(format!("a webhook with id '{id}' exists"))
}

pub fn webhook_moved(id: &str) -> Error {
    Error::concurrent(format!(
        "webhook '{id}' changed since it was read; read it again"
    ))
}
