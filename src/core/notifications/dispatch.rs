//! The dispatcher: on the replica holding the duties lease, fans the change log out to
//! webhooks (deliveries recorded with the cursor moved, in one transaction) and to Kafka, and
//! sends due deliveries. At least once: a delivery is marked done only after its 2xx, so a
//! crash or a lease hand-over in between sends it again (same `webhook-id`).
//!
//! Four tasks share the work: the feeder (lease, fan-out), the Kafka producer (when brokers
//! are set), the sender (starts each due delivery group: one webhook and subject, in revision
//! order) and the recorder (writes the outcomes in batches, then frees the groups). The
//! feeder's and the producer's side is in `feed`, the sender's and the recorder's in `send`.

mod feed;
mod send;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::delivery::Target;
use super::model::{Attempt, Delivery, Webhook};
use super::targets::{GuardedResolver, Targets};
use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;
use crate::core::ports::{FanOut, Store};
use crate::core::secrets::crypto::Keyring;

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
/// The longest wait before Kafka is tried again after a failure.
const KAFKA_MAX_BACKOFF: Duration = Duration::from_secs(30);
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
    /// How many times this process took the lease: the Kafka producer, which learns of a lease
    /// change only between its passes, reads its cursor again when this moved.
    leases: AtomicU64,
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
            leases: AtomicU64::new(0),
            webhooks: Mutex::new(HashMap::new()),
            none_as_of: Mutex::new(None),
            in_flight: Mutex::new(HashSet::new()),
            bodies: Mutex::new(BTreeMap::new()),
            settled: Mutex::new(Vec::new()),
        }))
    }

    /// Runs the tasks until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        events: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: CancellationToken,
    ) {
        let (done, outcomes) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(self.clone().record(outcomes, shutdown.clone()));
        let sender = tokio::spawn(self.clone().send_due(done, shutdown.clone()));
        let producer = (!self.settings.kafka_brokers.is_empty()).then(|| {
            let dispatcher = self.clone();
            let events = events.resubscribe();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { dispatcher.produce(events, shutdown).await })
        });
        self.feed(events, shutdown).await;
        let _ = sender.await;
        let _ = recorder.await;
        if let Some(producer) = producer {
            let _ = producer.await;
        }
    }

    /// Before serving: a Kafka sink configured for the first time starts at the latest
    /// revision, so every change from now on is produced.
    pub async fn prepare(&self) -> Result<()> {
        if !self.settings.kafka_brokers.is_empty()
            && self.store.sink_cursor(KAFKA_SINK).await?.is_none()
        {
            let latest = self.store.latest_revision().await?;
            self.store
                .fan_out(FanOut {
                    sink: KAFKA_SINK,
                    from: None,
                    to: latest,
                    deliveries: Vec::new(),
                })
                .await?;
        }
        Ok(())
    }
}
