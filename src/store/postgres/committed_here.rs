//! The changes this replica committed, kept in memory until its follower has applied them, so
//! the follower does not read its own writes back from the change log (a query and every
//! change's details parsed again, per commit).
//!
//! The committer adds a batch's changes once its transaction has committed. Revisions are
//! gap-free and committed in order under the write lock, so a change kept here for revision
//! N + 1 is exactly the change log's row N + 1, and the follower at revision N may take the
//! run that follows it. Anything else (a revision committed by another replica, a commit whose
//! outcome this replica never learnt) is not here, and the follower reads the change log.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::core::events::ChangeEvent;
use crate::core::ports::CommittedHere;

/// Changes kept at most; past this the oldest go (the follower then reads the change log).
/// The follower takes them within milliseconds; this bounds the memory of one that is stuck
/// (a change's patch is at most `MAX_PATCH_BYTES`, so about 16 MiB of patches at most).
const CAPACITY: usize = 1024;
/// Longest a follower waits for a commit in flight to settle before it reads the change log.
const SETTLE_WAIT: Duration = Duration::from_millis(250);

#[derive(Default)]
pub(super) struct CommittedLog {
    kept: Mutex<VecDeque<ChangeEvent>>,
    /// A batch is being committed: its changes may be announced before they are kept here.
    committing: AtomicBool,
    /// Told when a batch has settled (committed and kept, or failed).
    settled: Notify,
    /// The newest revision announced on the changes channel (by any replica).
    announced: AtomicU64,
}

impl CommittedLog {
    /// A batch starts: a follower woken by its announcement waits for `settle`.
    pub(super) fn begin(&self) {
        self.committing.store(true, Ordering::Release);
    }

    /// Keeps the changes of a committed batch, in revision order.
    pub(super) fn keep(&self, mut events: Vec<ChangeEvent>) {
        events.sort_unstable_by_key(|event| event.revision);
        let mut kept = self.kept.lock();
        kept.extend(events);
        let excess = kept.len().saturating_sub(CAPACITY);
        kept.drain(..excess);
    }

    /// The batch has settled, whatever its outcome.
    pub(super) fn settle(&self) {
        self.committing.store(false, Ordering::Release);
        self.settled.notify_waiters();
    }

    /// A revision announced on the changes channel.
    pub(super) fn announced(&self, revision: u64) {
        self.announced.fetch_max(revision, Ordering::AcqRel);
    }

    /// The kept changes right after `revision` (see `Database::committed_here`); waits for a
    /// batch in flight to settle first when they are not kept yet.
    pub(super) async fn after(&self, revision: u64, limit: u32) -> Option<CommittedHere> {
        if let Some(here) = self.take(revision, limit) {
            return Some(here);
        }
        let settled = self.settled.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        if self.committing.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(SETTLE_WAIT, settled).await;
        }
        self.take(revision, limit)
    }

    /// Removes and returns the run of kept changes from `revision + 1` on, if it starts there;
    /// forgets the changes up to `revision` either way.
    fn take(&self, revision: u64, limit: u32) -> Option<CommittedHere> {
        let mut kept = self.kept.lock();
        let applied = kept.partition_point(|event| event.revision <= revision);
        kept.drain(..applied);
        if kept.front()?.revision != revision + 1 {
            return None;
        }
        let run = kept
            .iter()
            .zip(revision + 1..)
            .take(limit as usize)
            .take_while(|(event, expected)| event.revision == *expected)
            .count();
        let events: Vec<ChangeEvent> = kept.drain(..run).collect();
        let last = events.last().map_or(revision, |event| event.revision);
        let more = events.len() == limit as usize
            || self.announced.load(Ordering::Acquire) > last
            || kept.front().is_some();
        Some(CommittedHere { events, more })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::kind;

    fn event(revision: u64) -> ChangeEvent {
        ChangeEvent {
            revision,
            kind: kind::CONFIG_UPDATED,
            config_id: format!("c{revision}"),
            version: 1,
            checksum: String::new(),
            actor: "a".into(),
            message: None,
            at: chrono::DateTime::UNIX_EPOCH,
            environments: Default::default(),
            details: Default::default(),
        }
    }

    fn revisions(here: &CommittedHere) -> Vec<u64> {
        here.events.iter().map(|event| event.revision).collect()
    }

    #[tokio::test]
    async fn only_the_run_right_after_the_revision_is_taken() {
        let log = CommittedLog::default();
        log.keep(vec![event(13), event(11), event(12)]);
        log.keep(vec![event(15)]); // 14 committed elsewhere
        assert!(log.after(9, 100).await.is_none(), "10 is not kept");
        let here = log.after(10, 100).await.expect("11 is kept");
        assert_eq!(revisions(&here), [11, 12, 13]);
        assert!(here.more, "15 is kept after a gap");
        assert!(log.after(13, 100).await.is_none(), "14 is not kept");
        let here = log.after(14, 100).await.expect("15 is kept");
        assert_eq!(revisions(&here), [15]);
        assert!(!here.more);
    }

    #[tokio::test]
    async fn a_newer_announcement_or_the_limit_says_there_is_more() {
        let log = CommittedLog::default();
        log.keep(vec![event(1), event(2), event(3)]);
        let here = log.after(0, 2).await.expect("kept");
        assert_eq!(revisions(&here), [1, 2]);
        assert!(here.more);
        log.announced(4);
        let here = log.after(2, 100).await.expect("kept");
        assert_eq!(revisions(&here), [3]);
        assert!(here.more, "4 was announced");
    }

    #[tokio::test]
    async fn a_follower_woken_during_a_commit_waits_for_it_to_settle() {
        let log = std::sync::Arc::new(CommittedLog::default());
        log.begin();
        let committer = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            committer.keep(vec![event(1)]);
            committer.settle();
        });
        let here = log.after(0, 10).await.expect("kept once settled");
        assert_eq!(revisions(&here), [1]);
    }

    #[test]
    fn past_its_capacity_the_oldest_changes_go() {
        let log = CommittedLog::default();
        log.keep((1..=CAPACITY as u64 + 10).map(event).collect());
        assert!(log.take(0, 10).is_none());
        assert_eq!(revisions(&log.take(10, 1).expect("kept")), [11]);
    }
}
