//! Storage backends (memory, SQLite, PostgreSQL), each implementing every port of
//! `core::ports`, and the read cache, a write-through component in front of any of them.

pub mod cached;
mod change;
mod deployment_rows;
mod document_tables;
mod instance_rows;
pub mod memory;
pub mod postgres;
pub mod sqlite;

pub use cached::CachedStore;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Database integers are signed; versions and revisions never come near the limit.
/// Runs one batch's transaction (group commit) in its span and records how long it took and
/// how many writes it carried; `writers` are the writes' `store.commit` spans.
pub(crate) async fn commit_observed<T>(
    system: &'static str,
    writers: Vec<tracing::Span>,
    transaction: impl std::future::Future<Output = T>,
) -> T {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let done = transaction.instrument(batch_span(system, &writers)).await;
    metrics::histogram!("summit_commit_duration_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("summit_commit_batch_size").record(writers.len() as f64);
    done
}

/// The span a batch's transaction runs in: under the first write's `store.commit` span (so a
/// lone write's trace shows its transaction), linked from the others'. Disabled when tracing
/// is off.
fn batch_span(system: &'static str, writers: &[tracing::Span]) -> tracing::Span {
    let Some((first, others)) = writers.split_first() else {
        return tracing::Span::none();
    };
    let span = tracing::debug_span!(
        parent: first,
        "store.transaction",
        db.system = system,
        batch_size = writers.len()
    );
    for other in others {
        span.follows_from(other);
    }
    span
}

/// The span a queued write's batch is to be linked to (none when tracing is off).
pub(crate) fn writer_span() -> tracing::Span {
    if crate::telemetry::tracing_enabled() {
        tracing::Span::current()
    } else {
        tracing::Span::none()
    }
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
