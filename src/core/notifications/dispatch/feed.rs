//! The feeder's side: the duties lease, the webhooks as read, the fan-out of the change log
//! into deliveries; and the Kafka producer, a task of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    Dispatcher, FAN_OUT_BATCH, KAFKA_MAX_BACKOFF, KAFKA_SINK, Prepared, RETENTION_DAYS, TICK,
    WEBHOOK_SINK,
};
use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;
use crate::core::notifications::delivery::Target;
use crate::core::notifications::kafka::KafkaSink;
use crate::core::notifications::matching::wants;
use crate::core::notifications::model::{NewDelivery, Webhook};
use crate::core::notifications::service::sealing_name;
use crate::core::ports::FanOut;
use crate::core::service::now;

/// Why a pass of the Kafka producer failed: the broker (retried with backoff, on a new
/// connection) or the database (retried in a second).
enum Failed {
    Broker(Error),
    Store(Error),
}

impl Dispatcher {
    /// Holds the lease, fans out.
    pub(super) async fn feed(
        &self,
        mut events: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: CancellationToken,
    ) {
        let mut webhook_cursor = None;
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
                    webhooks_read = None;
                }
                if self.leading.swap(leading, Ordering::AcqRel) != leading && leading {
                    self.leases.fetch_add(1, Ordering::AcqRel);
                }
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

    /// Produces the change log to Kafka while this replica holds the lease (the feeder asks
    /// for it). A task of its own: a broker that is down or never answers delays only Kafka,
    /// retried after 1 s, then twice as long each time up to 30 s, never the webhooks' fan-out.
    pub(super) async fn produce(
        &self,
        mut events: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: CancellationToken,
    ) {
        let mut sink: Option<KafkaSink> = None;
        let mut cursor = None;
        let mut lease = 0;
        let mut backoff = TICK;
        loop {
            let mut retry_in = None;
            if self.leading.load(Ordering::Acquire) {
                // The lease was lost and taken again since the last pass: another replica may
                // have moved the cursor meanwhile.
                let current = self.leases.load(Ordering::Acquire);
                if std::mem::replace(&mut lease, current) != current {
                    cursor = None;
                }
                let fed = tokio::select! {
                    () = shutdown.cancelled() => return,
                    fed = self.feed_kafka(&mut sink, &mut cursor) => fed,
                };
                match fed {
                    Ok(done) => {
                        backoff = TICK;
                        if !done {
                            continue;
                        }
                    }
                    Err(Failed::Broker(error)) => {
                        tracing::warn!(%error, retry_in = ?backoff, "producing to Kafka failed; will retry");
                        sink = None;
                        retry_in = Some(backoff);
                        backoff = (backoff * 2).min(KAFKA_MAX_BACKOFF);
                    }
                    Err(Failed::Store(error)) => {
                        tracing::warn!(%error, "cannot read or move the Kafka cursor yet; will retry");
                        retry_in = Some(TICK);
                    }
                }
            } else {
                cursor = None;
            }
            match retry_in {
                Some(wait) => tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                },
                None => tokio::select! {
                    () = shutdown.cancelled() => return,
                    event = events.recv() => {
                        if let Err(broadcast::error::RecvError::Closed) = event {
                            tokio::time::sleep(TICK).await;
                        }
                    }
                    () = tokio::time::sleep(TICK) => {}
                },
            }
        }
    }

    /// Produces one stretch of the change log to Kafka, then moves its cursor.
    async fn feed_kafka(
        &self,
        sink: &mut Option<KafkaSink>,
        cursor: &mut Option<u64>,
    ) -> Result<bool, Failed> {
        let Some((from, to, events)) = self
            .stretch(KAFKA_SINK, cursor)
            .await
            .map_err(Failed::Store)?
        else {
            return Ok(true);
        };
        let producer = match sink {
            Some(producer) => producer,
            None => sink.insert(
                KafkaSink::connect(&self.settings.kafka_brokers, &self.settings.kafka_topic)
                    .await
                    .map_err(|e| Failed::Broker(Error::store_unavailable(e.to_string())))?,
            ),
        };
        let records = events
            .iter()
            .map(|event| {
                let value = serde_json::to_vec(event).map_err(Error::internal)?;
                Ok((event.config_id.clone(), value, event.at))
            })
            .collect::<Result<Vec<_>>>()
            .map_err(Failed::Store)?;
        let count = records.len() as u64;
        producer
            .produce(records)
            .instrument(tracing::debug_span!(
                "kafka.produce",
                otel.kind = "producer",
                records = count
            ))
            .await
            .map_err(|e| Failed::Broker(Error::store_unavailable(e.to_string())))?;
        metrics::counter!("summit_kafka_records_total").increment(count);
        self.advance(KAFKA_SINK, cursor, from, to, Vec::new())
            .await
            .map_err(Failed::Store)?;
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
        let moved = self
            .store
            .fan_out(FanOut {
                sink,
                from: Some(from),
                to,
                deliveries,
            })
            .await?;
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
        self.store
            .fan_out(FanOut {
                sink,
                from: None,
                to: start,
                deliveries: Vec::new(),
            })
            .await?;
        Ok(None)
    }
}
