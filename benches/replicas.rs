//! Replicas benchmark: summit-config on PostgreSQL (release binary, separate processes, a
//! throwaway cluster started by the test harness) against the same binary on SQLite. Measures
//!   1. writes: versions/s and latency with 16 concurrent writers (one keep-alive connection
//!      each, about 2 KB configs over 1,000 ids): PostgreSQL with one replica, PostgreSQL with a
//!      second replica following, and SQLite;
//!   2. propagation: two replicas A and B on one database, a watch stream open on each;
//!      sequential writes through A, about 20 ms apart; for each, the time from A's 201 until
//!      B's stream (and, for comparison, A's own stream) delivers the event;
//!   3. cached reads: closed loop, 64 connections, effective reads spread over the 1,000
//!      configs, replica A against the SQLite server, alternating rounds;
//!   4. start-up with 10,000 configs: wall time from spawn until the port accepts connections,
//!      and the `millis` the server logs for "read cache loaded";
//!   5. group commit: with fsync turned on in the cluster, versions/s from 1 and from 16
//!      writers, alternating in rounds, and CPU per version of the server, PostgreSQL and the
//!      load generator.
//!
//! `cargo bench --bench replicas` (about 2 minutes; `-- --quick` for a smoke run with smaller
//! counts; `-- --fsync-only` for case 5 alone; `--writes N` for N versions a run instead of 4,000,
//! long enough to profile; `--rounds R` for case 5's rounds, 3 by default). Without PostgreSQL
//! server binaries it says so and exits 0. Not a test: it asserts nothing about speed and prints
//! a Markdown table for docs/performance.md.

#[path = "replicas/fsync_writes.rs"]
mod fsync_writes;
mod support;

use support::{
    config_body, connect, free_port, max_throughput, median, ms, percentile, request, send,
};

#[allow(dead_code)]
#[path = "../tests/it/common/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::Connection;

const WRITERS: usize = 16;
const READ_CONNECTIONS: usize = 64;
const ROUNDS: usize = 5;

struct Options {
    quick: bool,
    /// Only case 5 (writes with fsync on).
    fsync_only: bool,
    /// Writes per throughput run, spread over `ids` config ids (every id is written: reads
    /// and propagation use them all).
    writes: usize,
    ids: usize,
    /// Sequential writes in the propagation run and the pause between them.
    propagation_writes: usize,
    pace: Duration,
    read_window: Duration,
    startup_configs: usize,
    startup_runs: usize,
    /// Rounds of case 5, each writing from every writer count in turn.
    fsync_rounds: usize,
}

fn options() -> Options {
    let quick = std::env::args().any(|a| a == "--quick");
    let fsync_only = std::env::args().any(|a| a == "--fsync-only");
    if quick {
        Options {
            quick,
            fsync_only,
            writes: 1_000,
            ids: 1_000,
            propagation_writes: 100,
            pace: Duration::from_millis(20),
            read_window: Duration::from_millis(500),
            startup_configs: 2_000,
            startup_runs: 1,
            fsync_rounds: 1,
        }
    } else {
        Options {
            quick,
            fsync_only,
            writes: support::arg("--writes", 4_000) as usize,
            ids: 1_000,
            propagation_writes: 500,
            pace: Duration::from_millis(20),
            read_window: Duration::from_secs(2),
            startup_configs: 10_000,
            startup_runs: 3,
            fsync_rounds: support::arg("--rounds", 3).max(1) as usize,
        }
    }
}

fn config_id(i: usize) -> String {
    format!("cfg-{i:05}")
}

/// A summit-config process. Killed when dropped; `stop` asks it to finish (SIGTERM) first.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// The JSON log lines on stdout, when started with logs.
    logs: Option<tokio::sync::mpsc::UnboundedReceiver<Value>>,
}

impl Server {
    /// Starts the release binary on `database_url`; with `logs`, at info level as JSON lines
    /// read from stdout, else at warn level with stdout discarded.
    fn spawn(database_url: &str, logs: bool) -> Server {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut command = Command::new(env!("CARGO_BIN_EXE_summit-config"));
        command
            .env("SUMMIT_HTTP_ADDR", addr.to_string())
            .env("SUMMIT_NO_AUTH", "true")
            .env("SUMMIT_GRPC_ADDR", "127.0.0.1:0")
            .env("SUMMIT_DATABASE_URL", database_url)
            .stdin(Stdio::null());
        if logs {
            command
                .env("SUMMIT_LOG", "info")
                .env("SUMMIT_LOG_FORMAT", "json")
                .stdout(Stdio::piped());
        } else {
            command.env("SUMMIT_LOG", "warn").stdout(Stdio::null());
        }
        let mut child = command.spawn().expect("start summit-config");
        let logs = child.stdout.take().map(|stdout| {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if let Ok(value) = serde_json::from_str::<Value>(&line) {
                        let _ = sender.send(value);
                    }
                }
            });
            receiver
        });
        Server { child, addr, logs }
    }

    /// Polls (every millisecond) until the port accepts a connection.
    async fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("summit-config on {} exited: {status}", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("summit-config on {} did not come up", self.addr);
    }

    /// The first log line with this message (fields flattened, or under `fields`).
    async fn log_line(&mut self, message: &str) -> Option<Value> {
        let logs = self.logs.as_mut()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let line = tokio::time::timeout_at(deadline, logs.recv())
                .await
                .ok()??;
            let fields = line.get("fields").cloned().unwrap_or(line);
            if fields["message"] == message {
                return Some(fields);
            }
        }
    }

    /// SIGTERM, then waits (up to 10 s) for a graceful exit; killed otherwise.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `values` with `digits` decimals, comma-separated.
fn listed(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct WriteRun {
    rate: f64,
    latencies: Vec<Duration>,
}

impl WriteRun {
    fn figure(&self) -> String {
        format!(
            "{:.0} versions/s, p50 {}, p99 {}",
            self.rate,
            ms(percentile(&self.latencies, 0.5)),
            ms(percentile(&self.latencies, 0.99))
        )
    }
}

/// `total` writes from `writers` connections (opened before the clock starts), write `n` to
/// config `n % ids` with a body of generation `generation + n`.
async fn write_many(
    addr: SocketAddr,
    writers: usize,
    total: usize,
    ids: usize,
    generation: usize,
) -> WriteRun {
    let mut senders = Vec::new();
    for _ in 0..writers {
        senders.push(connect(addr).await);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks = senders.into_iter().map(|mut sender| {
        let next = next.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return latencies;
                }
                let i = n % ids;
                let body =
                    Bytes::from(serde_json::to_vec(&config_body(i, generation + n)).unwrap());
                let path = format!("/api/v1/configs/{}", config_id(i));
                let t = Instant::now();
                let (status, text) = send(&mut sender, "PUT", &path, body).await;
                latencies.push(t.elapsed());
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&text));
            }
        })
    });
    let mut latencies = Vec::new();
    for task in futures::future::join_all(tasks).await {
        latencies.extend(task.unwrap());
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    WriteRun { rate, latencies }
}

type Arrivals = Arc<Mutex<HashMap<(String, u64), Instant>>>;

/// Opens `GET /api/v1/watch` and records, for each event, when the frame carrying it arrived,
/// keyed by (configId, version). Returns once the stream is open (the server subscribes before
/// it answers); abort the task to close it.
async fn open_watch(addr: SocketAddr) -> (tokio::task::JoinHandle<()>, Arrivals) {
    let mut sender = connect(addr).await;
    sender.ready().await.unwrap();
    let mut watch = request("GET", "/api/v1/watch", Bytes::new());
    watch
        .headers_mut()
        .insert("accept", "text/event-stream".parse().unwrap());
    let response = sender.send_request(watch).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "watch on {addr}");
    let arrivals: Arrivals = Arc::default();
    let task = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let _sender = sender; // keeps the connection's client half alive
            let mut body = response.into_body();
            let mut buffer = String::new();
            while let Some(Ok(frame)) = body.frame().await {
                let arrived = Instant::now();
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buffer.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let data: String = block
                        .lines()
                        .filter_map(|line| line.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    let Ok(event) = serde_json::from_str::<Value>(&data) else {
                        continue;
                    };
                    if let (Some(id), Some(version)) =
                        (event["configId"].as_str(), event["version"].as_u64())
                    {
                        arrivals
                            .lock()
                            .unwrap()
                            .entry((id.to_owned(), version))
                            .or_insert(arrived);
                    }
                }
            }
        })
    };
    (task, arrivals)
}

/// Signed milliseconds from each acknowledgement to the event's arrival on a stream (negative:
/// the event came before the 201), sorted; and how many never arrived.
fn delays(acks: &[((String, u64), Instant)], arrivals: &Arrivals) -> (Vec<f64>, usize) {
    let arrivals = arrivals.lock().unwrap();
    let mut delays = Vec::new();
    let mut missing = 0;
    for (key, acked) in acks {
        match arrivals.get(key) {
            Some(&arrived) if arrived >= *acked => {
                delays.push((arrived - *acked).as_secs_f64() * 1e3);
            }
            Some(&arrived) => delays.push(-(*acked - arrived).as_secs_f64() * 1e3),
            None => missing += 1,
        }
    }
    delays.sort_by(f64::total_cmp);
    (delays, missing)
}

struct Propagation {
    remote: Vec<f64>,
    remote_missing: usize,
    local: Vec<f64>,
    local_missing: usize,
}

/// Sequential writes through `a`, paced `pace` apart, with a watch open on `a` and on `b`.
async fn propagation(a: SocketAddr, b: SocketAddr, opts: &Options) -> Propagation {
    let (remote_task, remote) = open_watch(b).await;
    let (local_task, local) = open_watch(a).await;
    let mut writer = connect(a).await;
    let mut acks = Vec::new();
    let start = tokio::time::Instant::now();
    for n in 0..opts.propagation_writes {
        tokio::time::sleep_until(start + opts.pace * n as u32).await;
        let i = (n * 37) % opts.ids;
        let id = config_id(i);
        let body = Bytes::from(serde_json::to_vec(&config_body(i, 1_000_000 + n)).unwrap());
        writer.ready().await.unwrap();
        let response = writer
            .send_request(request("PUT", &format!("/api/v1/configs/{id}"), body))
            .await
            .unwrap();
        let acked = Instant::now();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let created: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(created["configId"], id.as_str());
        acks.push(((id, created["version"].as_u64().unwrap()), acked));
    }
    // Stragglers: the replica polls the change log every second even without a notification.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && [&remote, &local].iter().any(|arrivals| {
            acks.iter()
                .any(|(key, _)| !arrivals.lock().unwrap().contains_key(key))
        })
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    remote_task.abort();
    local_task.abort();
    let (remote, remote_missing) = delays(&acks, &remote);
    let (local, local_missing) = delays(&acks, &local);
    Propagation {
        remote,
        remote_missing,
        local,
        local_missing,
    }
}

/// Effective production reads spread over every config and 8,192 assignment keys.
fn read_paths(ids: usize) -> Arc<Vec<String>> {
    Arc::new(
        (0..8192)
            .map(|n| {
                let id = config_id((n * 7919) % ids);
                format!(
                    "/api/v1/configs/{id}/effective?environment=production&assignmentKey=user-{n}"
                )
            })
            .collect(),
    )
}

/// One fresh start: (wall time from spawn until the port accepts, logged cache-load millis,
/// logged config count).
async fn start_up(database_url: &str) -> (Duration, u64, u64) {
    let spawned = Instant::now();
    let mut server = Server::spawn(database_url, true);
    server.wait_until_up().await;
    let wall = spawned.elapsed();
    let loaded = server
        .log_line("read cache loaded")
        .await
        .expect("the server logs \"read cache loaded\"");
    let millis = loaded["millis"].as_u64().unwrap_or_default();
    let configs = loaded["configs"].as_u64().unwrap_or_default();
    server.stop();
    (wall, millis, configs)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `--list` probes: nothing to run.
    }
    // The harness panics without PostgreSQL when CI is set; a benchmark skips instead.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::remove_var("CI") };
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(opts));
}

async fn run(opts: Options) {
    let Some(cluster) = postgres::PgCluster::dedicated().await else {
        println!(
            "replicas benchmark: no PostgreSQL server binaries found (PG_BIN, \
             /usr/lib/postgresql/*/bin or `pg_config --bindir`); nothing measured."
        );
        return;
    };
    if opts.fsync_only {
        let runs = fsync_writes::fsync_writes(&cluster, &opts).await;
        print_fsync_writes(&runs, &opts);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pg_url = cluster.new_database().await;
    let pg_version: String = {
        let mut connection = sqlx::PgConnection::connect(&pg_url).await.unwrap();
        sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    };
    let sqlite_url = format!("sqlite://{}/bench.db", dir.path().display());
    eprintln!("replicas: PostgreSQL {pg_version}; writes");

    // 1. Writes: PostgreSQL with one replica, SQLite, then PostgreSQL with B following.
    let mut a = Server::spawn(&pg_url, false);
    let mut sqlite = Server::spawn(&sqlite_url, false);
    a.wait_until_up().await;
    sqlite.wait_until_up().await;
    let pg_writes = write_many(a.addr, WRITERS, opts.writes, opts.ids, 0).await;
    let sqlite_writes = write_many(sqlite.addr, WRITERS, opts.writes, opts.ids, 0).await;
    let mut b = Server::spawn(&pg_url, false);
    b.wait_until_up().await;
    let pg_writes_followed = write_many(a.addr, WRITERS, opts.writes, opts.ids, opts.writes).await;

    // 2. Propagation A → B.
    eprintln!("replicas: propagation");
    let propagation = propagation(a.addr, b.addr, &opts).await;

    // 3. Cached reads, alternating which server goes first.
    eprintln!("replicas: reads");
    let paths = read_paths(opts.ids);
    let rounds = if opts.quick { 3 } else { ROUNDS };
    let (mut pg_reads, mut sqlite_reads, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut pair = [(a.addr, 0.0), (sqlite.addr, 0.0)];
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            pair[k].1 =
                max_throughput(pair[k].0, paths.clone(), READ_CONNECTIONS, opts.read_window).await;
        }
        pg_reads.push(pair[0].1);
        sqlite_reads.push(pair[1].1);
        ratios.push(pair[0].1 / pair[1].1);
    }
    b.stop();
    a.stop();
    sqlite.stop();

    // 4. Start-up with many configs: load both stores, then time fresh starts.
    eprintln!("replicas: start-up ({} configs)", opts.startup_configs);
    let pg_big = cluster.new_database().await;
    let sqlite_big = format!("sqlite://{}/big.db", dir.path().display());
    let mut pg_load = WriteRun {
        rate: 0.0,
        latencies: Vec::new(),
    };
    let mut sqlite_load = WriteRun {
        rate: 0.0,
        latencies: Vec::new(),
    };
    for (url, load) in [(&pg_big, &mut pg_load), (&sqlite_big, &mut sqlite_load)] {
        let mut loader = Server::spawn(url, false);
        loader.wait_until_up().await;
        *load = write_many(
            loader.addr,
            WRITERS,
            opts.startup_configs,
            opts.startup_configs,
            0,
        )
        .await;
        loader.stop();
    }
    let (mut pg_starts, mut sqlite_starts) = (Vec::new(), Vec::new());
    for run in 0..opts.startup_runs {
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            if k == 0 {
                pg_starts.push(start_up(&pg_big).await);
            } else {
                sqlite_starts.push(start_up(&sqlite_big).await);
            }
        }
    }
    // 5. Group commit: last, since it turns fsync on for the whole cluster.
    eprintln!("replicas: writes with fsync on");
    let fsync_runs = fsync_writes::fsync_writes(&cluster, &opts).await;
    drop(cluster);

    let ids = opts.ids;
    println!(
        "\n### replicas (PostgreSQL {pg_version}, local cluster with fsync=off, synchronous_commit=off; SQLite WAL, synchronous=FULL{})\n",
        if opts.quick { "; --quick" } else { "" }
    );
    println!("| measure | figure |\n|---|---|");
    let writes = opts.writes;
    println!(
        "| writes, PostgreSQL, {WRITERS} writers, one replica ({writes} × 2 KB over {ids} ids) | {} |",
        pg_writes.figure()
    );
    println!(
        "| writes, PostgreSQL, {WRITERS} writers, a second replica following | {} |",
        pg_writes_followed.figure()
    );
    println!(
        "| writes, SQLite, {WRITERS} writers | {} |",
        sqlite_writes.figure()
    );
    let sent = opts.propagation_writes;
    let pace = opts.pace.as_millis();
    for (who, delays, missing) in [
        (
            "propagation: 201 from A → event on B's watch",
            &propagation.remote,
            propagation.remote_missing,
        ),
        (
            "local delivery: 201 from A → event on A's watch",
            &propagation.local,
            propagation.local_missing,
        ),
    ] {
        let early = delays.iter().filter(|d| **d < 0.0).count();
        println!(
            "| {who} ({sent} writes {pace} ms apart) | p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {early} of {} before the 201{} |",
            percentile(delays, 0.5),
            percentile(delays, 0.99),
            percentile(delays, 1.0),
            delays.len(),
            if missing > 0 {
                format!("; **{missing} never arrived**")
            } else {
                String::new()
            }
        );
    }
    let (pg_rps, sqlite_rps) = (median(pg_reads.clone()), median(sqlite_reads.clone()));
    let range = |values: &[f64]| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        (sorted[0], sorted[sorted.len() - 1])
    };
    let (pg_low, pg_high) = range(&pg_reads);
    let (sqlite_low, sqlite_high) = range(&sqlite_reads);
    let (ratio_low, ratio_high) = range(&ratios);
    println!(
        "| reads, replica A (PostgreSQL), {READ_CONNECTIONS} conns, {ids} configs × 8,192 keys | {pg_rps:.0} req/s (median of {rounds} rounds; range {pg_low:.0}–{pg_high:.0}) |"
    );
    println!(
        "| reads, SQLite, {READ_CONNECTIONS} conns, same mix | {sqlite_rps:.0} req/s (range {sqlite_low:.0}–{sqlite_high:.0}) |"
    );
    println!(
        "| reads, PostgreSQL / SQLite | **{:.1}%** (ratio of medians; per-round ratios {:.1}–{:.1}%) |",
        100.0 * pg_rps / sqlite_rps,
        100.0 * ratio_low,
        100.0 * ratio_high
    );
    let configs = opts.startup_configs;
    for (who, load, starts) in [
        ("PostgreSQL", &pg_load, &pg_starts),
        ("SQLite", &sqlite_load, &sqlite_starts),
    ] {
        let walls: Vec<f64> = starts.iter().map(|s| s.0.as_secs_f64() * 1e3).collect();
        let loads: Vec<f64> = starts.iter().map(|s| s.1 as f64).collect();
        let cached = starts.iter().map(|s| s.2).min().unwrap_or_default();
        println!(
            "| start-up, {who}, {configs} configs (loaded at {:.0} versions/s) | **{:.0} ms** spawn → accepting (runs: {}); read cache loaded in {:.0} ms (runs: {}; {cached} configs cached) |",
            load.rate,
            median(walls.clone()),
            listed(&walls, 0),
            median(loads.clone()),
            listed(&loads, 0),
        );
    }
    print_fsync_writes(&fsync_runs, &opts);
}

/// Case 5 as its own table: the cluster's settings differ from the other cases'.
fn print_fsync_writes(runs: &[fsync_writes::FsyncRun], opts: &Options) {
    println!(
        "\n### writes with fsync on (fsync=on, synchronous_commit=on, full_page_writes=on{})\n",
        if opts.quick { "; --quick" } else { "" }
    );
    println!(
        "| writers | versions/s ({} × 2 KB over {} ids) | CPU per version: server / PostgreSQL / load generator | commits: writes per commit, time per commit | changes the follower took from memory |\n|---|---|---|---|---|",
        opts.writes, opts.ids
    );
    for run in runs {
        let (server, database, bench) = run.cpu_per_version;
        let (batch, commit_ms) = run.commits;
        println!(
            "| {}, round {} | {} | {server:.0} µs / {database:.0} µs / {bench:.0} µs | {batch:.1}, {commit_ms:.2} ms | {:.0}% |",
            run.writers,
            run.round,
            run.writes.figure(),
            run.from_memory * 100.0
        );
    }
    // Each round's ratio compares the two writer counts of the same minute.
    let [one, many] = fsync_writes::WRITER_COUNTS;
    let rate = |round: usize, writers: usize| {
        runs.iter()
            .find(|run| run.round == round && run.writers == writers)
            .map(|run| run.writes.rate)
    };
    let rounds: Vec<(f64, f64)> = (1..=opts.fsync_rounds)
        .filter_map(|round| Some((rate(round, one)?, rate(round, many)?)))
        .collect();
    if rounds.is_empty() {
        return;
    }
    let ratios: Vec<f64> = rounds.iter().map(|(o, m)| m / o).collect();
    let many_rates: Vec<f64> = rounds.iter().map(|(_, m)| *m).collect();
    println!(
        "\n{many} writers reach **{:.1}×** the versions/s of {one} (median of {} rounds' ratios: {}) and **{:.0} versions/s** (median; rounds: {}).",
        median(ratios.clone()),
        ratios.len(),
        listed(&ratios, 1),
        median(many_rates.clone()),
        listed(&many_rates, 0),
    );
}
