//! Notifications benchmark: the real server (release binary, its own process, SQLite, access
//! control off) and a local webhook receiver in this process (loopback, answering 204), measured
//! as
//!   1. write throughput without webhooks and with 10 webhooks subscribed to every change, in
//!      alternating closed-loop rounds of one run (`--connections` writers), with the server's
//!      CPU per write beside each (the load generator and the receiver share the machine);
//!   2. delivery latency: writes offered at `--rate` per second for `--seconds` with the 10
//!      webhooks subscribed; for every delivery, the time from the write's acknowledgement (its
//!      commit) to the receiver getting it (p50, p99, max), and whether every delivery arrived.
//!
//! `cargo bench --bench notifications` (about two minutes; options `-- --rate 1000 --seconds
//! 30 --webhooks 10 --connections 32 --rounds 3 --round-seconds 5`). Not a test: it asserts
//! nothing about speed and prints a Markdown table for docs/performance.md.

mod support;

use support::{Call, Server, connect, free_port, ms, percentile, send, wait_until_up};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes as AxumBytes;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

const CONFIGS: usize = 200;

struct Options {
    rate: u64,
    seconds: u64,
    webhooks: usize,
    connections: usize,
    rounds: usize,
    round_seconds: u64,
}

/// What the receiver got: (config, version) → receipt times (one per webhook).
type Receipts = Arc<Mutex<HashMap<(String, u64), Vec<Instant>>>>;

fn main() {
    if support::is_probe() {
        return;
    }
    let opts = Options {
        rate: support::arg("--rate", 1000),
        seconds: support::arg("--seconds", 30),
        webhooks: support::arg("--webhooks", 10) as usize,
        connections: support::arg("--connections", 32) as usize,
        rounds: support::arg("--rounds", 3) as usize,
        round_seconds: support::arg("--round-seconds", 5),
    };
    support::runtime().block_on(run(opts));
}

async fn start_receiver(receipts: Receipts) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook/{n}",
        axum::routing::post(move |body: AxumBytes| {
            let receipts = receipts.clone();
            async move {
                let at = Instant::now();
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let (Some(config), Some(version)) =
                    (event["configId"].as_str(), event["version"].as_u64())
                {
                    receipts
                        .lock()
                        .entry((config.to_owned(), version))
                        .or_default()
                        .push(at);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn start_server(dir: &std::path::Path) -> (Server, SocketAddr, u32) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let database_url = format!("sqlite://{}", dir.join("bench.db").display());
    let child = Command::new(env!("CARGO_BIN_EXE_summit-config"))
        .env("SUMMIT_HTTP_ADDR", addr.to_string())
        .env("SUMMIT_GRPC_ADDR", "127.0.0.1:0")
        .env("SUMMIT_NO_AUTH", "true")
        .env("SUMMIT_DATABASE_URL", database_url)
        .env("SUMMIT_WEBHOOK_ALLOW", "127.0.0.1")
        .env("SUMMIT_RATE_LIMIT_PER_SEC", "1000000")
        .env("SUMMIT_RATE_LIMIT_BURST", "1000000")
        .env("SUMMIT_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start summit-config");
    let pid = child.id();
    (Server(child), addr, pid)
}

fn write_body(value: u64) -> Bytes {
    Bytes::from(
        json!({"config": {"value": value, "name": "bench", "limits": {"rps": value % 100}},
               "overrides": {"production": {"replicas": value % 7}},
               "metadata": {"actor": "bench", "message": "load"}})
        .to_string(),
    )
}

/// Closed loop: `connections` writers for `window`; writes/s.
async fn write_throughput(
    addr: SocketAddr,
    connections: usize,
    window: Duration,
    seq: Arc<AtomicU64>,
) -> f64 {
    support::closed_loop(addr, connections, window, move |_, _| {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        Call {
            method: "PUT",
            path: format!("/api/v1/configs/bench-{:03}", n as usize % CONFIGS),
            body: write_body(n),
            status: 201,
        }
    })
    .await
}

/// Open loop: writes offered at `rate`/s for `seconds`, spread over `connections`; answers each
/// write's (config, version) and acknowledgement time.
async fn offered_writes(
    addr: SocketAddr,
    rate: u64,
    seconds: u64,
    connections: usize,
    seq: Arc<AtomicU64>,
) -> Vec<((String, u64), Instant, Duration)> {
    let total = rate * seconds;
    let started = Instant::now();
    let acks = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (acks, seq) = (acks.clone(), seq.clone());
            tokio::spawn(async move {
                let mut sender = connect(addr).await;
                let mut k = c as u64;
                while k < total {
                    let due = started + Duration::from_secs_f64(k as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let id = format!("bench-{:03}", n as usize % CONFIGS);
                    let path = format!("/api/v1/configs/{id}");
                    let sent = Instant::now();
                    let (status, body) = send(&mut sender, "PUT", &path, write_body(n)).await;
                    let at = Instant::now();
                    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                    let version = serde_json::from_slice::<Value>(&body).unwrap()["version"]
                        .as_u64()
                        .unwrap();
                    acks.lock().push(((id, version), at, at - sent));
                    k += connections as u64;
                }
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.expect("a writer failed");
    }
    std::mem::take(&mut *acks.lock())
}

async fn run(opts: Options) {
    let dir = tempfile::tempdir().unwrap();
    let receipts: Receipts = Arc::default();
    let receiver = start_receiver(receipts.clone()).await;
    let (_server, addr, pid) = start_server(dir.path());
    wait_until_up(addr).await;
    let seq = Arc::new(AtomicU64::new(0));
    // Every config exists before measuring.
    write_throughput(addr, 8, Duration::from_secs(1), seq.clone()).await;

    // 1. Closed-loop write throughput, alternating without and with webhooks.
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut hooks: Vec<String> = Vec::new();
    let round = Duration::from_secs(opts.round_seconds);
    for _ in 0..opts.rounds {
        for subscribed in [false, true] {
            set_webhooks(
                addr,
                receiver,
                &mut hooks,
                if subscribed { opts.webhooks } else { 0 },
            )
            .await;
            let cpu = support::cpu::process_seconds(pid);
            let started = Instant::now();
            let rate = write_throughput(addr, opts.connections, round, seq.clone()).await;
            let cpu = support::cpu::process_seconds(pid) - cpu;
            let writes = rate * started.elapsed().as_secs_f64();
            let per_write = Duration::from_secs_f64(cpu / writes.max(1.0));
            if subscribed {
                with.push((rate, per_write));
            } else {
                without.push((rate, per_write));
            }
            // Let deliveries drain before the next round.
            drain(addr, &hooks).await;
        }
    }

    // 2. The offered rate without webhooks, then with them: achieved writes/s and write latency
    //    both times, and every delivery's latency from commit.
    set_webhooks(addr, receiver, &mut hooks, 0).await;
    let cpu = support::cpu::process_seconds(pid);
    let bare = offered_writes(addr, opts.rate, opts.seconds, opts.connections, seq.clone()).await;
    let bare_cpu = support::cpu::process_seconds(pid) - cpu;
    set_webhooks(addr, receiver, &mut hooks, opts.webhooks).await;
    receipts.lock().clear();
    let cpu = support::cpu::process_seconds(pid);
    let acks = offered_writes(addr, opts.rate, opts.seconds, opts.connections, seq.clone()).await;
    let offered_elapsed = opts.seconds as f64;
    let expected = acks.len() * opts.webhooks;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let received: usize = receipts.lock().values().map(Vec::len).sum();
        if received >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = support::cpu::process_seconds(pid) - cpu;
    let receipts = receipts.lock();
    let mut latencies = Vec::with_capacity(expected);
    let mut missing = 0usize;
    for (key, acked, _) in &acks {
        let got = receipts.get(key).map_or(&[][..], Vec::as_slice);
        missing += opts.webhooks.saturating_sub(got.len());
        for at in got {
            latencies.push(at.saturating_duration_since(*acked));
        }
    }
    latencies.sort();
    let received: usize = receipts.values().map(Vec::len).sum();
    let achieved = acks.len() as f64 / offered_elapsed;
    let achieved_bare = bare.len() as f64 / offered_elapsed;
    let write_latency = |acks: &[((String, u64), Instant, Duration)]| {
        let mut took: Vec<Duration> = acks.iter().map(|(_, _, took)| *took).collect();
        took.sort();
        (percentile(&took, 0.50), percentile(&took, 0.99))
    };
    let (bare_p50, bare_p99) = write_latency(&bare);
    let (with_p50, with_p99) = write_latency(&acks);

    let mean = |v: &[(f64, Duration)]| {
        let rate = v.iter().map(|(r, _)| r).sum::<f64>() / v.len() as f64;
        let cpu = v.iter().map(|(_, c)| c.as_secs_f64()).sum::<f64>() / v.len() as f64;
        (rate, Duration::from_secs_f64(cpu))
    };
    let (rate_without, cpu_without) = mean(&without);
    let (rate_with, cpu_with) = mean(&with);
    println!(
        "\n| notifications (SQLite, {} webhooks) | figure |",
        opts.webhooks
    );
    println!("|---|---|");
    println!(
        "| writes/s, closed loop, no webhooks ({} rounds × {} s, {} writers) | {:.0} (server CPU {} per write) |",
        opts.rounds,
        opts.round_seconds,
        opts.connections,
        rate_without,
        ms(cpu_without)
    );
    println!(
        "| writes/s, closed loop, {} webhooks | {:.0} (server CPU {} per write) — {:.1} % of no webhooks |",
        opts.webhooks,
        rate_with,
        ms(cpu_with),
        100.0 * rate_with / rate_without
    );
    println!(
        "| offered {} writes/s for {} s, no webhooks: achieved; write latency p50 / p99 | {:.0} writes/s; {} / {}; server CPU {} per write |",
        opts.rate,
        opts.seconds,
        achieved_bare,
        ms(bare_p50),
        ms(bare_p99),
        ms(Duration::from_secs_f64(bare_cpu / bare.len().max(1) as f64))
    );
    println!(
        "| offered {} writes/s for {} s, {} webhooks: achieved; write latency p50 / p99 | {:.0} writes/s ({:.1} % of no webhooks); {} / {}; server CPU {} per write until every delivery arrived |",
        opts.rate,
        opts.seconds,
        opts.webhooks,
        achieved,
        100.0 * achieved / achieved_bare,
        ms(with_p50),
        ms(with_p99),
        ms(Duration::from_secs_f64(cpu / acks.len().max(1) as f64))
    );
    println!("| deliveries: received / expected (missing) | {received} / {expected} ({missing}) |");
    println!(
        "| delivery latency from commit, p50 / p99 / max | {} / {} / {} |",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
}

/// Makes `count` webhooks (to the receiver, every change) exist: creates or deletes.
async fn set_webhooks(
    addr: SocketAddr,
    receiver: SocketAddr,
    hooks: &mut Vec<String>,
    count: usize,
) {
    let mut sender = connect(addr).await;
    while hooks.len() > count {
        let id = hooks.pop().unwrap();
        let (status, _) = send(
            &mut sender,
            "DELETE",
            &format!("/api/v1/webhooks/{id}"),
            Bytes::new(),
        )
        .await;
        assert_eq!(status, 204);
    }
    while hooks.len() < count {
        let body =
            json!({"url": format!("http://{receiver}/hook/{}", hooks.len()), "events": ["*"]});
        let (status, created) = send(
            &mut sender,
            "POST",
            "/api/v1/webhooks",
            Bytes::from(body.to_string()),
        )
        .await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&created));
        let created: Value = serde_json::from_slice(&created).unwrap();
        hooks.push(created["id"].as_str().unwrap().to_owned());
    }
}

/// Waits (up to a minute) until no delivery of `hooks` is pending.
async fn drain(addr: SocketAddr, hooks: &[String]) {
    let mut sender = connect(addr).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    'hooks: for id in hooks {
        while Instant::now() < deadline {
            let (_, page) = send(
                &mut sender,
                "GET",
                &format!("/api/v1/webhooks/{id}/deliveries?limit=1"),
                Bytes::new(),
            )
            .await;
            let page: Value = serde_json::from_slice(&page).unwrap();
            if page["items"][0]["status"] != "pending" {
                continue 'hooks;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
