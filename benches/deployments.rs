//! Deployments benchmark: the real server (release binary, its own process, SQLite, access
//! control off, `production` requiring deployments, the engine ticking every second as by
//! default) with 1,000 simulated instances of one service registered in production, each with an
//! SSE watch of the config as itself (`instanceId`), measured as
//!   1. automatic rollback: a canary (10 %, an hour's bake) is deployed and every targeted
//!      instance acknowledges it (a real `/effective?instanceId=` read, then a heartbeat with the
//!      checksum it got); once the deployment bakes, one targeted instance reports `critical`.
//!      The figure is the time from that heartbeat to each targeted instance's watch delivering
//!      the previous version (p50, p99, last), over several rounds;
//!      On SQLite (one node), and on two replicas sharing one PostgreSQL database (fsync on) with
//!      the watches on the replica that did not receive the heartbeat;
//!   2. effective reads during a deployment against reads without one, in alternating rounds of
//!      one run (closed loop, every read naming its instance): the reads of the config being
//!      deployed (a canary baking) against those of a config of the same size with none, with
//!      the server's CPU per read beside each (the load generator shares the machine). SQLite.
//!
//! `cargo bench --bench deployments` (about two minutes; options `-- --instances 1000 --rounds 3
//! --seconds 10 --connections 64`). Not a test: it asserts nothing about speed and prints a
//! Markdown table for docs/performance.md. Without PostgreSQL server binaries the PostgreSQL row
//! is skipped.

mod support;

#[allow(dead_code)]
#[path = "../tests/it/common/postgres.rs"]
mod postgres;

use support::{
    Server, config_body, connect, free_port, max_throughput, ms, percentile, send, wait_until_up,
};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};

const SERVICE: &str = "fleet";

struct Options {
    instances: usize,
    rounds: usize,
    seconds: u64,
    connections: usize,
}

fn main() {
    if support::is_probe() {
        return;
    }
    let opts = Options {
        instances: support::arg("--instances", 1_000) as usize,
        rounds: support::arg("--rounds", 3) as usize,
        seconds: support::arg("--seconds", 10),
        connections: support::arg("--connections", 64) as usize,
    };
    // The harness panics without PostgreSQL when CI is set; a benchmark skips instead.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::remove_var("CI") };
    support::runtime().block_on(run(opts));
}

fn instance(i: usize) -> String {
    format!("i-{i:05}")
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let mut sender = connect(addr).await;
    let (status, answer) = send(&mut sender, method, path, Bytes::from(body.to_string())).await;
    let answer = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    (status, answer)
}

/// Each of `ids` reads its config as itself and heartbeats the checksum it got (and `status`).
async fn report(addr: SocketAddr, config: &str, ids: &[String], status: &'static str) {
    let chunks: Vec<Vec<String>> = ids
        .chunks(ids.len().div_ceil(16).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let tasks = chunks.into_iter().map(|chunk| {
        let config = config.to_owned();
        tokio::spawn(async move {
            let mut sender = connect(addr).await;
            for id in chunk {
                let path = format!(
                    "/api/v1/configs/{config}/effective?environment=production&instanceId={id}"
                );
                let (code, body) = send(&mut sender, "GET", &path, Bytes::new()).await;
                assert_eq!(code, 200, "{path}");
                let effective: Value = serde_json::from_slice(&body).unwrap();
                let heartbeat =
                    json!({"status": status, "applied": {config.as_str(): effective["checksum"]}});
                let path = format!("/api/v1/registry/services/{SERVICE}/instances/{id}/heartbeat");
                let (code, body) = send(
                    &mut sender,
                    "PUT",
                    &path,
                    Bytes::from(heartbeat.to_string()),
                )
                .await;
                assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
}

async fn deployment(addr: SocketAddr, id: &str) -> Value {
    let (status, body) = call(
        addr,
        "GET",
        &format!("/api/v1/deployments/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Lets `acking` instances report until the deployment is in `state`.
async fn until_state(addr: SocketAddr, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found = deployment(addr, id).await;
        if found["state"] == state {
            return found;
        }
        assert!(Instant::now() < deadline, "never {state}: {found}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every config event each instance's watch delivers: (instance, version, when).
type Arrivals = Arc<parking_lot::Mutex<Vec<(String, u64, Instant)>>>;

async fn watch(addr: SocketAddr, id: String, arrivals: Arrivals) {
    let mut sender = connect(addr).await;
    sender.ready().await.unwrap();
    let response = sender
        .send_request(support::request(
            "GET",
            &format!("/api/v1/watch?configId=app&environment=production&instanceId={id}"),
            Bytes::new(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    tokio::spawn(async move {
        let _keep = sender;
        let mut pending = String::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return };
            if let Some(data) = frame.data_ref() {
                pending.push_str(&String::from_utf8_lossy(data));
                while let Some(end) = pending.find("\n\n") {
                    let block = pending[..end].to_owned();
                    pending.drain(..end + 2);
                    if let Some(line) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                        let event: Value = serde_json::from_str(line).unwrap();
                        if event["kind"] == "config.updated" {
                            let version = event["version"].as_u64().unwrap();
                            arrivals.lock().push((id.clone(), version, Instant::now()));
                        }
                    }
                }
            }
        }
    });
}

/// One rollback round: (targeted instances, delivery delays of the previous version sorted).
async fn rollback_round(addr: SocketAddr, arrivals: &Arrivals) -> (usize, Vec<Duration>) {
    let strategy = json!({"rollout": {"type": "canary", "steps": [{"percent": 10, "bakeSecs": 3600}]},
                          "gate": {"applyTimeoutSecs": 120}});
    let (status, started) = call(
        addr,
        "POST",
        "/api/v1/deployments",
        json!({"configId": "app", "environment": "production", "version": 2,
               "strategy": strategy, "metadata": {"actor": "bench"}}),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let deploying = until_state(addr, &id, "deploying").await;
    let targets: Vec<String> = serde_json::from_value(deploying["targets"].clone()).unwrap();
    report(addr, "app", &targets, "passing").await;
    until_state(addr, &id, "baking").await;
    // Every targeted watcher has heard of version 2 before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let heard: std::collections::HashSet<String> = arrivals
            .lock()
            .iter()
            .filter(|(_, v, _)| *v == 2)
            .map(|(i, _, _)| i.clone())
            .collect();
        if targets.iter().all(|t| heard.contains(t)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targeted watchers never heard of version 2"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    arrivals.lock().clear();
    let started = Instant::now();
    let sick = &targets[0];
    let (status, body) = call(
        addr,
        "PUT",
        &format!("/api/v1/registry/services/{SERVICE}/instances/{sick}/heartbeat"),
        json!({"status": "critical"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let delays = loop {
        let seen: HashMap<String, Instant> = arrivals
            .lock()
            .iter()
            .filter(|(_, v, _)| *v == 1)
            .map(|(i, _, at)| (i.clone(), *at))
            .collect();
        if targets.iter().all(|t| seen.contains_key(t)) {
            let mut delays: Vec<Duration> = targets
                .iter()
                .map(|t| seen[t].duration_since(started))
                .collect();
            delays.sort();
            break delays;
        }
        assert!(
            Instant::now() < deadline,
            "not every targeted watcher got the previous version"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let untargeted_moved = arrivals.lock().iter().any(|(i, _, _)| !targets.contains(i));
    assert!(
        !untargeted_moved,
        "an untargeted instance was told of a change"
    );
    // Back to a clean fleet: the sick instance recovers, the targets report version 1 again.
    call(
        addr,
        "PUT",
        &format!("/api/v1/registry/services/{SERVICE}/instances/{sick}/heartbeat"),
        json!({"status": "passing"}),
    )
    .await;
    report(addr, "app", &targets, "passing").await;
    until_state(addr, &id, "rolled_back").await;
    (targets.len(), delays)
}

/// Closed-loop reads of `config` by every instance: requests/s and server CPU µs per read.
async fn reads(
    addr: SocketAddr,
    pid: u32,
    config: &str,
    ids: &[String],
    opts: &Options,
    window: Duration,
) -> (f64, f64) {
    let paths = Arc::new(
        ids.iter()
            .map(|id| {
                format!("/api/v1/configs/{config}/effective?environment=production&instanceId={id}")
            })
            .collect::<Vec<_>>(),
    );
    let (cpu, started) = (support::cpu::process_seconds(pid), Instant::now());
    let rate = max_throughput(addr, paths, opts.connections, window).await;
    let requests = rate * started.elapsed().as_secs_f64();
    let cpu = support::cpu::process_seconds(pid) - cpu;
    (rate, 1e6 * cpu / requests)
}

fn spawn(database_url: &str) -> (Server, SocketAddr) {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_summit-config"))
            .env("SUMMIT_HTTP_ADDR", addr.to_string())
            .env("SUMMIT_NO_AUTH", "true")
            .env("SUMMIT_GRPC_ADDR", "127.0.0.1:0")
            .env("SUMMIT_DATABASE_URL", database_url)
            .env("SUMMIT_DEPLOYMENT_ENVIRONMENTS", "production")
            .env("SUMMIT_MAX_WATCHERS", "20000")
            .env("SUMMIT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start summit-config"),
    );
    (server, addr)
}

/// Two configs (`app`, `calm`) with version 1 released and version 2 written; the fleet
/// registered through `api` and reading `app` as itself; a watch per instance on `watch_at`.
async fn prepare(api: SocketAddr, watch_at: SocketAddr, opts: &Options) -> (Vec<String>, Arrivals) {
    let ids: Vec<String> = (0..opts.instances).map(instance).collect();
    for config in ["app", "calm"] {
        let (status, body) = call(
            api,
            "PUT",
            &format!("/api/v1/configs/{config}"),
            config_body(1, 0),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    for id in &ids {
        let (status, body) = call(
            api,
            "POST",
            "/api/v1/registry/register",
            json!({"serviceName": SERVICE, "instanceId": id, "environment": "production",
                   "serviceUrl": "http://127.0.0.1:9", "ttlSecs": 3600}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    report(api, "app", &ids, "passing").await;
    // Version 2 of both: served nowhere in production until deployed.
    for config in ["app", "calm"] {
        let (status, body) = call(
            api,
            "PUT",
            &format!("/api/v1/configs/{config}"),
            config_body(1, 1),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    // The watching replica knows version 2 is not released before its watches start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let arrivals: Arrivals = Arc::default();
    for id in &ids {
        watch(watch_at, id.clone(), arrivals.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    (ids, arrivals)
}

async fn rollbacks(
    api: SocketAddr,
    arrivals: &Arrivals,
    opts: &Options,
) -> Vec<(usize, Vec<Duration>)> {
    let mut rounds = Vec::new();
    for _ in 0..opts.rounds {
        rounds.push(rollback_round(api, arrivals).await);
    }
    rounds.sort_by_key(|(_, delays)| *delays.last().unwrap());
    rounds
}

fn rollback_row(setup: &str, rounds: &[(usize, Vec<Duration>)]) {
    let (targeted, delays) = &rounds[rounds.len() / 2];
    let mut all: Vec<Duration> = rounds.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    all.sort();
    println!(
        "| {setup}: unhealthy report → every targeted instance's watch delivers the previous version ({targeted} targeted; median of {} rounds) | p50 {}, p99 {}, last {}; over all rounds p99 {}, worst {} |",
        rounds.len(),
        ms(percentile(delays, 0.5)),
        ms(percentile(delays, 0.99)),
        ms(*delays.last().unwrap()),
        ms(percentile(&all, 0.99)),
        ms(*all.last().unwrap()),
    );
}

async fn run(opts: Options) {
    let dir = tempfile::tempdir().unwrap();
    let (summit, addr) = spawn(&format!("sqlite://{}/bench.db", dir.path().display()));
    let pid = summit.0.id();
    wait_until_up(addr).await;
    let (ids, arrivals) = prepare(addr, addr, &opts).await;
    let sqlite_rollbacks = rollbacks(addr, &arrivals, &opts).await;

    // Reads: a canary of `app` baking; `calm` has none.
    let (status, started) = call(addr, "POST", "/api/v1/deployments",
        json!({"configId": "app", "environment": "production", "version": 2,
               "strategy": {"rollout": {"type": "canary", "steps": [{"percent": 10, "bakeSecs": 3600}]},
                            "gate": {"applyTimeoutSecs": 3600}},
               "metadata": {"actor": "bench"}})).await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let deploying = until_state(addr, &id, "deploying").await;
    let targets: Vec<String> = serde_json::from_value(deploying["targets"].clone()).unwrap();
    report(addr, "app", &targets, "passing").await;
    until_state(addr, &id, "baking").await;
    const ROUNDS: usize = 5;
    let window = Duration::from_secs_f64(opts.seconds as f64 / ROUNDS as f64);
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let calm = reads(addr, pid, "calm", &ids, &opts, window).await;
        let deploying = reads(addr, pid, "app", &ids, &opts, window).await;
        rounds.push((deploying.0 / calm.0, calm, deploying));
    }
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    drop(summit);

    let postgres_rollbacks = match postgres::PgCluster::dedicated().await {
        Some(cluster) => {
            let url = cluster.new_database().await;
            support::fsync_on(&url).await;
            let (a, a_addr) = spawn(&url);
            wait_until_up(a_addr).await;
            let (b, b_addr) = spawn(&url);
            wait_until_up(b_addr).await;
            let (_, arrivals) = prepare(a_addr, b_addr, &opts).await;
            let measured = rollbacks(a_addr, &arrivals, &opts).await;
            drop((a, b));
            Some(measured)
        }
        None => {
            eprintln!("deployments: no PostgreSQL server binaries; the PostgreSQL row is skipped");
            None
        }
    };

    println!(
        "\n### deployments ({} instances, each watching as itself; engine tick 1 s)\n",
        opts.instances
    );
    println!("| measure | figure |\n|---|---|");
    rollback_row("SQLite, one node", &sqlite_rollbacks);
    if let Some(measured) = &postgres_rollbacks {
        rollback_row(
            "PostgreSQL, two replicas (heartbeat to one, watches on the other)",
            measured,
        );
    }
    let (median, (calm_rps, calm_cpu), (dep_rps, dep_cpu)) = rounds[ROUNDS / 2];
    println!(
        "| effective reads during a deployment (canary baking), {} conns | **{:.1}%** of reads of a config without one (median of {ROUNDS} rounds; range {:.1}–{:.1}%); median round: {dep_rps:.0} req/s at {dep_cpu:.0} µs server CPU/read, without: {calm_rps:.0} req/s at {calm_cpu:.0} µs |",
        opts.connections,
        100.0 * median,
        100.0 * rounds[0].0,
        100.0 * rounds[ROUNDS - 1].0,
    );
}
