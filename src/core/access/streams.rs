//! Long-lived answers (watch streams) end once the credential that opened them stops
//! authenticating: a revoked or expired token, or a JWT past its expiry, reads no further.
//! An API token is checked before each item, from the stream's own memo (a pointer compare
//! while no token was created or revoked); a JWT (which no revocation reaches) and the
//! configured admin token are checked at each `RECHECK` only, so many streams cost no
//! signature check per event.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::{Instant, MissedTickBehavior};

use super::service::TOKEN_PREFIX;
use super::{AccessService, CredentialMemo};
use crate::core::error::Result;

/// How often a stream that has nothing to send checks its credential again.
pub const RECHECK: Duration = Duration::from_secs(10);

/// A stream of results, as the watches hand them to the transports.
pub type Results<T> = Pin<Box<dyn Stream<Item = Result<T>> + Send>>;

impl AccessService {
    /// `stream`, ended once `credential` (what opened it: the bearer token or JWT) no longer
    /// authenticates: an API token is checked before each item is passed on, and any
    /// credential every `RECHECK`. The stream's last item is then the `unauthenticated` error.
    /// The credential is kept only in memory, by this stream.
    pub fn while_authenticated<T: Send + 'static>(
        self: &Arc<Self>,
        credential: String,
        stream: Results<T>,
    ) -> Results<T> {
        let mut recheck = tokio::time::interval_at(Instant::now() + RECHECK, RECHECK);
        recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let open = Open {
            access: self.clone(),
            per_item: credential.starts_with(TOKEN_PREFIX),
            credential,
            stream,
            recheck,
            memo: CredentialMemo::default(),
        };
        Box::pin(futures::stream::unfold(Some(open), |open| async move {
            let mut open = open?;
            loop {
                let item = tokio::select! {
                    item = open.stream.next() => Some(item?),
                    _ = open.recheck.tick() => None,
                };
                if item.is_none() || open.per_item {
                    let checked = open
                        .access
                        .authenticate_remembering(Some(&open.credential), &open.memo);
                    if let Err(refused) = checked {
                        return Some((Err(refused), None));
                    }
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
    /// An API token: checked before each item (cheaply, through `memo`).
    per_item: bool,
    memo: CredentialMemo,
    stream: Results<T>,
    recheck: tokio::time::Interval,
}
