//! Facts about the database itself: whether it answers, whether other processes share it,
//! the lease on once-only duties, and wake-ups when others commit.

use async_trait::async_trait;

use crate::core::error::Result;
use crate::core::events::ChangeEvent;

#[async_trait]
pub trait Database: Send + Sync {
    /// Cheap liveness check of the backing database.
    async fn ping(&self) -> Result<()>;
    /// Whether other processes may write to the same data (then replicas follow the change log).
    fn shared_by_replicas(&self) -> bool {
        false
    }
    /// Whether this process holds (keeping or taking it now) the lease on duties that must run
    /// once across replicas. A lease dies with its holder, so another replica takes over.
    async fn lead_duties(&self) -> Result<bool> {
        Ok(true)
    }
    /// Returns when a change may have been committed elsewhere, or after `timeout`.
    async fn wait_for_change(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }
    /// The changes this process committed itself right after `revision` (at most `limit`), as
    /// the change log holds them, when it still has them in memory: the follower then need not
    /// read back its own replica's writes. `None` when the change after `revision` is not one
    /// of them (committed elsewhere, or long ago); the change log is the answer then.
    async fn committed_here(&self, revision: u64, limit: u32) -> Option<CommittedHere> {
        let _ = (revision, limit);
        None
    }
}

/// Changes this process committed, in revision order with no gap, starting right after the
/// revision asked for.
pub struct CommittedHere {
    pub events: Vec<ChangeEvent>,
    /// Whether the change log may hold more after them: a newer revision was announced, or
    /// `limit` cut the run short.
    pub more: bool,
}
