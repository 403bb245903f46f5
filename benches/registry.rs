//! Registry benchmark: the real server (release binary, its own process, access control off)
//! with 10,000 instances in 100 services, each heartbeating every 5 s: 2,000 heartbeats a
//! second, open loop (each heartbeat is sent at its scheduled time; latency counts from that
//! time, so a server that falls behind is charged for the queue). Measured on one SQLite node
//! and on two replicas on one PostgreSQL database (fsync on; heartbeats spread over both):
//!   1. heartbeats alone: p50, p99 and max latency, the rate reached, and the server's CPU per
//!      heartbeat;
//!   2. discovery alone: closed loop, 64 connections over the 100 services, requests/s and the
//!      server's CPU per read;
//!   3. both at once: the heartbeats with discovery reads at a fixed rate (open loop,
//!      `--mixed-reads`, default 5,000/s): heartbeat p99 and discovery p99.
//!
//! `cargo bench --bench registry` (about 2 minutes; options `-- --seconds 20` per heartbeat run,
//! `--instances 10000`, `--period-ms 5000`, `--mixed-reads 5000`). Not a test: it asserts nothing about speed and prints
//! a Markdown table for docs/performance.md. Without PostgreSQL server binaries the PostgreSQL
//! rows are skipped.

mod support;

#[allow(dead_code)]
#[path = "../tests/it/common/postgres.rs"]
mod postgres;

use support::{Server, connect, free_port, max_throughput, ms, percentile, send, wait_until_up};

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;

const SERVICES: usize = 100;
const HEARTBEAT_CONNECTIONS: usize = 64;
const READ_CONNECTIONS: usize = 64;

#[derive(Clone, Copy)]
struct Options {
    seconds: u64,
    instances: usize,
    period: Duration,
    mixed_reads: u64,
}

fn main() {
    if support::is_probe() {
        return;
    }
    // The harness panics without PostgreSQL when CI is set; a benchmark skips instead.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::remove_var("CI") };
    let opts = Options {
        seconds: support::arg("--seconds", 20),
        instances: support::arg("--instances", 10_000) as usize,
        period: Duration::from_millis(support::arg("--period-ms", 5_000)),
        mixed_reads: support::arg("--mixed-reads", 5_000),
    };
    support::runtime().block_on(run(opts));
}

fn service(i: usize) -> String {
    format!("svc-{:03}", i % SERVICES)
}

fn instance(i: usize) -> String {
    format!("i-{i:05}")
}

fn spawn(database_url: &str) -> (Server, SocketAddr) {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_summit-config"))
            .env("SUMMIT_HTTP_ADDR", addr.to_string())
            .env("SUMMIT_NO_AUTH", "true")
            .env("SUMMIT_GRPC_ADDR", "127.0.0.1:0")
            .env("SUMMIT_DATABASE_URL", database_url)
            .env("SUMMIT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start summit-config"),
    );
    (server, addr)
}

/// Registers every instance (TTL 30 s), 8 connections at a time.
async fn register_all(addr: SocketAddr, opts: Options) {
    let tasks = (0..8).map(|w| {
        tokio::spawn(async move {
            let mut sender = connect(addr).await;
            for i in (w..opts.instances).step_by(8) {
                let body = json!({
                    "serviceName": service(i),
                    "instanceId": instance(i),
                    "serviceUrl": format!("http://10.0.{}.{}:8080", i / 250, i % 250),
                    "environment": "production",
                    "weight": 100,
                });
                let (status, answer) = send(
                    &mut sender,
                    "POST",
                    "/api/v1/registry/register",
                    Bytes::from(body.to_string()),
                )
                .await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
}

struct Beats {
    /// Latencies from each heartbeat's scheduled time to its answer.
    latencies: Vec<Duration>,
    rate: f64,
}

/// Every instance heartbeats once per `period` for `seconds`, at evenly spread times; instance
/// `i` is sent by connection `i % HEARTBEAT_CONNECTIONS` to `servers[connection % len]`.
async fn heartbeats(servers: &[SocketAddr], opts: Options) -> Beats {
    let started = tokio::time::Instant::now() + Duration::from_millis(200);
    let end = started + Duration::from_secs(opts.seconds);
    let spacing = opts.period / opts.instances as u32;
    let tasks: Vec<_> = (0..HEARTBEAT_CONNECTIONS)
        .map(|c| {
            let addr = servers[c % servers.len()];
            tokio::spawn(async move {
                let mut sender = connect(addr).await;
                let mut latencies = Vec::new();
                // The k-th heartbeat of this connection: instance c + HEARTBEAT_CONNECTIONS·j.
                let mine: Vec<usize> = (c..opts.instances).step_by(HEARTBEAT_CONNECTIONS).collect();
                let mut round = 0u32;
                'rounds: loop {
                    for &i in &mine {
                        let due = started + opts.period * round + spacing * i as u32;
                        if due >= end {
                            break 'rounds;
                        }
                        tokio::time::sleep_until(due).await;
                        let path = format!(
                            "/api/v1/registry/services/{}/instances/{}/heartbeat",
                            service(i),
                            instance(i)
                        );
                        let (status, answer) = send(&mut sender, "PUT", &path, Bytes::new()).await;
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                        latencies.push(due.elapsed());
                    }
                    round += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in futures::future::join_all(tasks).await {
        latencies.extend(task.unwrap());
    }
    latencies.sort();
    let rate = latencies.len() as f64 / opts.seconds as f64;
    Beats { latencies, rate }
}

/// Closed-loop discovery over every service, spread over `servers`.
async fn discovery(servers: &[SocketAddr], window: Duration) -> f64 {
    let paths: Arc<Vec<String>> = Arc::new(
        (0..SERVICES)
            .map(|s| format!("/api/v1/registry/discover/svc-{s:03}?environment=production"))
            .collect(),
    );
    let runs = servers.iter().map(|&addr| {
        let paths = paths.clone();
        async move { max_throughput(addr, paths, READ_CONNECTIONS / servers.len(), window).await }
    });
    futures::future::join_all(runs).await.into_iter().sum()
}

/// Discovery reads at `rate` per second for `seconds`, evenly spread over `READ_CONNECTIONS`
/// connections and `servers`, open loop; latencies from each read's scheduled time.
async fn paced_discovery(servers: &[SocketAddr], rate: u64, seconds: u64) -> Vec<Duration> {
    let started = tokio::time::Instant::now() + Duration::from_millis(200);
    let total = rate * seconds;
    let spacing = Duration::from_secs_f64(1.0 / rate as f64);
    let tasks: Vec<_> = (0..READ_CONNECTIONS)
        .map(|c| {
            let addr = servers[c % servers.len()];
            tokio::spawn(async move {
                let mut sender = connect(addr).await;
                let mut latencies = Vec::new();
                for n in (c as u64..total).step_by(READ_CONNECTIONS) {
                    let due = started + spacing * n as u32;
                    tokio::time::sleep_until(due).await;
                    let path = format!(
                        "/api/v1/registry/discover/svc-{:03}?environment=production",
                        n % SERVICES as u64
                    );
                    let (status, _) = send(&mut sender, "GET", &path, Bytes::new()).await;
                    assert_eq!(status, 200, "{path}");
                    latencies.push(due.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in futures::future::join_all(tasks).await {
        latencies.extend(task.unwrap());
    }
    latencies.sort();
    latencies
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|&pid| support::cpu::process_seconds(pid))
        .sum()
}

struct Row {
    setup: &'static str,
    beats: Beats,
    beat_cpu_us: f64,
    reads: f64,
    read_cpu_us: f64,
    mixed_beats: Beats,
    mixed_reads: Vec<Duration>,
}

async fn measure(setup: &'static str, servers: &[SocketAddr], pids: &[u32], opts: Options) -> Row {
    eprintln!(
        "registry: {setup}: registering {} instances",
        opts.instances
    );
    register_all(servers[0], opts).await;
    eprintln!("registry: {setup}: heartbeats");
    let before = cpu(pids);
    let beats = heartbeats(servers, opts).await;
    let beat_cpu_us = (cpu(pids) - before) * 1e6 / beats.latencies.len() as f64;
    eprintln!("registry: {setup}: discovery");
    let window = Duration::from_secs(5);
    let before = cpu(pids);
    let started = Instant::now();
    let reads = discovery(servers, window).await;
    // Warm-up included in the CPU, so per read it is a slight overestimate.
    let read_cpu_us = (cpu(pids) - before) * 1e6 / (reads * started.elapsed().as_secs_f64());
    eprintln!("registry: {setup}: both");
    let mixed = Options {
        seconds: opts.seconds.min(10),
        ..opts
    };
    let (mixed_beats, mixed_reads) = tokio::join!(
        heartbeats(servers, mixed),
        paced_discovery(servers, opts.mixed_reads, mixed.seconds)
    );
    Row {
        setup,
        beats,
        beat_cpu_us,
        reads,
        read_cpu_us,
        mixed_beats,
        mixed_reads,
    }
}

async fn run(opts: Options) {
    let mut rows = Vec::new();
    {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let (server, addr) = spawn(&url);
        wait_until_up(addr).await;
        rows.push(measure("SQLite, one node", &[addr], &[server.0.id()], opts).await);
    }
    match postgres::PgCluster::dedicated().await {
        Some(cluster) => {
            let url = cluster.new_database().await;
            support::fsync_on(&url).await;
            let (a, a_addr) = spawn(&url);
            wait_until_up(a_addr).await;
            let (b, b_addr) = spawn(&url);
            wait_until_up(b_addr).await;
            let pids = [a.0.id(), b.0.id()];
            rows.push(measure("PostgreSQL, two replicas", &[a_addr, b_addr], &pids, opts).await);
        }
        None => eprintln!("registry: no PostgreSQL server binaries; PostgreSQL rows skipped"),
    }
    println!(
        "\n{} instances in {SERVICES} services, one heartbeat each per {} ms \
         ({:.0}/s target), {HEARTBEAT_CONNECTIONS} heartbeat connections, open loop\n",
        opts.instances,
        opts.period.as_millis(),
        opts.instances as f64 / opts.period.as_secs_f64()
    );
    println!(
        "| setup | heartbeats/s | p50 | p99 | max | server CPU/heartbeat | discovery req/s (closed loop) | server CPU/read | with {}/s reads: heartbeat p99 | discovery p99 |",
        opts.mixed_reads
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let l = &row.beats.latencies;
        println!(
            "| {} | {:.0} | {} | {} | {} | {:.0} µs | {:.0} | {:.1} µs | {} | {} |",
            row.setup,
            row.beats.rate,
            ms(percentile(l, 0.50)),
            ms(percentile(l, 0.99)),
            ms(l.last().copied().unwrap_or_default()),
            row.beat_cpu_us,
            row.reads,
            row.read_cpu_us,
            ms(percentile(&row.mixed_beats.latencies, 0.99)),
            ms(percentile(&row.mixed_reads, 0.99)),
        );
    }
}
