//! When a scheduled rotation that failed is tried again. A failure that repeats (a value the
//! policy can no longer fit, a generator's error, a store that refuses writes) is tried again
//! after `FIRST_WAIT`, then after twice as long each time up to `LONGEST_WAIT`, instead of at
//! every scheduler tick (each second by default, each try a warning and a failure counted). A
//! new version of the secret, an operator's fix, is tried at once. Kept in memory by the
//! replica holding the duties lease: a new holder tries every due rotation once.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

use crate::core::ids::SecretName;

const FIRST_WAIT: Duration = Duration::seconds(10);
const LONGEST_WAIT: Duration = Duration::minutes(15);

#[derive(Default)]
pub(super) struct FailedRotations(Mutex<HashMap<SecretName, Failed>>);

struct Failed {
    /// The secret's newest version when its rotation failed.
    version: u64,
    retry_at: DateTime<Utc>,
    /// How long the last failure waits; the next one waits twice as long.
    wait: Duration,
}

impl FailedRotations {
    /// Whether the rotation of `name`, whose newest version is `version`, waits at `now`
    /// after an earlier failure.
    pub(super) fn waits(&self, name: &SecretName, version: u64, now: DateTime<Utc>) -> bool {
        self.0
            .lock()
            .get(name)
            .is_some_and(|failed| failed.version == version && now < failed.retry_at)
    }

    /// Records that the rotation failed at `now`; how long until it is tried again.
    pub(super) fn failed(&self, name: &SecretName, version: u64, now: DateTime<Utc>) -> Duration {
        let mut failures = self.0.lock();
        let wait = match failures.get(name) {
            Some(failed) if failed.version == version => (failed.wait * 2).min(LONGEST_WAIT),
            _ => FIRST_WAIT,
        };
        failures.insert(
            name.clone(),
            Failed {
                version,
                retry_at: now + wait,
                wait,
            },
        );
        wait
    }

    /// The rotation went through (or needs none now): the next failure starts afresh.
    pub(super) fn forget(&self, name: &SecretName) {
        self.0.lock().remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_that_repeats_waits_twice_as_long_each_time_and_a_new_version_at_once() {
        let failures = FailedRotations::default();
        let name = SecretName::parse("db-password").unwrap();
        let start = Utc::now();
        assert!(!failures.waits(&name, 3, start));

        assert_eq!(failures.failed(&name, 3, start), FIRST_WAIT);
        assert!(failures.waits(&name, 3, start + FIRST_WAIT - Duration::seconds(1)));
        assert!(!failures.waits(&name, 3, start + FIRST_WAIT));
        // An operator wrote version 4: tried at once.
        assert!(!failures.waits(&name, 4, start));

        let mut at = start + FIRST_WAIT;
        let mut waits = Vec::new();
        for _ in 0..10 {
            let wait = failures.failed(&name, 3, at);
            waits.push(wait.num_seconds());
            at += wait;
        }
        assert_eq!(waits[..7], [20, 40, 80, 160, 320, 640, 900]);
        assert!(waits[7..].iter().all(|&secs| secs == 900), "{waits:?}");

        // Version 4 fails afresh; a success forgets it.
        assert_eq!(failures.failed(&name, 4, at), FIRST_WAIT);
        failures.forget(&name);
        assert!(!failures.waits(&name, 4, at));
    }
}
