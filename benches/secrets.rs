//! Secrets benchmark: the real server (release binary, its own process, SQLite, access control
//! off) with 1,000 configs of about 2 KB, each referencing two secrets of the built-in store
//! (`store:bench-db#password`, `store:bench-key`), measured as
//!   1. effective reads with `resolveSecrets=true` against the very same reads without, in
//!      alternating rounds of one run (closed loop): the ratio is the figure, with the server's
//!      CPU per read beside it (the load generator shares the machine);
//!   2. rotation fan-out: 1,000 SSE watchers, one per config; one `POST …/rotate` of the secret
//!      they all reference; the time until every watcher has its `config.secrets_changed`
//!      event, and the server's CPU for the whole rotation.
//!
//! `cargo bench --bench secrets` (options: `-- --seconds 10 --connections 64 --rotations 3`).
//! Not a test: it asserts nothing about speed and prints a Markdown table for docs/performance.md.

mod support;

use support::{
    Server, config_body, connect, free_port, max_throughput, ms, percentile, send, wait_until_up,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;

const CONFIGS: usize = 1_000;

struct Options {
    seconds: u64,
    connections: usize,
    rotations: usize,
}

fn main() {
    if support::is_probe() {
        return;
    }
    let opts = Options {
        seconds: support::arg("--seconds", 10),
        connections: support::arg("--connections", 64) as usize,
        rotations: support::arg("--rotations", 3) as usize,
    };
    support::runtime().block_on(run(opts));
}

async fn put(addr: SocketAddr, path: &str, body: serde_json::Value) {
    let mut sender = connect(addr).await;
    let (status, answer) = send(&mut sender, "PUT", path, Bytes::from(body.to_string())).await;
    assert_eq!(status, 201, "{path}: {}", String::from_utf8_lossy(&answer));
}

/// Every config once, with its two secret references.
async fn load(addr: SocketAddr) {
    let tasks = (0..8).map(|w| {
        tokio::spawn(async move {
            let mut sender = connect(addr).await;
            for i in (w..CONFIGS).step_by(8) {
                let mut body = config_body(i, 0);
                body["config"]["db_password"] = json!({"$secret": "store:bench-db#password"});
                body["config"]["api_key"] = json!({"$secret": "store:bench-key"});
                let path = format!("/api/v1/configs/cfg-{i:04}");
                let (status, _) =
                    send(&mut sender, "PUT", &path, Bytes::from(body.to_string())).await;
                assert_eq!(status, 201, "{path}");
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
}

fn read_paths(resolve: bool) -> Arc<Vec<String>> {
    let suffix = if resolve { "&resolveSecrets=true" } else { "" };
    Arc::new(
        (0..8192)
            .map(|n| {
                let config = (n * 7919) % CONFIGS;
                format!(
                    "/api/v1/configs/cfg-{config:04}/effective?environment=production&assignmentKey=user-{n}{suffix}"
                )
            })
            .collect(),
    )
}

/// Closed-loop reads of `paths`: requests/s, and the server's CPU µs per request over the
/// same call (warm-up included on both sides).
async fn reads(
    addr: SocketAddr,
    pid: u32,
    paths: Arc<Vec<String>>,
    opts: &Options,
    window: Duration,
) -> (f64, f64) {
    let (cpu, started) = (support::cpu::process_seconds(pid), Instant::now());
    let rate = max_throughput(addr, paths, opts.connections, window).await;
    let requests = rate * started.elapsed().as_secs_f64();
    let cpu = support::cpu::process_seconds(pid) - cpu;
    (rate, 1e6 * cpu / requests)
}

/// One SSE watcher of `config`: connected once this returns; the task ends with the instant
/// its first `config.secrets_changed` event arrived.
async fn watcher(addr: SocketAddr, config: String) -> tokio::task::JoinHandle<Instant> {
    let mut sender = connect(addr).await;
    sender.ready().await.unwrap();
    let response = sender
        .send_request(support::request(
            "GET",
            &format!("/api/v1/watch?configId={config}"),
            Bytes::new(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    tokio::spawn(async move {
        let _keep = sender;
        let mut seen = String::new();
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.unwrap().data_ref() {
                seen.push_str(&String::from_utf8_lossy(data));
                if seen.contains("config.secrets_changed") {
                    return Instant::now();
                }
            }
        }
        panic!("the watch of {config} ended before the rotation reached it");
    })
}

/// One rotation of `bench-db` with a watcher on every config: (time to answer the rotate
/// request, arrival times at the watchers sorted, server CPU seconds from the request until
/// the last arrival).
async fn rotation(addr: SocketAddr, pid: u32) -> (Duration, Vec<Duration>, f64) {
    let mut watchers = Vec::with_capacity(CONFIGS);
    for i in 0..CONFIGS {
        watchers.push(watcher(addr, format!("cfg-{i:04}")).await);
    }
    // Let every stream settle on the server before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = support::cpu::process_seconds(pid);
    let started = Instant::now();
    let mut sender = connect(addr).await;
    let (status, body) = send(
        &mut sender,
        "POST",
        "/api/v1/secrets/bench-db/rotate",
        Bytes::from(json!({}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let answered = started.elapsed();
    let mut arrivals = Vec::with_capacity(CONFIGS);
    for watcher in watchers {
        let arrived = tokio::time::timeout(Duration::from_secs(120), watcher)
            .await
            .expect("every watcher hears of the rotation within 2 minutes")
            .unwrap();
        arrivals.push(arrived.duration_since(started));
    }
    let cpu = support::cpu::process_seconds(pid) - cpu;
    arrivals.sort();
    (answered, arrivals, cpu)
}

async fn run(opts: Options) {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let summit = Server(
        support::summit(dir.path(), addr)
            .env("SUMMIT_NO_AUTH", "true")
            .spawn()
            .expect("start summit-config"),
    );
    let pid = summit.0.id();
    wait_until_up(addr).await;
    let generator =
        json!({"type": "bytes", "length": 24, "encoding": "base64", "field": "password"});
    put(
        addr,
        "/api/v1/secrets/bench-db",
        json!({"value": {"user": "app", "password": "bench-initial-password"},
               "metadata": {"actor": "bench"},
               "rotation": {"intervalSecs": 31_536_000, "gracePeriodSecs": 3600, "generator": generator}}),
    )
    .await;
    put(
        addr,
        "/api/v1/secrets/bench-key",
        json!({"value": "bench-api-key-0123456789", "metadata": {"actor": "bench"}}),
    )
    .await;
    load(addr).await;

    const ROUNDS: usize = 5;
    let window = Duration::from_secs_f64(opts.seconds as f64 / ROUNDS as f64);
    let (plain_paths, resolved_paths) = (read_paths(false), read_paths(true));
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let plain = reads(addr, pid, plain_paths.clone(), &opts, window).await;
        let resolved = reads(addr, pid, resolved_paths.clone(), &opts, window).await;
        rounds.push((resolved.0 / plain.0, plain, resolved));
    }
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));

    let mut rotations = Vec::new();
    for _ in 0..opts.rotations {
        rotations.push(rotation(addr, pid).await);
    }
    rotations.sort_by_key(|r| *r.1.last().unwrap());

    println!("\n### secrets ({CONFIGS} configs, each with two `store:` references)\n");
    println!("| measure | figure |\n|---|---|");
    let (median, (plain_rps, plain_cpu), (resolved_rps, resolved_cpu)) = rounds[ROUNDS / 2];
    println!(
        "| effective reads with `resolveSecrets=true`, {} conns | **{:.1}%** of the same reads without (median of {ROUNDS} rounds; range {:.1}–{:.1}%); median round: {resolved_rps:.0} req/s at {resolved_cpu:.0} µs server CPU/read, without: {plain_rps:.0} req/s at {plain_cpu:.0} µs |",
        opts.connections,
        100.0 * median,
        100.0 * rounds[0].0,
        100.0 * rounds[ROUNDS - 1].0,
    );
    let (answered, arrivals, cpu) = &rotations[rotations.len() / 2];
    println!(
        "| one rotation → {CONFIGS} watchers (median of {} rotations) | rotate answered in {}; events at the watchers p50 {}, p99 {}, last {}; server CPU {:.0} ms |",
        rotations.len(),
        ms(*answered),
        ms(percentile(arrivals, 0.5)),
        ms(percentile(arrivals, 0.99)),
        ms(*arrivals.last().unwrap()),
        cpu * 1e3,
    );
}
