//! gRPC benchmark: starts the release server binary in its own process on a fresh SQLite file and
//! measures, through the generated tonic client,
//! watch fan-out: 10,000 concurrent `Watch` streams (filter `config_ids = ["fanout"]`, no
//!      `from_revision`, so each starts with one snapshot) spread over 20 HTTP/2 connections;
//!      the server's RSS before and after (KB per stream), then 5 `PutConfig` writes a few
//!      hundred ms apart, each timed from just before it is sent to its change event arriving on
//!      every stream (p50, p99, max, how many arrived).
//! Unary reads (`GetEffectiveConfig` against a bare tonic handler) are `benches/grpc_read.rs`.
//!
//! `cargo bench --bench grpc_fanout` (about a minute; options: `-- --quick` for 1,000 streams,
//! `--streams N --channels C --changes K`).
//! Not a test: it asserts nothing about speed and prints a Markdown table for docs/performance.md.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
use summit_config::api::grpc::pb::watch_event::Event;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const FANOUT_ID: &str = "fanout";
/// Targets of the issue.
const TARGET_KB_PER_STREAM: f64 = 10.0;
const TARGET_P99: Duration = Duration::from_millis(250);
/// Pause between the fan-out writes, after the previous one reached every stream.
const CHANGE_GAP: Duration = Duration::from_millis(300);
/// Longest wait for one change to reach every stream.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

struct Options {
    streams: usize,
    channels: usize,
    changes: usize,
    open_concurrency: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        streams: value("--streams", if quick { 1_000.0 } else { 10_000.0 }) as usize,
        channels: value("--channels", 20.0) as usize,
        changes: value("--changes", 5.0) as usize,
        open_concurrency: value("--open-concurrency", 512.0) as usize,
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident set size of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// CPU time (user + system) a process has used so far (`/proc/<pid>/stat`, USER_HZ = 100).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .expect("/proc/<pid>/stat")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn wait_until_up(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on {addr} did not come up");
}

/// One HTTP/2 connection.
async fn channel(addr: SocketAddr) -> ConfigServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect to the gRPC listener");
    ConfigServiceClient::new(channel)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn put_request(id: &str, body: &Value, message: String) -> pb::PutConfigRequest {
    let text = |v: Option<&Value>| v.map(Value::to_string).unwrap_or_default();
    pb::PutConfigRequest {
        config_id: id.to_owned(),
        document: Some(pb::ConfigDocument {
            config_json: text(body.get("config")),
            overrides_json: text(body.get("overrides")),
            canary_json: text(body.get("canary")),
            ab_test_json: String::new(),
        }),
        metadata: Some(pb::Metadata {
            actor: "bench".into(),
            message: Some(message),
        }),
        expected_version: None,
    }
}

// ---- 1. Watch fan-out ------------------------------------------------------------------------

/// What the stream tasks share with the writer.
struct Shared {
    /// Streams that have their snapshot.
    ready: AtomicUsize,
    /// Streams that ended with an error or an unexpected message.
    failed: AtomicUsize,
    /// Per change (index = version - snapshot version - 1): streams that received it.
    delivered: Vec<AtomicUsize>,
    /// The snapshot's version; change events are numbered from it.
    base_version: u64,
}

/// One watch stream: waits for its snapshot, then records when each change event arrives.
async fn watch_one(
    mut client: ConfigServiceClient<Channel>,
    shared: Arc<Shared>,
    opening: Arc<Semaphore>,
    stop: CancellationToken,
) -> Vec<(u64, Instant)> {
    let permit = opening.acquire_owned().await.unwrap();
    let request = pb::WatchRequest {
        config_ids: vec![FANOUT_ID.into()],
        ..Default::default()
    };
    let fail = || {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        Vec::new()
    };
    let mut stream = match client.watch(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            eprintln!("watch refused: {status}");
            return fail();
        }
    };
    match stream.message().await {
        Ok(Some(pb::WatchEvent {
            event: Some(Event::Snapshot(snapshot)),
            ..
        })) if snapshot.version == shared.base_version => {}
        other => {
            eprintln!("expected the snapshot, got {other:?}");
            return fail();
        }
    }
    drop(permit);
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let mut receipts = Vec::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return receipts,
            message = stream.message() => match message {
                Ok(Some(pb::WatchEvent { event: Some(Event::Change(change)), .. })) => {
                    let at = Instant::now();
                    receipts.push((change.version, at));
                    let index = change.version.wrapping_sub(shared.base_version + 1) as usize;
                    if let Some(count) = shared.delivered.get(index) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Some(pb::WatchEvent { event: Some(Event::Heartbeat(_)), .. })) => {}
                other => {
                    eprintln!("watch stream ended: {other:?}");
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    return receipts;
                }
            },
        }
    }
}

struct ChangeResult {
    /// From just before the write was sent to its response.
    ack: Duration,
    /// From just before the write was sent to the event on each stream that got it, sorted.
    latencies: Vec<Duration>,
}

struct Fanout {
    streams: usize,
    ready: usize,
    failed: usize,
    open_time: Duration,
    rss_before: u64,
    rss_open: u64,
    rss_after_changes: u64,
    rss_closed: u64,
    /// CPU used over the writes (the pauses between them are idle), server and this process.
    server_cpu: Duration,
    client_cpu: Duration,
    changes: Vec<ChangeResult>,
}

async fn fanout(addr: SocketAddr, pid: u32, opts: &Options) -> Fanout {
    let mut writer = channel(addr).await;
    let created = writer
        .put_config(put_request(
            FANOUT_ID,
            &json!({"config": {"generation": 0}}),
            "generation 0".into(),
        ))
        .await
        .expect("create the fan-out config")
        .into_inner();
    let shared = Arc::new(Shared {
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        delivered: (0..opts.changes).map(|_| AtomicUsize::new(0)).collect(),
        base_version: created.version,
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(pid);

    // Open every stream, at most `open_concurrency` waiting for their snapshot at a time.
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..opts.channels {
        clients.push(channel(addr).await);
    }
    let opening = Arc::new(Semaphore::new(opts.open_concurrency.max(1)));
    let stop = CancellationToken::new();
    let tasks: Vec<_> = (0..opts.streams)
        .map(|s| {
            tokio::spawn(watch_one(
                clients[s % clients.len()].clone(),
                shared.clone(),
                opening.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.ready.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < opts.streams
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let open_time = started.elapsed();
    let ready = shared.ready.load(Ordering::Relaxed);
    // Let the server finish whatever the last opens left behind.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = rss_kib(pid);

    let mut sent = Vec::new();
    let mut acks = Vec::new();
    let cpu_before = (cpu_time(pid), cpu_time(std::process::id()));
    for k in 1..=opts.changes {
        let request = put_request(
            FANOUT_ID,
            &json!({"config": {"generation": k}}),
            format!("generation {k}"),
        );
        let t0 = Instant::now();
        let created = writer
            .put_config(request)
            .await
            .expect("fan-out write")
            .into_inner();
        acks.push(t0.elapsed());
        assert_eq!(created.version, shared.base_version + k as u64);
        sent.push(t0);
        let count = &shared.delivered[k - 1];
        while count.load(Ordering::Relaxed) < ready && t0.elapsed() < DELIVERY_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(CHANGE_GAP).await;
    }
    let rss_after_changes = rss_kib(pid);
    let server_cpu = cpu_time(pid) - cpu_before.0;
    let client_cpu = cpu_time(std::process::id()) - cpu_before.1;

    stop.cancel();
    let mut changes: Vec<ChangeResult> = acks
        .into_iter()
        .map(|ack| ChangeResult {
            ack,
            latencies: Vec::new(),
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        for (version, at) in task.unwrap() {
            let index = version.wrapping_sub(shared.base_version + 1) as usize;
            if let (Some(change), Some(t0)) = (changes.get_mut(index), sent.get(index)) {
                change.latencies.push(at.saturating_duration_since(*t0));
            }
        }
    }
    for change in &mut changes {
        change.latencies.sort();
    }
    drop(clients);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed = rss_kib(pid);
    Fanout {
        streams: opts.streams,
        ready,
        failed: shared.failed.load(Ordering::Relaxed),
        open_time,
        rss_before,
        rss_open,
        rss_after_changes,
        rss_closed,
        server_cpu,
        client_cpu,
        changes,
    }
}

// ---- main ------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `--list` probes: nothing to run.
    }
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(opts));
}

async fn run(opts: Options) {
    let dir = tempfile::tempdir().unwrap();
    let http_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let grpc_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_summit-config"))
            .env("SUMMIT_HTTP_ADDR", http_addr.to_string())
            .env("SUMMIT_NO_AUTH", "true")
            .env("SUMMIT_GRPC_ADDR", grpc_addr.to_string())
            .env(
                "SUMMIT_DATABASE_URL",
                format!("sqlite://{}/bench.db", dir.path().display()),
            )
            .env("SUMMIT_MAX_WATCHERS", (opts.streams + 1_000).to_string())
            .env("SUMMIT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start summit-config"),
    );
    let pid = server.0.id();
    wait_until_up(grpc_addr).await;
    wait_until_up(http_addr).await;

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fan = fanout(grpc_addr, pid, &opts).await;

    let per_channel = opts.streams.div_ceil(opts.channels.max(1));
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let kb_per_stream =
        (fan.rss_open as f64 - fan.rss_before as f64) * 1.024 / fan.ready.max(1) as f64;
    let kb_after_changes =
        (fan.rss_after_changes as f64 - fan.rss_before as f64) * 1.024 / fan.ready.max(1) as f64;
    let mut all: Vec<Duration> = fan
        .changes
        .iter()
        .flat_map(|c| c.latencies.iter().copied())
        .collect();
    all.sort();
    let expected = fan.ready * fan.changes.len();

    println!(
        "\n### grpc_fanout ({} watch streams over {} HTTP/2 connections; load average at start: {})\n",
        thousands(fan.streams),
        opts.channels,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!("| measure | figure |\n|---|---|");
    println!(
        "| watch streams | {} requested, {} over {} connections ({per_channel} per connection; the tonic server sets no max-concurrent-streams limit); {} with their snapshot, {} failed |",
        thousands(fan.streams),
        thousands(fan.streams),
        opts.channels,
        thousands(fan.ready),
        fan.failed
    );
    println!(
        "| opening them (at most {} awaiting a snapshot at a time) | {:.2} s, {:.0} streams/s |",
        opts.open_concurrency,
        fan.open_time.as_secs_f64(),
        fan.ready as f64 / fan.open_time.as_secs_f64()
    );
    println!(
        "| server RSS: before → all streams open | {} → {}: **{kb_per_stream:.1} KB per stream** (target < {TARGET_KB_PER_STREAM} KB) |",
        mib(fan.rss_before),
        mib(fan.rss_open)
    );
    println!(
        "| server RSS after {} changes / after closing the streams | {} ({kb_after_changes:.1} KB per stream over the baseline) / {} |",
        fan.changes.len(),
        mib(fan.rss_after_changes),
        mib(fan.rss_closed)
    );
    for (k, change) in fan.changes.iter().enumerate() {
        println!(
            "| change {}: write sent → event on each stream | {}/{} delivered; p50 {}, p99 {}, max {} (PutConfig answered after {}) |",
            k + 1,
            thousands(change.latencies.len()),
            thousands(fan.ready),
            ms(percentile(&change.latencies, 0.5)),
            ms(percentile(&change.latencies, 0.99)),
            ms(percentile(&change.latencies, 1.0)),
            ms(change.ack),
        );
    }
    println!(
        "| all {} changes | {}/{} delivered; p50 {}, p99 **{}** (target < {} ms), max {} |",
        fan.changes.len(),
        thousands(all.len()),
        thousands(expected),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        TARGET_P99.as_millis(),
        ms(percentile(&all, 1.0)),
    );
    let per_change = |d: Duration| ms(d / fan.changes.len().max(1) as u32);
    println!(
        "| CPU per change (2 cores shared by server and load generator) | server {}, this client {} |",
        per_change(fan.server_cpu),
        per_change(fan.client_cpu),
    );
}
