//! The connection slots both listeners share. A connection holds its slot until it closes;
//! until it has proved itself (sent its first request, or its HTTP/2 preface) it is on
//! probation, and when a new connection finds every slot taken, the oldest connection still on
//! probation is closed to make room. An idle flood therefore cannot lock out clients that send
//! their request at once; only when every open connection is in use is a new one refused.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a new connection waits for the slot of the connection it evicted.
const EVICTION_WAIT: Duration = Duration::from_millis(100);

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
}

/// An open connection's claim.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    probation: Arc<Probation>,
}

#[derive(Debug, Default)]
pub struct Probation {
    proven: AtomicBool,
    /// Told once, when `proven` turns true.
    proved: Notify,
    evict: CancellationToken,
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(max)),
                max,
                probation: Mutex::new(VecDeque::new()),
            }),
        }
    }

    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// A slot for a new connection: a free one, else the one the oldest connection on
    /// probation gives up; none when every open connection has proved itself.
    pub async fn claim(&self) -> Option<Slot> {
        let semaphore = &self.inner.semaphore;
        let permit = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !self.evict_oldest() {
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
}

impl Slot {
    /// The connection's probation, for whoever sees it prove itself.
    pub fn probation(&self) -> Arc<Probation> {
        self.probation.clone()
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
}
