//! Heartbeat batching: every heartbeat waiting when a flush starts is written in one
//! transaction (one fsync), and each is answered once that transaction committed. At 2,000
//! heartbeats a second a flush takes a few milliseconds, so a batch holds a few dozen. Two
//! flushes may be in flight at once, so a heartbeat arriving during a flush waits for its own
//! commit, not for the one ahead of it too (one instance's heartbeats are sequential, and a
//! heartbeat never moves the stored time back, so their order across flushes does not matter).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::core::error::{Error, Result};
use crate::core::ports::{Store, Touch};

/// The most heartbeats one transaction writes; more wait for the next.
const MAX_BATCH: usize = 1024;
/// Flushes in flight at once.
const FLUSHES: usize = 2;
/// Heartbeats waiting for a flush at most; more are refused (503) until the store catches up,
/// instead of queueing without bound while it stalls.
const MAX_WAITING: usize = 16 * MAX_BATCH;

struct Pending {
    touch: Touch,
    done: oneshot::Sender<Result<bool>>,
}

/// Where heartbeats queue for the flusher task (which stops when this is dropped).
#[derive(Clone)]
pub(super) struct Heartbeats {
    queue: mpsc::Sender<Pending>,
}

impl Heartbeats {
    pub(super) fn start(store: Arc<dyn Store>) -> Heartbeats {
        let (queue, queued) = mpsc::channel(MAX_WAITING);
        tokio::spawn(flush(store, queued));
        Heartbeats { queue }
    }

    /// Whether the instance was alive (registered, not expired, within its TTL), once the
    /// heartbeat is durable.
    pub(super) async fn touch(&self, touch: Touch) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        self.queue
            .try_send(Pending { touch, done })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => Error::Unavailable {
                    reason: "too many heartbeats are waiting for the store; retry shortly".into(),
                },
                mpsc::error::TrySendError::Closed(_) => stopped(),
            })?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::internal("the heartbeat flusher stopped")
}

async fn flush(store: Arc<dyn Store>, mut queued: mpsc::Receiver<Pending>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(FLUSHES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if queued.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let store = store.clone();
        tokio::spawn(async move {
            write(&*store, batch).await;
            drop(slot);
        });
    }
}

/// Writes one batch and answers each of its heartbeats.
async fn write(store: &dyn Store, batch: Vec<Pending>) {
    let (touches, answers): (Vec<Touch>, Vec<_>) =
        batch.into_iter().map(|p| (p.touch, p.done)).unzip();
    match store.touch_instances(&touches).await {
        Ok(alive) => {
            for (done, alive) in answers.into_iter().zip(alive) {
                let _ = done.send(Ok(alive));
            }
        }
        Err(error) => {
            for done in answers {
                let _ = done.send(Err(match &error {
                    Error::Unavailable { reason } => Error::Unavailable {
                        reason: reason.clone(),
                    },
                    other => Error::internal(other),
                }));
            }
        }
    }
}
