//! The dispatcher: on the replica holding the duties lease, fans the change log out to
//! webhooks (deliveries recorded with the cursor moved, in one transaction) and to Kafka, and
//! sends due deliveries. At least once: a delivery is marked done only after its 2xx, so a
//! crash or a lease hand-over in between sends it again (same `webhook-id`).
//!
//! Three tasks share the work: the feeder (lease, fan-out, Kafka), the sender (starts each due
//! delivery group: one webhook and subject, in revision order) and the recorder (writes the
//! outcomes in batches, then frees the groups).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::delivery::{Outcome, Target, send};
use super::kafka::KafkaSink;
use super::matching::wants;
use super::model::{Attempt, Delivery, DeliveryStatus, NewDelivery, Webhook, WebhookHealth};
use super::service::sealing_name;
use super::targets::{GuardedResolver, Targets};
use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;
use crate::core::ports::Store;
use crate::core::secrets::crypto::Keyring;
use crate::core::service::now;

const WEBHOOK_SINK: &str = "webhooks";
const KAFKA_SINK: &str = "kafka";
/// Change-log entries read per fan-out.
const FAN_OUT_BATCH: u32 = 500;
/// Due deliveries read per round.
const DUE_BATCH: u32 = 2000;
/// The least time between two reads of what is due while deliveries flow.
const ROUND_GAP: Duration = Duration::from_millis(20);
/// How often the lease is asked for, and the longest sleep between rounds.
const TICK: Duration = Duration::from_secs(1);
/// Event bodies kept in memory for deliveries (older ones are read again when needed).
const MAX_BODIES: usize = 100_000;
/// Delivered and dead deliveries are kept this long in the delivery log.
const RETENTION_DAYS: i64 = 7;

/// How deliveries are made and retried.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// The wait before each retry (the first attempt is at once); after the last, a
    /// delivery is dead-lettered (`failed`).
    pub schedule: Vec<Duration>,
    /// The most an attempt may take (connect, send, answer).
    pub timeout: Duration,
    /// A webhook whose deliveries all failed for this long is disabled.
    pub disable_after: chrono::Duration,
    /// The most attempts in flight.
    pub concurrency: usize,
    /// `host:port` of Kafka brokers; none: no Kafka sink.
    pub kafka_brokers: Vec<String>,
    pub kafka_topic: String,
}

/// A group of deliveries (one webhook, one subject) and what became of them.
struct GroupDone {
    key: (String, String),
    attempts: Vec<Attempt>,
}

/// Deliveries of one webhook and subject, in revision order, and their key.
type Group = ((String, String), Vec<Delivery>);

/// A webhook as last read, and where its deliveries go with the secrets (opened) that sign.
struct Prepared {
    webhook: Webhook,
    target: Arc<Target>,
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    client: reqwest::Client,
    targets: Arc<Targets>,
    settings: DispatchSettings,
    wake: Arc<Notify>,
    /// Wakes the sender: deliveries were recorded, or outcomes freed a group.
    send_wake: Notify,
    leading: AtomicBool,
    /// The webhooks as last read, by id (fan-out matches events against them; their
    /// `failing_since` follows the outcomes recorded since).
    webhooks: Mutex<HashMap<String, Prepared>>,
    /// When the last read found no webhook: the latest revision read just before it. No
    /// webhook created later wants a change up to it (its `since_revision` is past it), so the
    /// fan-out moves its cursor there without reading the changes.
    none_as_of: Mutex<Option<u64>>,
    in_flight: Mutex<HashSet<(String, String)>>,
    /// Recent events' JSON by revision: a delivery's body (else read from the change log).
    bodies: Mutex<BTreeMap<u64, Arc<str>>>,
    /// Groups whose outcomes are recorded: freed at the sender's next round, before it reads
    /// what is due (a read made earlier may still show them pending).
    settled: Mutex<Vec<(String, String)>>,
    permits: Arc<Semaphore>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        targets: Arc<Targets>,
        settings: DispatchSettings,
        wake: Arc<Notify>,
    ) -> Result<Arc<Dispatcher>> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the target itself, past the resolver's checks.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(targets.clone())))
            .user_agent(concat!("summit-config/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(settings.concurrency)
            .build()
            .map_err(Error::internal)?;
        Ok(Arc::new(Dispatcher {
            store,
            keyring,
            client,
            targets,
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            settings,
            wake,
            send_wake: Notify::new(),
            leading: AtomicBool::new(false),
            webhooks: Mutex::new(HashMap::new()),
            none_as_of: Mutex::new(None),
            in_flight: Mutex::new(HashSet::new()),
            bodies: Mutex::new(BTreeMap::new()),
            settled: Mutex::new(Vec::new()),
        }))
    }

    /// Runs the three tasks until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        events: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: CancellationToken,
    ) {
        let (done, outcomes) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(self.clone().record(outcomes, shutdown.clone()));
        let sender = tokio::spawn(self.clone().send_due(done, shutdown.clone()));
        self.feed(events, shutdown).await;
        let _ = sender.await;
        let _ = recorder.await;
    }

    /// Holds the lease, fans out, feeds Kafka.
    async fn feed(
        &self,
        mut events: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: CancellationToken,
    ) {
        let mut kafka: Option<KafkaSink> = None;
        let mut kafka_retry_at = Instant::now();
        let mut webhook_cursor = None;
        let mut kafka_cursor = None;
        let mut lease_checked: Option<Instant> = None;
        let mut webhooks_read: Option<Instant> = None;
        let mut refresh = false;
        let mut pruned: Option<Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                self.send_wake.notify_one();
                return;
            }
            if lease_checked.is_none_or(|at| at.elapsed() >= TICK) {
                let leading = self.store.lead_duties().await.unwrap_or(false);
                if !leading {
                    webhook_cursor = None;
                    kafka_cursor = None;
                    webhooks_read = None;
                }
                self.leading.store(leading, Ordering::Release);
                lease_checked = Some(Instant::now());
            }
            let mut caught_up = true;
            if self.leading.load(Ordering::Acquire) {
                if refresh || webhooks_read.is_none_or(|at| at.elapsed() >= TICK) {
                    match self.refresh_webhooks().await {
                        Ok(()) => {
                            webhooks_read = Some(Instant::now());
                            refresh = false;
                        }
                        Err(error) => tracing::warn!(%error, "cannot read webhooks yet"),
                    }
                }
                // Fan-out matches against the webhooks read: never before a read succeeded.
                if webhooks_read.is_some() {
                    match self.fan_out(&mut webhook_cursor).await {
                        Ok(done) => caught_up &= done,
                        Err(error) => tracing::warn!(%error, "webhook fan-out failed; will retry"),
                    }
                }
                if !self.settings.kafka_brokers.is_empty() && Instant::now() >= kafka_retry_at {
                    match self.feed_kafka(&mut kafka, &mut kafka_cursor).await {
                        Ok(done) => caught_up &= done,
                        Err(error) => {
                            tracing::warn!(%error, "producing to Kafka failed; will retry");
                            kafka = None;
                            kafka_retry_at = Instant::now() + TICK;
                        }
                    }
                }
                if pruned.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
                    let before = now() - chrono::Duration::days(RETENTION_DAYS);
                    if let Err(error) = self.store.prune_deliveries(before).await {
                        tracing::debug!(%error, "cannot prune deliveries yet");
                    }
                    pruned = Some(Instant::now());
                }
            }
            if caught_up {
                tokio::select! {
                    () = shutdown.cancelled() => {
                        self.send_wake.notify_one();
                        return;
                    }
                    () = self.wake.notified() => refresh = true,
                    // Any change: there may be a stretch to fan out (a webhook change among
                    // it makes the fan-out read the webhooks again). While there is no webhook
                    // the fan-out reads no stretch, so a webhook change is seen here instead.
                    event = events.recv() => match event {
                        Ok(event) => {
                            refresh |= event.kind.is_webhook() && self.none_as_of.lock().is_some();
                        }
                        Err(broadcast::error::RecvError::Closed) => tokio::time::sleep(TICK).await,
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                    },
                    () = tokio::time::sleep(TICK) => {}
                }
            }
        }
    }

    /// Reads the webhooks and opens their secrets (for the sender).
    async fn refresh_webhooks(&self) -> Result<()> {
        // Read before the webhooks: a webhook missing from them was created after this.
        let latest = self.store.latest_revision().await?;
        let stored = self.store.webhooks().await?;
        let none_as_of = stored.is_empty().then_some(latest);
        let at = now();
        let mut prepared = HashMap::with_capacity(stored.len());
        for webhook in stored {
            let name = sealing_name(&webhook.id);
            let opened: Result<Vec<Vec<u8>>> = webhook
                .secrets
                .iter()
                .filter(|secret| secret.expires_at.is_none_or(|expires| expires > at))
                .map(|secret| self.keyring.open(&name, secret.generation, &secret.sealed))
                .collect();
            // A secret that no key opens fails every attempt, visibly (the log, then disabling).
            let (secrets, unusable) = match opened {
                Ok(secrets) => (secrets, None),
                Err(error) => {
                    tracing::warn!(webhook = %webhook.id, %error, "cannot open a webhook's signing secret");
                    let why =
                        "the signing secret cannot be opened with the server's keys; rotate it";
                    (Vec::new(), Some(why.to_owned()))
                }
            };
            let target = Arc::new(Target {
                url: webhook.url.clone(),
                secrets,
                unusable,
            });
            prepared.insert(webhook.id.clone(), Prepared { webhook, target });
        }
        *self.webhooks.lock() = prepared;
        *self.none_as_of.lock() = none_as_of;
        Ok(())
    }

    /// Fans out one stretch of the change log; `true` when it reached the end.
    async fn fan_out(&self, cursor: &mut Option<u64>) -> Result<bool> {
        let none_as_of = *self.none_as_of.lock();
        if let Some(latest) = none_as_of {
            // No webhook: nothing to read or deliver; the cursor skips what none will want
            // (at most once per read of the webhooks).
            if let Some(from) = self.cursor(WEBHOOK_SINK, cursor).await?
                && from < latest
            {
                self.advance(WEBHOOK_SINK, cursor, from, latest, Vec::new())
                    .await?;
            }
            return Ok(true);
        }
        let Some((from, to, events)) = self.stretch(WEBHOOK_SINK, cursor).await? else {
            return Ok(true);
        };
        if events.iter().any(|event| event.kind.is_webhook()) {
            // Match against the webhooks as they are after these changes (one created here
            // wants only what follows it: its `since_revision`).
            self.refresh_webhooks().await?;
        }
        let at = now();
        let webhooks: Vec<Webhook> = self
            .webhooks
            .lock()
            .values()
            .map(|prepared| prepared.webhook.clone())
            .filter(|webhook| webhook.enabled)
            .collect();
        let mut deliveries = Vec::new();
        for event in &events {
            let mut matched = false;
            for webhook in webhooks.iter().filter(|w| wants(w, event)) {
                matched = true;
                deliveries.push(NewDelivery {
                    webhook_id: webhook.id.clone(),
                    revision: event.revision,
                    kind: event.kind.as_str().to_owned(),
                    subject: event.config_id.clone(),
                    at,
                });
            }
            if matched {
                self.keep_body(event)?;
            }
        }
        let any = !deliveries.is_empty();
        if self
            .advance(WEBHOOK_SINK, cursor, from, to, deliveries)
            .await?
            && any
        {
            self.send_wake.notify_one();
        }
        Ok(events.len() < FAN_OUT_BATCH as usize)
    }

    /// Produces one stretch of the change log to Kafka, then moves its cursor.
    async fn feed_kafka(
        &self,
        sink: &mut Option<KafkaSink>,
        cursor: &mut Option<u64>,
    ) -> Result<bool> {
        let Some((from, to, events)) = self.stretch(KAFKA_SINK, cursor).await? else {
            return Ok(true);
        };
        let producer = match sink {
            Some(producer) => producer,
            None => sink.insert(
                KafkaSink::connect(&self.settings.kafka_brokers, &self.settings.kafka_topic)
                    .await
                    .map_err(|e| Error::store_unavailable(e.to_string()))?,
            ),
        };
        let records = events
            .iter()
            .map(|event| {
                let value = serde_json::to_vec(event).map_err(Error::internal)?;
                Ok((event.config_id.clone(), value, event.at))
            })
            .collect::<Result<Vec<_>>>()?;
        let count = records.len() as u64;
        producer
            .produce(records)
            .instrument(tracing::debug_span!(
                "kafka.produce",
                otel.kind = "producer",
                records = count
            ))
            .await
            .map_err(|e| Error::store_unavailable(e.to_string()))?;
        metrics::counter!("summit_kafka_records_total").increment(count);
        self.advance(KAFKA_SINK, cursor, from, to, Vec::new())
            .await?;
        Ok(events.len() < FAN_OUT_BATCH as usize)
    }

    /// The next stretch of the change log for `sink`: where its cursor is, the revision of the
    /// last change read and the changes (`None`: nothing to read now).
    async fn stretch(
        &self,
        sink: &str,
        cursor: &mut Option<u64>,
    ) -> Result<Option<(u64, u64, Vec<ChangeEvent>)>> {
        let Some(from) = self.cursor(sink, cursor).await? else {
            return Ok(None);
        };
        let events = self.store.changes_since(from, FAN_OUT_BATCH).await?;
        let Some(to) = events.last().map(|event| event.revision) else {
            return Ok(None);
        };
        Ok(Some((from, to, events)))
    }

    /// Records `deliveries` and moves `sink`'s cursor from `from` to `to`; when another
    /// replica moved it first, nothing is written and the cursor is read again next time.
    async fn advance(
        &self,
        sink: &str,
        cursor: &mut Option<u64>,
        from: u64,
        to: u64,
        deliveries: Vec<NewDelivery>,
    ) -> Result<bool> {
        let moved = self.store.fan_out(sink, Some(from), to, deliveries).await?;
        *cursor = moved.then_some(to);
        Ok(moved)
    }

    /// Where `sink` is in the change log. Webhooks start (once) at the revision the oldest
    /// webhook was created at (no webhook wants an earlier change); Kafka at the revision when
    /// it was first configured (`prepare`).
    async fn cursor(&self, sink: &str, cursor: &mut Option<u64>) -> Result<Option<u64>> {
        if let Some(at) = *cursor {
            return Ok(Some(at));
        }
        if let Some(at) = self.store.sink_cursor(sink).await? {
            *cursor = Some(at);
            return Ok(Some(at));
        }
        let start = match sink {
            WEBHOOK_SINK => self
                .webhooks
                .lock()
                .values()
                .map(|prepared| prepared.webhook.since_revision)
                .min()
                .unwrap_or(0),
            _ => self.store.latest_revision().await?,
        };
        self.store.fan_out(sink, None, start, Vec::new()).await?;
        Ok(None)
    }

    /// Before serving: a Kafka sink configured for the first time starts at the latest
    /// revision, so every change from now on is produced.
    pub async fn prepare(&self) -> Result<()> {
        if !self.settings.kafka_brokers.is_empty()
            && self.store.sink_cursor(KAFKA_SINK).await?.is_none()
        {
            let latest = self.store.latest_revision().await?;
            self.store
                .fan_out(KAFKA_SINK, None, latest, Vec::new())
                .await?;
        }
        Ok(())
    }

    /// Reads what is due (at most once per `ROUND_GAP` while deliveries flow), queues each
    /// group not already taken, and starts queued groups as permits free up.
    async fn send_due(
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
                match self.store.due_deliveries(now(), DUE_BATCH).await {
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

    /// Keeps an event's JSON for its deliveries; answers it.
    fn keep_body(&self, event: &ChangeEvent) -> Result<Arc<str>> {
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
    async fn record(
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
            let attempts: Vec<Attempt> = batch.iter().flat_map(|g| g.attempts.clone()).collect();
            let health = self.health(&batch);
            while let Err(error) = self
                .store
                .record_attempts(attempts.clone(), health.clone())
                .await
            {
                tracing::warn!(%error, "cannot record delivery attempts yet; will retry");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(TICK) => {}
                }
            }
            {
                let mut webhooks = self.webhooks.lock();
                for update in &health {
                    if let Some(prepared) = webhooks.get_mut(&update.id) {
                        prepared.webhook.failing_since = update.failing_since;
                    }
                }
            }
            if health.iter().any(|h| h.disabled_reason.is_some()) {
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
                        failing_since: None,
                        disabled_reason: None,
                    }),
                    (false, None) => Some(WebhookHealth {
                        id: id.to_owned(),
                        failing_since: Some(at),
                        disabled_reason: None,
                    }),
                    (false, Some(since)) if at - since >= self.settings.disable_after => {
                        Some(WebhookHealth {
                            id: id.to_owned(),
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
