//! Writes with PostgreSQL's fsync on: versions/s from 1 and from 16 concurrent writers, and the
//! CPU each version costs the server, PostgreSQL and the load generator. Concurrent writes are
//! committed together (group commit, `src/store/postgres/commit.rs`), so 16 writers should share
//! each fsync instead of queueing for their own.

use std::net::SocketAddr;

use super::support::{self, cpu};
use super::{Options, Server, WriteRun, postgres, write_many};

/// Writer counts compared.
pub const WRITER_COUNTS: [usize; 2] = [1, 16];

pub struct FsyncRun {
    /// The round (from 1) this run belongs to: each round runs every writer count once.
    pub round: usize,
    pub writers: usize,
    pub writes: WriteRun,
    /// CPU microseconds per version: (server, PostgreSQL, load generator).
    pub cpu_per_version: (f64, f64, f64),
    /// The server's commits during the run: (writes per commit, milliseconds per commit), from
    /// its `summit_commit_batch_size` and `summit_commit_duration_seconds` histograms.
    pub commits: (f64, f64),
    /// Share of the changes the server's follower took up from memory rather than reading
    /// them back from the change log, from its `summit_follower_changes_total`.
    pub from_memory: f64,
}

/// The server's commit histograms so far: (commits, writes committed, seconds committing,
/// changes its follower took from memory, from the change log).
async fn commits_now(addr: SocketAddr) -> (f64, f64, f64, f64, f64) {
    let mut sender = support::connect(addr).await;
    let (status, body) = support::send(&mut sender, "GET", "/metrics", Default::default()).await;
    assert_eq!(status, 200, "GET /metrics");
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    (
        value("summit_commit_batch_size_count"),
        value("summit_commit_batch_size_sum"),
        value("summit_commit_duration_seconds_sum"),
        value("summit_follower_changes_total{source=\"memory\"}"),
        value("summit_follower_changes_total{source=\"change_log\"}"),
    )
}

/// CPU seconds so far of (server, PostgreSQL, this process).
fn cpu_now(server: &Server, postmaster: u32) -> (f64, f64, f64) {
    (
        cpu::process_seconds(server.child.id()),
        cpu::family_seconds(postmaster),
        cpu::process_seconds(std::process::id()),
    )
}

/// On a fresh database of `cluster` with fsync on: one pass creating every config, then
/// `opts.fsync_rounds` rounds of `opts.writes` versions from each writer count in
/// `WRITER_COUNTS` in turn, so that a slow spell of the machine falls on both counts alike.
pub async fn fsync_writes(cluster: &postgres::PgCluster, opts: &Options) -> Vec<FsyncRun> {
    let url = cluster.new_database().await;
    support::fsync_on(&url).await;
    let postmaster = support::postmaster(&url).await;
    let mut server = Server::spawn(&url, false);
    server.wait_until_up().await;
    write_many(server.addr, 16, opts.ids, opts.ids, 0).await;
    let mut runs = Vec::new();
    let phases = (1..=opts.fsync_rounds).flat_map(|round| WRITER_COUNTS.map(|w| (round, w)));
    for (phase, (round, writers)) in phases.enumerate() {
        let committed_before = commits_now(server.addr).await;
        let before = cpu_now(&server, postmaster);
        let generation = (phase + 1) * opts.writes;
        let writes = write_many(server.addr, writers, opts.writes, opts.ids, generation).await;
        let after = cpu_now(&server, postmaster);
        let committed_after = commits_now(server.addr).await;
        let per_version = |from: f64, to: f64| (to - from) * 1e6 / opts.writes as f64;
        let commits = (committed_after.0 - committed_before.0).max(1.0);
        runs.push(FsyncRun {
            round,
            writers,
            writes,
            cpu_per_version: (
                per_version(before.0, after.0),
                per_version(before.1, after.1),
                per_version(before.2, after.2),
            ),
            commits: (
                (committed_after.1 - committed_before.1) / commits,
                (committed_after.2 - committed_before.2) * 1e3 / commits,
            ),
            from_memory: {
                let memory = committed_after.3 - committed_before.3;
                let change_log = committed_after.4 - committed_before.4;
                memory / (memory + change_log).max(1.0)
            },
        });
    }
    server.stop();
    runs
}
