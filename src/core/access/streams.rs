//! Long-lived answers (watch streams) end once the credential that opened them stops
//! authenticating: a revoked or expired token, or a JWT past its expiry, reads no further.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::{Instant, MissedTickBehavior};

use super::AccessService;
use crate::core::error::Result;

/// How often a stream that has nothing to send checks its credential again.
pub const RECHECK: Duration = Duration::from_secs(10);

/// A stream of results, as the watches hand them to the transports.
pub type Results<T> = Pin<Box<dyn Stream<Item = Result<T>> + Send>>;

impl AccessService {
    /// `stream`, ended once `credential` (what opened it: the bearer token or JWT) no longer
    /// authenticates: checked before each item is passed on and every `RECHECK` while none
    /// comes. The stream's last item is then the `unauthenticated` error. The credential is
    /// kept only in memory, by this stream.
    pub fn while_authenticated<T: Send + 'static>(
        self: &Arc<Self>,
        credential: String,
        stream: Results<T>,
    ) -> Results<T> {
        let mut recheck = tokio::time::interval_at(Instant::now() + RECHECK, RECHECK);
        recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let open = Open {
            access: self.clone(),
            credential,
            stream,
            recheck,
        };
        Box::pin(futures::stream::unfold(Some(open), |open| async move {
            let mut open = open?;
            loop {
                let item = tokio::select! {
                    item = open.stream.next() => Some(item?),
                    _ = open.recheck.tick() => None,
                };
                if let Err(refused) = open.access.authenticate(Some(&open.credential)) {
                    return Some((Err(refused), None));
                }
                if let Some(item) = item {
                    return Some((item, Some(open)));
                }
            }
        }))
    }
}

/// A stream still open, with what it needs to check its credential.
struct Open<T> {
    access: Arc<AccessService>,
    credential: String,
    stream: Results<T>,
    recheck: tokio::time::Interval,
}
