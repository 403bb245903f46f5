//! The connection slots both listeners share. A connection holds its slot until it closes;
//! until it has proved itself (sent its first request, or its HTTP/2 preface) it is on
//! probation, and when a new connection finds every slot taken, the oldest connection still on
//! probation is closed to make room; when none is, the connection that has had nothing in
//! flight the longest (at least `MIN_IDLE`: a kept-alive HTTP/1.1 connection between requests,
//! an HTTP/2 connection with no open stream) gives way. An idle flood, or clients that keep
//! connections open and quiet, therefore cannot lock out clients that send their request at
//! once; only when every open connection is in use is a new one refused.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::idle::Activity;

/// How long a new connection waits for the slot of the connection it evicted.
const EVICTION_WAIT: Duration = Duration::from_millis(100);

/// How long a connection that proved itself must have had nothing in flight before it gives
/// way to a new one: longer than a busy client's pause between two requests.
const MIN_IDLE: Duration = Duration::from_secs(2);

/// After a look for a quiet connection found none, the next look waits this long: while every
/// connection is in use, a flood of new ones does not cost a scan of them all each.
const RESCAN_AFTER: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Slots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    semaphore: Arc<Semaphore>,
    max: usize,
    /// Connections on probation, oldest first (and some that have since proved themselves or
    /// closed, dropped lazily).
    probation: Mutex<VecDeque<Weak<Probation>>>,
    /// Every open connection (and some closed ones, dropped lazily), and when they may next be
    /// looked through for a quiet one.
    open: Mutex<(Vec<Weak<Probation>>, Option<Instant>)>,
}

/// An open connection's claim.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    probation: Arc<Probation>,
}

#[derive(Debug)]
pub struct Probation {
    proven: AtomicBool,
    /// Told once, when `proven` turns true.
    proved: Notify,
    evict: CancellationToken,
    /// What the connection has in flight (its requests, or HTTP/2 streams).
    activity: Arc<Activity>,
}

impl Default for Probation {
    fn default() -> Probation {
        Probation {
            proven: AtomicBool::new(false),
            proved: Notify::new(),
            evict: CancellationToken::new(),
            activity: Activity::new(),
        }
    }
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(max)),
                max,
                probation: Mutex::new(VecDeque::new()),
                open: Mutex::new((Vec::new(), None)),
            }),
        }
    }

    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// A slot for a new connection: a free one, else the one the oldest connection on
    /// probation gives up, else the one of the connection idle longest; none when every open
    /// connection is in use.
    pub async fn claim(&self) -> Option<Slot> {
        let semaphore = &self.inner.semaphore;
        let permit = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !self.evict_oldest() && !self.evict_idlest(Instant::now()) {
                    return None;
                }
                tokio::time::timeout(EVICTION_WAIT, semaphore.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let probation = Arc::new(Probation::default());
        let mut queue = self.inner.probation.lock();
        // Keeps the queue near the number of connections on probation.
        if queue.len() > 2 * self.inner.max {
            queue.retain(|entry| entry.upgrade().is_some_and(|p| !p.is_proven()));
        }
        queue.push_back(Arc::downgrade(&probation));
        drop(queue);
        let mut open = self.inner.open.lock();
        let connections = &mut open.0;
        if connections.len() > 2 * self.inner.max {
            connections.retain(|entry| entry.strong_count() > 0);
        }
        connections.push(Arc::downgrade(&probation));
        drop(open);
        Some(Slot {
            _permit: permit,
            probation,
        })
    }

    fn evict_oldest(&self) -> bool {
        let mut queue = self.inner.probation.lock();
        while let Some(entry) = queue.pop_front() {
            if let Some(probation) = entry.upgrade()
                && !probation.is_proven()
            {
                probation.evict.cancel();
                return true;
            }
        }
        false
    }

    /// Asks the connection that proved itself and has had nothing in flight the longest (at
    /// least `MIN_IDLE`) to give way; false when none has.
    fn evict_idlest(&self, now: Instant) -> bool {
        let mut open = self.inner.open.lock();
        let (connections, next_look) = &mut *open;
        if next_look.is_some_and(|next| now < next) {
            return false;
        }
        let idlest = connections
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|connection| connection.is_proven() && !connection.evict.is_cancelled())
            .filter_map(|connection| Some((connection.activity.idle_for(now)?, connection)))
            .filter(|(idle, _)| *idle >= MIN_IDLE)
            .max_by_key(|(idle, _)| *idle);
        match idlest {
            Some((idle, connection)) => {
                tracing::debug!(
                    idle_ms = idle.as_millis() as u64,
                    "every slot is taken: the connection idle longest gives way"
                );
                connection.evict.cancel();
                *next_look = None;
                true
            }
            None => {
                *next_look = Some(now + RESCAN_AFTER);
                false
            }
        }
    }
}

impl Slot {
    /// The connection's probation, for whoever sees it prove itself.
    pub fn probation(&self) -> Arc<Probation> {
        self.probation.clone()
    }

    /// What the connection has in flight, for the connection's service to keep up to date.
    pub fn activity(&self) -> Arc<Activity> {
        self.probation.activity.clone()
    }
}

impl Probation {
    /// Called on every request: only the first one writes or wakes anything.
    pub fn prove(&self) {
        if !self.proven.load(Ordering::Acquire) && !self.proven.swap(true, Ordering::AcqRel) {
            self.proved.notify_waiters();
        }
    }

    /// Completes once the connection has proved itself (at once if it has).
    pub async fn proven(&self) {
        let notified = self.proved.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the flag is read, so a proof in between is not missed.
        notified.as_mut().enable();
        if self.is_proven() {
            return;
        }
        notified.await;
    }

    pub fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Acquire)
    }

    /// Completes when the connection is asked to give up its slot.
    pub fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.evict.clone().cancelled_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn proven_waits_for_the_first_request_and_no_longer() {
        let probation = Arc::new(Probation::default());
        let waiting = tokio::spawn({
            let probation = probation.clone();
            async move { probation.proven().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "nothing proved yet");
        probation.prove();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the proof")
            .unwrap();
        // Later requests change nothing, and a late waiter is answered at once.
        probation.prove();
        assert!(probation.proven().now_or_never().is_some());
    }

    #[tokio::test]
    async fn the_connection_idle_longest_gives_way_and_one_in_use_never() {
        let slots = Slots::new(3);
        let mut claimed = Vec::new();
        for _ in 0..3 {
            claimed.push(slots.claim().await.expect("a free slot"));
        }
        for slot in &claimed {
            slot.probation().prove();
        }
        let (busy, older, newer) = (&claimed[0], &claimed[1], &claimed[2]);
        let _request = busy.activity().start(axum::http::Version::HTTP_11);
        drop(older.activity().start(axum::http::Version::HTTP_11));
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(newer.activity().start(axum::http::Version::HTTP_2));

        // Quiet for less than MIN_IDLE: nobody gives way.
        assert!(!slots.evict_idlest(Instant::now()));
        let later = Instant::now() + MIN_IDLE * 2;
        assert!(slots.evict_idlest(later));
        assert!(older.probation().evict.is_cancelled(), "the quiet longest");
        assert!(!busy.probation().evict.is_cancelled());
        assert!(!newer.probation().evict.is_cancelled());
        // Asked once; the next to give way is the other quiet one, never the busy one.
        assert!(slots.evict_idlest(later));
        assert!(newer.probation().evict.is_cancelled());
        assert!(!slots.evict_idlest(later));
        assert!(!busy.probation().evict.is_cancelled());
    }
}
