//! Prometheus metrics: the process's recorder, every metric's description (docs/observability.md
//! lists them with their labels), and the gauges read when `/metrics` is scraped.
//!
//! Counters and histograms are recorded where things happen; gauges that describe the state of
//! the store (drift, pending approvals, active deployments, the webhook queue, the database)
//! are read at scrape time, so they cost nothing between scrapes. Labels are bounded: routes,
//! methods, codes, states, transports and config ids — never instance ids or tokens.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use metrics::{Counter, Histogram, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;

use crate::core::access::Caller;
use crate::core::approvals::model::ChangeRequestStatus;
use crate::core::error::Result;
use crate::core::ports::{ChangeRequestQuery, DeploymentQuery, Store};
use crate::core::service::ConfigService;

/// The process-wide Prometheus recorder (metrics are global to the process), installed on
/// first use with every metric described.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5,
                ])
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("summit_commit_batch_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
                )
                .expect("static buckets are valid")
                // Up to the webhook timeout (10 s by default) and past it.
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "summit_webhook_delivery_seconds".into(),
                    ),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program).
            let _ = metrics::set_global_recorder(recorder);
            describe();
            // Histogram samples are buffered until upkeep folds them into buckets; without it
            // memory would grow between scrapes.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning the metrics upkeep thread");
            handle
        })
        .clone()
}

/// Transports a watcher can use (the `transport` label).
pub const TRANSPORTS: [&str; 3] = ["sse", "websocket", "grpc"];

/// Describes every metric and registers those that exist before their first event (with
/// their bounded label values), so a scrape — and an alert on `increase()` — sees them from
/// the start.
fn describe() {
    describe_counter!(
        "summit_http_requests_total",
        "REST requests by method, route template and status"
    );
    describe_histogram!(
        "summit_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "REST request latency to the response head"
    );
    describe_counter!(
        "summit_grpc_requests_total",
        "gRPC calls by method and status code, counted when the call ends"
    );
    describe_histogram!(
        "summit_grpc_request_duration_seconds",
        metrics::Unit::Seconds,
        "gRPC call latency (a stream's whole life)"
    );
    describe_gauge!(
        "summit_watch_streams",
        "Watch streams open, by transport (sse, websocket, grpc)"
    );
    for transport in TRANSPORTS {
        metrics::gauge!("summit_watch_streams", "transport" => transport).increment(0.0);
    }
    describe_counter!(
        "summit_events_published_total",
        "Change events published to this process's watchers"
    );
    metrics::counter!("summit_events_published_total").absolute(0);
    describe_counter!(
        "summit_watch_resyncs_total",
        "Times a watcher fell behind the live events and caught up from the change log"
    );
    metrics::counter!("summit_watch_resyncs_total").absolute(0);
    describe_gauge!(
        "summit_cache_entries",
        "Config heads held in the read cache"
    );
    describe_counter!(
        "summit_cache_requests_total",
        "Config head lookups by result: hit (answered from memory) or miss (read from the store)"
    );
    for result in ["hit", "miss"] {
        metrics::counter!("summit_cache_requests_total", "result" => result).absolute(0);
    }
    describe_histogram!(
        "summit_commit_duration_seconds",
        metrics::Unit::Seconds,
        "Time to commit one batch of writes (group commit), lock to commit"
    );
    let _ = metrics::histogram!("summit_commit_duration_seconds");
    describe_histogram!("summit_commit_batch_size", "Writes per committed batch");
    let _ = metrics::histogram!("summit_commit_batch_size");
    describe_counter!(
        "summit_follower_changes_total",
        "Changes the replica follower took up, by source: memory (committed by this replica) or change_log"
    );
    for source in ["memory", "change_log"] {
        metrics::counter!("summit_follower_changes_total", "source" => source).absolute(0);
    }
    describe_gauge!(
        "summit_drift_instances",
        "Reporting instances by config, environment and state (in_sync, drifted, stale)"
    );
    describe_gauge!(
        "summit_change_requests_pending",
        "Change requests waiting for approval"
    );
    describe_gauge!(
        "summit_change_request_oldest_pending_seconds",
        "Age of the oldest pending change request (0 when none)"
    );
    describe_gauge!(
        "summit_deployments",
        "Deployments not yet finished, by state"
    );
    describe_counter!(
        "summit_deployment_rollbacks_total",
        "Deployments rolled back (automatically or by an operator)"
    );
    metrics::counter!("summit_deployment_rollbacks_total").absolute(0);
    describe_counter!(
        "summit_webhook_deliveries_total",
        "Webhook delivery attempts by outcome"
    );
    for outcome in ["delivered", "retry", "failed"] {
        metrics::counter!("summit_webhook_deliveries_total", "outcome" => outcome).absolute(0);
    }
    describe_histogram!(
        "summit_webhook_delivery_seconds",
        metrics::Unit::Seconds,
        "Latency of successful webhook deliveries"
    );
    let _ = metrics::histogram!("summit_webhook_delivery_seconds");
    describe_gauge!(
        "summit_webhook_queue_depth",
        "Webhook deliveries pending (due or waiting for a retry)"
    );
    describe_gauge!(
        "summit_webhooks_disabled",
        "Webhooks disabled (after failing for too long, or by an operator)"
    );
    describe_counter!(
        "summit_kafka_records_total",
        "Change events produced to Kafka"
    );
    describe_counter!(
        "summit_secret_rotations_total",
        "Scheduled secret rotations by result (success, failure)"
    );
    for result in ["success", "failure"] {
        metrics::counter!("summit_secret_rotations_total", "result" => result).absolute(0);
    }
    describe_gauge!(
        "summit_database_up",
        "1 while the database answers, 0 while it does not"
    );
    describe_counter!(
        "summit_auth_failures_total",
        "Requests refused for a missing or invalid credential"
    );
    metrics::counter!("summit_auth_failures_total").absolute(0);
    describe_counter!(
        "summit_rate_limited_total",
        "Requests refused by the per-identity rate limit"
    );
    metrics::counter!("summit_rate_limited_total").absolute(0);
    describe_gauge!("summit_revision", "Latest revision of the change log");
}

/// Reads the gauges that describe the store's state when `/metrics` is scraped.
pub struct Collector {
    service: Arc<ConfigService>,
    store: Arc<dyn Store>,
    /// Cache entries: a function, so the collector does not depend on the cache's type.
    cache_entries: Box<dyn Fn() -> usize + Send + Sync>,
    /// The drift series set at the last scrape, set to 0 when they disappear.
    drift_series: Mutex<HashSet<(String, String, &'static str)>>,
    /// One collection at a time (`/metrics` is open to every client, and a collection reads
    /// the database), and how many have ended.
    collecting: tokio::sync::Mutex<()>,
    collections: AtomicU64,
}

/// A scrape waits at most this long for the store; the gauges keep their last values past it.
const SCRAPE_BUDGET: Duration = Duration::from_secs(3);

/// The most rows a scrape reads of pending change requests or active deployments.
const SCRAPE_ROWS: u32 = 10_000;

impl Collector {
    pub fn new(
        service: Arc<ConfigService>,
        store: Arc<dyn Store>,
        cache_entries: Box<dyn Fn() -> usize + Send + Sync>,
    ) -> Collector {
        Collector {
            service,
            store,
            cache_entries,
            drift_series: Mutex::new(HashSet::new()),
            collecting: tokio::sync::Mutex::new(()),
            collections: AtomicU64::new(0),
        }
    }

    /// Sets the scrape-time gauges. A database that does not answer sets `summit_database_up`
    /// to 0 and leaves the gauges it feeds as they were. Scrapes that arrive while a collection
    /// runs wait for it, and one that ended while they waited serves them: however many
    /// scrapes come at once, at most two collections read the database for them.
    pub async fn collect(&self) {
        let ended_before = self.collections.load(Ordering::Acquire);
        let _only = self.collecting.lock().await;
        if self.collections.load(Ordering::Acquire) != ended_before {
            return;
        }
        self.collect_now().await;
        self.collections.fetch_add(1, Ordering::AcqRel);
    }

    async fn collect_now(&self) {
        metrics::gauge!("summit_cache_entries").set((self.cache_entries)() as f64);
        let up = tokio::time::timeout(SCRAPE_BUDGET, self.service.ready())
            .await
            .is_ok_and(|ready| ready.is_ok());
        metrics::gauge!("summit_database_up").set(if up { 1.0 } else { 0.0 });
        if !up {
            return;
        }
        if let Ok(Ok(revision)) =
            tokio::time::timeout(SCRAPE_BUDGET, self.service.latest_revision()).await
        {
            metrics::gauge!("summit_revision").set(revision as f64);
        }
        let collected = tokio::time::timeout(SCRAPE_BUDGET, async {
            let drift = self.drift().await;
            let approvals = self.approvals().await;
            let deployments = self.deployments().await;
            let webhooks = self.webhooks().await;
            drift.and(approvals).and(deployments).and(webhooks)
        })
        .await;
        match collected {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "metrics: reading the store's state failed"),
            Err(_) => tracing::warn!("metrics: reading the store's state took too long"),
        }
    }

    async fn drift(&self) -> Result<()> {
        let report = self.service.drift_report(&Caller::unrestricted()).await?;
        let mut counts: BTreeMap<(String, String, &'static str), usize> = BTreeMap::new();
        for config in &report.configs {
            for instance in &config.instances {
                let key = (
                    config.config_id.clone(),
                    instance.environment.clone(),
                    instance.status.as_str(),
                );
                *counts.entry(key).or_default() += 1;
            }
        }
        let mut series = self.drift_series.lock();
        for gone in series.iter().filter(|key| !counts.contains_key(*key)) {
            drift_gauge(gone).set(0.0);
        }
        for (key, count) in &counts {
            drift_gauge(key).set(*count as f64);
        }
        *series = counts.into_keys().collect();
        Ok(())
    }

    async fn approvals(&self) -> Result<()> {
        let pending = self
            .store
            .change_requests(ChangeRequestQuery {
                status: Some(ChangeRequestStatus::Pending),
                environment: None,
                subject: None,
                limit: SCRAPE_ROWS,
                prefixes: Vec::new(),
            })
            .await?;
        let oldest = pending.iter().map(|request| request.created_at).min();
        let age = oldest.map_or(0.0, |at| {
            (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!("summit_change_requests_pending").set(pending.len() as f64);
        metrics::gauge!("summit_change_request_oldest_pending_seconds").set(age);
        Ok(())
    }

    async fn deployments(&self) -> Result<()> {
        use crate::core::deployments::model::State;
        let active = self
            .store
            .deployments(&DeploymentQuery {
                config_id: None,
                environment: None,
                active_only: true,
                before: None,
                limit: SCRAPE_ROWS,
            })
            .await?;
        let states = [
            State::Pending,
            State::Deploying,
            State::Baking,
            State::FinalBake,
            State::Paused,
            State::RollingBack,
        ];
        for state in states {
            let count = active.iter().filter(|d| d.state == state).count();
            metrics::gauge!("summit_deployments", "state" => state.as_str()).set(count as f64);
        }
        Ok(())
    }

    async fn webhooks(&self) -> Result<()> {
        let disabled = self
            .store
            .webhooks()
            .await?
            .iter()
            .filter(|webhook| !webhook.enabled)
            .count();
        metrics::gauge!("summit_webhooks_disabled").set(disabled as f64);
        let backlog = self.store.delivery_backlog().await?;
        metrics::gauge!("summit_webhook_queue_depth").set(backlog as f64);
        Ok(())
    }
}

fn drift_gauge((config, environment, state): &(String, String, &'static str)) -> metrics::Gauge {
    metrics::gauge!(
        "summit_drift_instances",
        "config" => config.clone(),
        "environment" => environment.clone(),
        "state" => *state,
    )
}

/// Counts a watch stream open while the guard lives.
pub struct OpenStream(&'static str);

impl OpenStream {
    pub fn open(transport: &'static str) -> OpenStream {
        metrics::gauge!("summit_watch_streams", "transport" => transport).increment(1.0);
        OpenStream(transport)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("summit_watch_streams", "transport" => self.0).decrement(1.0);
    }
}

/// Counter and histogram handles by family, then primary key (a route or a method), then a
/// small secondary key (status, code), registered once per worker thread: recording allocates
/// nothing and takes no shared lock after a series' first use on a thread.
type SeriesHandles = HashMap<
    &'static str,
    HashMap<String, Vec<(u32, Counter, Histogram)>, foldhash::fast::FixedState>,
    foldhash::fast::FixedState,
>;

thread_local! {
    // The keys are route templates and method names, never client input: a fixed seed will do.
    static SERIES: RefCell<SeriesHandles> = RefCell::new(HashMap::default());
}

/// Counts one request or call and records its latency in the `counter` / `histogram` pair,
/// on the series `labels` describes (called only the first time on a thread).
pub fn count_and_time(
    (counter, histogram): (&'static str, &'static str),
    primary: &str,
    secondary: u32,
    labels: impl FnOnce() -> Vec<(&'static str, String)>,
    seconds: f64,
) {
    SERIES.with_borrow_mut(|families| {
        let family = families.entry(counter).or_default();
        let series = match family.get_mut(primary) {
            Some(series) => series,
            None => family.entry(primary.to_owned()).or_default(),
        };
        let index = match series.iter().position(|(key, ..)| *key == secondary) {
            Some(index) => index,
            None => {
                let labels = labels();
                series.push((
                    secondary,
                    metrics::counter!(counter, &labels),
                    metrics::histogram!(histogram, &labels),
                ));
                series.len() - 1
            }
        };
        let (_, counter, histogram) = &series[index];
        counter.increment(1);
        histogram.record(seconds);
    });
}
