//! Helpers the benchmarks share: free ports, a bare hyper HTTP/1 client, the ~2 KB config they
//! all load, and percentile formatting. Each benchmark uses part of it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub mod cpu;
pub mod wrk;

/// How late this machine wakes a thread that sleeps `interval`, over `samples` sleeps while
/// nothing else runs: (p50, p99). On a virtual machine the hypervisor's timer delivery sets a
/// floor under every latency a benchmark measures; printed beside them, it tells a slow server
/// from a slow machine.
pub fn wake_lateness(interval: Duration, samples: usize) -> (Duration, Duration) {
    let mut late: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            std::thread::sleep(interval);
            start.elapsed().saturating_sub(interval)
        })
        .collect();
    late.sort();
    (percentile(&late, 0.5), percentile(&late, 0.99))
}

/// The number after `name` on the command line (`--seconds 10`), or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether `cargo test --benches` or `--list` is probing the benchmark: nothing to run.
pub fn is_probe() -> bool {
    std::env::args().any(|a| a == "--list" || a == "--test")
}

/// The load generator's runtime: two workers, as many as the machine's cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A server process, killed when dropped.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release server on a fresh SQLite file in `dir`, REST on `http`, gRPC on a free port
/// (set `SUMMIT_GRPC_ADDR` again to choose it), logging warnings only: add access settings
/// (`access_env`) and whatever else the benchmark needs, then spawn it.
pub fn summit(dir: &std::path::Path, http: SocketAddr) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_summit-config"));
    command
        .env("SUMMIT_HTTP_ADDR", http.to_string())
        .env("SUMMIT_GRPC_ADDR", "127.0.0.1:0")
        .env(
            "SUMMIT_DATABASE_URL",
            format!("sqlite://{}/bench.db", dir.display()),
        )
        .env("SUMMIT_LOG", "warn")
        .stdout(std::process::Stdio::null());
    command
}

/// `--bare-server PORT FILE`: this run of the benchmark's binary is its bare baseline, on
/// `PORT`, answering from `FILE`.
pub fn bare_server_args() -> Option<(u16, String)> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--bare-server")?;
    Some((args[at + 1].parse().unwrap(), args[at + 2].clone()))
}

/// Starts the benchmark's own binary as its bare baseline answering from `answers` (see
/// `bare_server_args`), and waits until it accepts connections.
pub async fn spawn_bare(answers: &std::path::Path) -> (Server, SocketAddr) {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let bare = Server(
        std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--bare-server")
            .arg(addr.port().to_string())
            .arg(answers)
            .spawn()
            .expect("start the bare server"),
    );
    wait_until_up(addr).await;
    (bare, addr)
}

/// The median of per-round figures (for an even count, the mean of the two middle ones; 0 for
/// none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n.is_multiple_of(2) => (values[middle - 1] + values[middle]) / 2.0,
        _ => values[middle],
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// About 2 KB of JSON: 40 settings, two overrides and a 10% canary on production.
pub fn config_body(i: usize, generation: usize) -> Value {
    let mut config = serde_json::Map::new();
    for k in 0..40 {
        config.insert(
            format!("setting_{k:02}"),
            json!(format!("value-{i}-{k}-{generation}-abcdefghij")),
        );
    }
    config.insert("timeout_ms".into(), json!(1000 + i));
    json!({
        "config": config,
        "overrides": {"production": {"timeout_ms": 250, "setting_00": "prod"}, "staging": {"setting_01": "stage"}},
        "canary": {"environment": "production", "trafficPercent": 10, "config": {"timeout_ms": 200}, "startAt": "2026-01-01T00:00:00Z"},
        "metadata": {"actor": "bench", "message": format!("generation {generation}")}
    })
}

/// One keep-alive HTTP/1 connection, Nagle off.
pub async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// With `--auth`, the server checks a bearer token on every request (the admin token, rate
/// limiting off) and the load generator sends it; without, access control is off.
pub fn access_env() -> Vec<(&'static str, String)> {
    if std::env::args().any(|a| a == "--auth") {
        let token = "bench-admin-token-0123456789abcdef".to_owned();
        let _ = BEARER.set(token.clone());
        vec![
            ("SUMMIT_ADMIN_TOKEN", token),
            ("SUMMIT_RATE_LIMIT_PER_SEC", "0".into()),
        ]
    } else {
        vec![("SUMMIT_NO_AUTH", "true".into())]
    }
}

/// A bearer token every request carries, when a benchmark runs with access control on.
pub static BEARER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn request(method: &str, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench")
        .header("content-type", "application/json");
    if let Some(token) = BEARER.get() {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Full::new(body)).unwrap()
}

/// Sends one request on `sender`; the status and the whole body.
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Bytes,
) -> (u16, Bytes) {
    sender.ready().await.unwrap();
    let response = sender
        .send_request(request(method, path, body))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// One request of a closed loop and the status it must answer.
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub body: Bytes,
    pub status: u16,
}

/// What a measured phase gave: throughput and, when the server's pid is known, the server
/// process's CPU time (user + system, from `/proc/<pid>/stat`) per request served.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub per_second: f64,
    pub requests: u64,
    /// Server CPU seconds per request; 0 when not measured.
    pub cpu_per_request: f64,
}

impl Measured {
    /// CPU per request in microseconds.
    pub fn cpu_us(&self) -> f64 {
        self.cpu_per_request * 1e6
    }
}

/// Medians over the rounds of (summit-config, bare): CPU per request of each server and their
/// ratio (the headline), and the throughput ratio.
pub fn compare(rounds: &[(Measured, Measured)]) -> String {
    let summit_cpu = median(rounds.iter().map(|(s, _)| s.cpu_us()).collect());
    let bare_cpu = median(rounds.iter().map(|(_, b)| b.cpu_us()).collect());
    let ratio = median(
        rounds
            .iter()
            .map(|(s, b)| s.cpu_per_request / b.cpu_per_request)
            .collect(),
    );
    let throughput = median(
        rounds
            .iter()
            .map(|(s, b)| s.per_second / b.per_second)
            .collect(),
    );
    let summit_rps = median(rounds.iter().map(|(s, _)| s.per_second).collect());
    let bare_rps = median(rounds.iter().map(|(_, b)| b.per_second).collect());
    format!(
        "server CPU per request: summit-config {summit_cpu:.1} µs, bare {bare_cpu:.1} µs, **{ratio:.2}×** bare; \
         throughput {:.1}% of bare ({summit_rps:.0} vs {bare_rps:.0} req/s; medians of {} rounds)",
        100.0 * throughput,
        rounds.len()
    )
}

/// Closed loop: `connections` clients send back-to-back; counts over `window` after a
/// half-second warm-up. Returns requests/s.
pub async fn max_throughput(
    addr: SocketAddr,
    paths: Arc<Vec<String>>,
    connections: usize,
    window: Duration,
) -> f64 {
    max_throughput_measured(addr, None, paths, connections, window)
        .await
        .per_second
}

/// `max_throughput`, with the CPU time the process `server` spent in the counted window.
pub async fn max_throughput_measured(
    addr: SocketAddr,
    server: Option<u32>,
    paths: Arc<Vec<String>>,
    connections: usize,
    window: Duration,
) -> Measured {
    closed_loop_measured(addr, server, connections, window, move |connection, k| {
        Call {
            method: "GET",
            path: paths[(connection * 131 + k as usize) % paths.len()].clone(),
            body: Bytes::new(),
            status: 200,
        }
    })
    .await
}

/// Closed loop of any requests: each of `connections` clients sends `next(connection, k)` for
/// its k-th request, back-to-back; counts over `window` after a half-second warm-up. Returns
/// requests/s.
pub async fn closed_loop<F>(addr: SocketAddr, connections: usize, window: Duration, next: F) -> f64
where
    F: Fn(usize, u64) -> Call + Send + Sync + 'static,
{
    closed_loop_measured(addr, None, connections, window, next)
        .await
        .per_second
}

/// `closed_loop`, with the CPU time the process `server` spent in the counted window.
pub async fn closed_loop_measured<F>(
    addr: SocketAddr,
    server: Option<u32>,
    connections: usize,
    window: Duration,
    next: F,
) -> Measured
where
    F: Fn(usize, u64) -> Call + Send + Sync + 'static,
{
    let next = Arc::new(next);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (next, stop, done) = (next.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut sender = connect(addr).await;
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let call = next(c, k);
                    let (status, body) =
                        send(&mut sender, call.method, &call.path, call.body).await;
                    assert_eq!(
                        status,
                        call.status,
                        "{} {}: {}",
                        call.method,
                        call.path,
                        String::from_utf8_lossy(&body)
                    );
                    k += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let cpu = |pid: Option<u32>| pid.map_or(0.0, cpu::process_seconds);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (started, before, cpu_before) = (Instant::now(), done.load(Ordering::Relaxed), cpu(server));
    tokio::time::sleep(window).await;
    let counted = done.load(Ordering::Relaxed) - before;
    let cpu_spent = cpu(server) - cpu_before;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in futures::future::join_all(tasks).await {
        task.expect("a closed-loop connection failed");
    }
    Measured {
        per_second: counted as f64 / elapsed.as_secs_f64(),
        requests: counted,
        cpu_per_request: cpu_spent / counted.max(1) as f64,
    }
}

/// Waits (up to 10 s) until something accepts connections on `addr`.
pub async fn wait_until_up(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on {addr} did not come up");
}

pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Turns fsync (and synchronous commit, full-page writes) on for the whole cluster; the test
/// harness starts it with them off.
pub async fn fsync_on(url: &str) {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER SYSTEM SET {setting} = on"
        )))
        .execute(&mut connection)
        .await
        .unwrap();
    }
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut connection)
        .await
        .unwrap();
    // The reload is asynchronous: wait until a new session sees it.
    for _ in 0..100 {
        let mut probe = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        let fsync: String = sqlx::query_scalar("SHOW fsync")
            .fetch_one(&mut probe)
            .await
            .unwrap();
        if fsync == "on" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fsync did not turn on");
}

/// The postmaster's process id, from the parent of a backend.
pub async fn postmaster(url: &str) -> u32 {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    cpu::parent_of(u32::try_from(backend).unwrap())
}
