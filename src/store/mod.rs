//! Storage backends (memory, SQLite, PostgreSQL), each implementing every port of
//! `core::ports`, and the read cache, a write-through component in front of any of them.

use chrono::{DateTime, Utc};

use crate::core::events::{ChangeEvent, ChangeKind};
use crate::core::model::AuditDraft;

pub mod cached;
mod deployment_rows;
mod instance_rows;
pub mod memory;
pub mod postgres;
pub mod sqlite;

pub use cached::CachedStore;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Database integers are signed; versions and revisions never come near the limit.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The change event a committed write produces.
pub(crate) fn change_event(
    revision: u64,
    kind: ChangeKind,
    subject: &str,
    version: u64,
    checksum: &str,
    audit: &AuditDraft,
    at: DateTime<Utc>,
) -> ChangeEvent {
    ChangeEvent {
        revision,
        kind,
        config_id: subject.to_owned(),
        version,
        checksum: checksum.to_owned(),
        actor: audit.actor.clone(),
        message: audit.message.clone(),
        at,
        environments: audit.environments.clone(),
        details: audit.details.clone(),
    }
}
