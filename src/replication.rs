//! Keeps a replica's read cache and watchers current with changes committed by any replica
//! sharing the database: wake on a notification (or every poll interval), read the change log
//! from the last revision applied, refresh the cache, publish to local watchers. Driven by the
//! revision log, so a missed notification or a dropped connection delays events, never loses
//! them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::core::deployments::DeploymentService;
use crate::core::error::Error;
use crate::core::ports::{ChangeLog, Database, Store};
use crate::core::registry::RegistryService;
use crate::core::secrets::SecretService;
use crate::core::service::ConfigService;
use crate::store::CachedStore;

/// Longest a change committed elsewhere waits when its notification is lost.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
const BATCH: u32 = 1000;

/// Follows the change log from `from_revision` until `shutdown`.
pub async fn follow_changes(
    cache: Arc<CachedStore>,
    service: Arc<ConfigService>,
    from_revision: u64,
    shutdown: CancellationToken,
) {
    let mut cursor = from_revision;
    cache.mark_applied(cursor);
    let mut stuck = Stuck::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = cache.wait_for_change(POLL_INTERVAL) => {}
        }
        cursor = catch_up(&cache, &service, cursor, &mut stuck).await;
    }
}

/// Where the follower last could not go on, so that it says so once, not on every wake-up.
#[derive(Default)]
struct Stuck {
    said_at: Option<u64>,
}

impl Stuck {
    /// The follower cannot apply what comes after `cursor` (`doing` failed) and will retry.
    /// An unreachable database is expected during an outage. Anything else — a change this
    /// build cannot read (written by a newer replica during a rolling upgrade), a failing
    /// refresh — leaves this replica serving what it has and its watchers hearing nothing more
    /// until it is fixed: an error, logged once per revision.
    fn at(&mut self, cursor: u64, doing: &str, error: &Error) {
        if matches!(error, Error::Unavailable { .. }) {
            tracing::debug!(%error, cursor, "{doing}: the database is unavailable; will retry");
            return;
        }
        if self.said_at.replace(cursor) != Some(cursor) {
            tracing::error!(
                %error,
                cursor,
                "the change follower cannot {doing}; this replica serves and announces changes \
                 up to revision {cursor} only, and retries every second"
            );
        }
    }
}

/// Applies every change after `cursor`; returns the last revision applied. Stops early (to
/// retry on the next wake-up) when the database does not answer. This replica's own changes
/// come from memory while they follow the cursor (`committed_here`), the rest from the change
/// log.
async fn catch_up(
    cache: &CachedStore,
    service: &ConfigService,
    mut cursor: u64,
    stuck: &mut Stuck,
) -> u64 {
    loop {
        let (events, more, source) = match cache.committed_here(cursor, BATCH).await {
            Some(here) => (here.events, here.more, "memory"),
            None => match cache.changes_since(cursor, BATCH).await {
                Ok(events) => {
                    let full = events.len() == BATCH as usize;
                    (events, full, "change_log")
                }
                Err(error) => {
                    stuck.at(cursor, "read the change log", &error);
                    return cursor;
                }
            },
        };
        metrics::counter!("summit_follower_changes_total", "source" => source)
            .increment(events.len() as u64);
        for event in events {
            // What is served first: a version written elsewhere must not be served here
            // before the release that keeps it back is known.
            if let Err(error) = service.serving().apply_change(&event).await {
                stuck.at(cursor, "refresh what is served", &error);
                return cursor;
            }
            if let Err(error) = cache.apply_change(&event).await {
                stuck.at(cursor, "refresh the read cache", &error);
                return cursor;
            }
            cursor = event.revision;
            // Applied before published: a watcher that reads the mark after seeing nothing
            // live still covers this change in its catch-up.
            cache.mark_applied(cursor);
            service.publish(event);
        }
        if !more {
            return cursor;
        }
    }
}

/// Logs what one pass of a duty did: nothing when it found nothing to do, the count when it
/// did something, the error when it failed (the next pass tries again).
fn log_duty<N: Default + PartialEq + tracing::Value>(
    outcome: Result<N, Error>,
    done: &str,
    duty: &str,
) {
    match outcome {
        Ok(count) if count == N::default() => {}
        Ok(count) => tracing::info!(count, "{done}"),
        Err(error) => tracing::warn!(%error, "{duty} failed"),
    }
}

/// Runs the duties that must run once across replicas (today: deleting applied-state reports
/// older than `retention`) whenever this replica holds the duties lease.
pub async fn run_duties(
    store: Arc<dyn Store>,
    retention: chrono::Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let sweeper = store.clone();
    while_leading(store, every, shutdown, move || {
        let store = sweeper.clone();
        async move {
            let swept = store
                .sweep_applied(crate::core::service::now() - retention)
                .await;
            log_duty(
                swept,
                "deleted expired applied-state reports",
                "applied-state sweep",
            );
        }
    })
    .await;
}

/// Rotates the secrets that are due, every `every`, whenever this replica holds the duties
/// lease. Each rotation is conditional on the version it read, so a lease handed over mid-way
/// (or an operator's write) never makes two rotations of one due time.
pub async fn run_rotations(
    store: Arc<dyn Store>,
    secrets: Arc<SecretService>,
    every: Duration,
    shutdown: CancellationToken,
) {
    while_leading(store, every, shutdown, move || {
        let secrets = secrets.clone();
        async move {
            let rotated = secrets.rotate_due(crate::core::service::now()).await;
            log_duty(rotated, "rotated secrets that were due", "secret rotation");
        }
    })
    .await;
}

/// The registry's duties, whenever this replica holds the duties lease: every `every`, expire
/// the instances past their TTL and remove those past their deregistration time; every
/// `health_every` (when set), call every instance's health-check URL.
pub async fn run_registry(
    store: Arc<dyn Store>,
    registry: Arc<RegistryService>,
    every: Duration,
    health_every: Option<Duration>,
    shutdown: CancellationToken,
) {
    let last_check = Arc::new(parking_lot::Mutex::new(tokio::time::Instant::now()));
    let checking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    while_leading(store, every, shutdown, move || {
        let (registry, last_check, checking) =
            (registry.clone(), last_check.clone(), checking.clone());
        async move {
            let changed = registry.expire_due(crate::core::service::now()).await;
            log_duty(
                changed,
                "expired or removed registry instances",
                "registry expiry",
            );
            let Some(health_every) = health_every else {
                return;
            };
            if last_check.lock().elapsed() < health_every {
                return;
            }
            // Checks run beside expiry, one pass at a time: slow health endpoints never hold
            // up the expiry of instances without heartbeats.
            if checking.swap(true, std::sync::atomic::Ordering::AcqRel) {
                return;
            }
            *last_check.lock() = tokio::time::Instant::now();
            tokio::spawn(async move {
                if let Err(error) = registry.check_all().await {
                    tracing::warn!(%error, "registry health checks failed");
                }
                checking.store(false, std::sync::atomic::Ordering::Release);
            });
        }
    })
    .await;
}

/// Moves deployments along, every `every`, whenever this replica holds the duties lease. Each
/// move is conditional on the deployment as read, so a lease handed over mid-way never makes a
/// step twice; a restarted or new holder resumes from the stored state.
pub async fn run_deployments(
    store: Arc<dyn Store>,
    deployments: Arc<DeploymentService>,
    every: Duration,
    shutdown: CancellationToken,
) {
    while_leading(store, every, shutdown, move || {
        let deployments = deployments.clone();
        async move {
            if let Err(error) = deployments.tick(crate::core::service::now()).await {
                tracing::warn!(%error, "deployment engine tick failed");
            }
        }
    })
    .await;
}

/// Runs `duty` every `every` while this replica holds the duties lease, until `shutdown`.
async fn while_leading<F, Fut>(
    store: Arc<dyn Store>,
    every: Duration,
    shutdown: CancellationToken,
    mut duty: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match store.lead_duties().await {
            Ok(true) => duty().await,
            Ok(false) => tracing::debug!("another replica holds the duties lease"),
            Err(error) => tracing::debug!(%error, "cannot reach the store for duties"),
        }
    }
}
