//! The sender's and the recorder's side: due deliveries started group by group, each attempt's
//! outcome, and the webhooks' health.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{DUE_BATCH, Dispatcher, Group, GroupDone, MAX_BODIES, ROUND_GAP, TICK};
use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;
use crate::core::notifications::delivery::{Outcome, Target, send};
use crate::core::notifications::model::{Attempt, Delivery, DeliveryStatus, WebhookHealth};
use crate::core::ports::{DueQuery, Outcomes};
use crate::core::service::now;

impl Dispatcher {
    /// Reads what is due (at most once per `ROUND_GAP` while deliveries flow), queues each
    /// group not already taken, and starts queued groups as permits free up.
    pub(super) async fn send_due(
        self: Arc<Self>,
        done: mpsc::UnboundedSender<GroupDone>,
        shutdown: CancellationToken,
    ) {
        let mut queue: VecDeque<Group> = VecDeque::new();
        let mut read_at: Option<Instant> = None;
        loop {
            let settled = std::mem::take(&mut *self.settled.lock());
            if !settled.is_empty() {
                let mut in_flight = self.in_flight.lock();
                for key in &settled {
                    in_flight.remove(key);
                }
            }
            if !self.leading.load(Ordering::Acquire) {
                let mut in_flight = self.in_flight.lock();
                for (key, _) in queue.drain(..) {
                    in_flight.remove(&key);
                }
            } else if read_at.is_none_or(|at| at.elapsed() >= ROUND_GAP) {
                // The groups being sent are left out: a long backlog of one must not fill the
                // batch while every other group waits.
                let sending: Vec<(String, String)> =
                    self.in_flight.lock().iter().cloned().collect();
                let due = DueQuery {
                    now: now(),
                    limit: DUE_BATCH,
                    sending: &sending,
                };
                match self.store.due_deliveries(due).await {
                    Ok(due) => {
                        self.take_groups(due, &mut queue);
                        read_at = Some(Instant::now());
                    }
                    Err(error) => tracing::debug!(%error, "cannot read due deliveries yet"),
                }
            }
            self.start_queued(&mut queue, &done);
            let wait = if queue.is_empty() { TICK } else { ROUND_GAP };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.send_wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Groups `due` by webhook and subject (in revision order) and queues each group nobody
    /// has taken, taking it.
    fn take_groups(&self, due: Vec<Delivery>, queue: &mut VecDeque<Group>) {
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for delivery in due {
            let key = (delivery.webhook_id.clone(), delivery.subject.clone());
            match index.get(&key) {
                Some(&at) => groups[at].1.push(delivery),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key, vec![delivery]));
                }
            }
        }
        let mut in_flight = self.in_flight.lock();
        for group in groups {
            if in_flight.insert(group.0.clone()) {
                queue.push_back(group);
            }
        }
    }

    /// Starts queued groups while permits last: a task per group sends its deliveries in
    /// order, stopping at the first failure, and hands the outcomes to the recorder.
    fn start_queued(
        self: &Arc<Self>,
        queue: &mut VecDeque<Group>,
        done: &mpsc::UnboundedSender<GroupDone>,
    ) {
        while !queue.is_empty() {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                return;
            };
            let Some((key, deliveries)) = queue.pop_front() else {
                return;
            };
            let Some(target) = self.webhooks.lock().get(&key.0).map(|p| p.target.clone()) else {
                // A webhook created since the last read: the next read has it.
                self.in_flight.lock().remove(&key);
                self.wake.notify_one();
                continue;
            };
            let this = self.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut attempts = Vec::with_capacity(deliveries.len());
                for delivery in deliveries {
                    // The webhook may have been deleted, disabled, re-pointed or given new
                    // secrets while the group was being sent: the rest of it stays pending for
                    // the next read, which sends it as the webhook is now, or not at all.
                    if !this.still_targets(&key.0, &target) {
                        break;
                    }
                    let outcome = match this.body(delivery.revision).await {
                        Ok(body) => {
                            send(&this.client, &this.targets, &target, &delivery, &body).await
                        }
                        Err(error) => Outcome::failed(format!("cannot read the event: {error}")),
                    };
                    let attempt = this.attempt(&delivery, outcome);
                    let failed = attempt.status != DeliveryStatus::Delivered;
                    attempts.push(attempt);
                    if failed {
                        break;
                    }
                }
                drop(permit);
                let _ = done.send(GroupDone { key, attempts });
                // A permit is free: queued groups may start.
                this.send_wake.notify_one();
            });
        }
    }

    /// Whether `webhook` is still enabled and still sends to `target` (the same URL and signing
    /// secrets).
    fn still_targets(&self, webhook: &str, target: &Target) -> bool {
        self.webhooks
            .lock()
            .get(webhook)
            .is_some_and(|now| now.webhook.enabled && *now.target == *target)
    }

    /// Keeps an event's JSON for its deliveries; answers it.
    pub(super) fn keep_body(&self, event: &ChangeEvent) -> Result<Arc<str>> {
        let body: Arc<str> = serde_json::to_string(event)
            .map_err(Error::internal)?
            .into();
        let mut bodies = self.bodies.lock();
        bodies.insert(event.revision, body.clone());
        while bodies.len() > MAX_BODIES {
            bodies.pop_first();
        }
        Ok(body)
    }

    /// The JSON of the event at `revision`: kept, or read from the change log (after a
    /// restart, a redelivery of an old one).
    async fn body(&self, revision: u64) -> Result<Arc<str>> {
        if let Some(body) = self.bodies.lock().get(&revision) {
            return Ok(body.clone());
        }
        let event = self
            .store
            .changes_since(revision.saturating_sub(1), 1)
            .await?
            .into_iter()
            .find(|event| event.revision == revision)
            .ok_or_else(|| Error::not_found("change", revision.to_string()))?;
        self.keep_body(&event)
    }

    /// What an attempt's outcome makes of its delivery.
    fn attempt(&self, delivery: &Delivery, outcome: Outcome) -> Attempt {
        let at = now();
        let attempts = delivery.attempts.saturating_add(1);
        let latency_ms = outcome.latency.as_millis() as u64;
        if outcome.error.is_none() {
            metrics::counter!("summit_webhook_deliveries_total", "outcome" => "delivered")
                .increment(1);
            metrics::histogram!("summit_webhook_delivery_seconds")
                .record(outcome.latency.as_secs_f64());
            return Attempt {
                delivery: delivery.id,
                status: DeliveryStatus::Delivered,
                attempts,
                next_attempt_at: delivery.next_attempt_at,
                last_error: None,
                last_status: outcome.status,
                latency_ms,
                at,
            };
        }
        let retry = self.settings.schedule.get(attempts as usize - 1);
        let (status, next_attempt_at) = match retry {
            Some(wait) => (DeliveryStatus::Pending, at + jittered(*wait)),
            None => (DeliveryStatus::Failed, at),
        };
        let outcome_label = if status == DeliveryStatus::Failed {
            "failed"
        } else {
            "retry"
        };
        metrics::counter!("summit_webhook_deliveries_total", "outcome" => outcome_label)
            .increment(1);
        Attempt {
            delivery: delivery.id,
            status,
            attempts,
            next_attempt_at,
            last_error: outcome.error,
            last_status: outcome.status,
            latency_ms,
            at,
        }
    }

    /// Records outcomes in batches (retrying while the database does not answer), updates the
    /// webhooks' health, then frees their groups.
    pub(super) async fn record(
        self: Arc<Self>,
        mut outcomes: mpsc::UnboundedReceiver<GroupDone>,
        shutdown: CancellationToken,
    ) {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                count = outcomes.recv_many(&mut batch, 256) => if count == 0 { return },
            }
            let round = Outcomes {
                attempts: batch.iter().flat_map(|g| g.attempts.clone()).collect(),
                health: self.health(&batch),
            };
            while let Err(error) = self.store.record_attempts(round.clone()).await {
                tracing::warn!(%error, "cannot record delivery attempts yet; will retry");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(TICK) => {}
                }
            }
            {
                let mut webhooks = self.webhooks.lock();
                for update in &round.health {
                    if let Some(prepared) = webhooks.get_mut(&update.id) {
                        prepared.webhook.failing_since = update.failing_since;
                    }
                }
            }
            if round.health.iter().any(|h| h.disabled_reason.is_some()) {
                self.wake.notify_one();
            }
            self.settled
                .lock()
                .extend(batch.drain(..).map(|group| group.key));
            self.send_wake.notify_one();
        }
    }

    /// The webhooks whose failure state changes with these outcomes: a success clears it, a
    /// first failure starts it, failing longer than `disable_after` disables the webhook.
    fn health(&self, groups: &[GroupDone]) -> Vec<WebhookHealth> {
        let mut succeeded: HashMap<&str, bool> = HashMap::new();
        for group in groups {
            for attempt in &group.attempts {
                let ok = attempt.status == DeliveryStatus::Delivered;
                *succeeded.entry(group.key.0.as_str()).or_default() |= ok;
            }
        }
        let webhooks = self.webhooks.lock();
        let at = now();
        succeeded
            .into_iter()
            .filter_map(|(id, ok)| {
                let since = webhooks.get(id).and_then(|p| p.webhook.failing_since);
                match (ok, since) {
                    (true, None) => None,
                    (true, Some(_)) => Some(WebhookHealth {
                        id: id.to_owned(),
                        was_failing_since: since,
                        failing_since: None,
                        disabled_reason: None,
                    }),
                    (false, None) => Some(WebhookHealth {
                        id: id.to_owned(),
                        was_failing_since: since,
                        failing_since: Some(at),
                        disabled_reason: None,
                    }),
                    (false, Some(since)) if at - since >= self.settings.disable_after => {
                        Some(WebhookHealth {
                            id: id.to_owned(),
                            was_failing_since: Some(since),
                            failing_since: Some(since),
                            disabled_reason: Some(format!(
                                "every delivery failed since {}",
                                since.to_rfc3339()
                            )),
                        })
                    }
                    (false, Some(_)) => None,
                }
            })
            .collect()
    }
}

/// `wait` ± 20 %.
fn jittered(wait: Duration) -> chrono::Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    chrono::Duration::milliseconds((wait.as_millis() as f64 * factor) as i64)
}
