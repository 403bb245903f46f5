//! Effective-config benchmark: loads 1,000 configs of about 2 KB into the real server (release
//! binary, its own process, SQLite) and measures
//!   1. writes: versions/s and latency, sequential and 8 concurrent writers;
//!   2. reads against a bare axum handler (also its own process) that answers each request with
//!      the very bytes summit-config gave for it, in the same run, alternating: the headline is
//!      each server's own CPU time per request (user + system from `/proc/<pid>/stat` over the
//!      measured window, divided by the requests it served), which no load generator can
//!      flatter; beside it the throughput ratio, closed loop from this process and with `wrk`
//!      (a leaner external generator; skipped when not installed). Two mixes: one hot config,
//!      and 1,000 configs × 8,192 keys;
//!   3. read latency at a fixed offered rate (default 20,000 req/s, open loop), alternating
//!      between the two servers in the same rounds as 2.
//!
//! `cargo bench --bench effective_read` (options: `-- --seconds 10 --rate 20000 --connections 64
//! --rounds 5`, the reads' windows being `seconds / rounds` for each server in turn;
//! `--auth` to check a bearer token on every read; `--otlp http://HOST:PORT` to export traces of
//! every request to that OTLP/gRPC collector; `--open-only` to skip the throughput phases and
//! measure latency alone).
//! Not a test: it asserts nothing about speed and prints a Markdown table for docs/performance.md.

mod support;

use support::{
    Server, compare, config_body, connect, free_port, max_throughput_measured, ms, percentile,
    send, wait_until_up, wrk,
};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

const CONFIGS: usize = 1_000;

struct Options {
    seconds: u64,
    rate: u64,
    connections: usize,
    /// Alternating rounds per mix; each server gets `seconds / rounds` a round.
    rounds: usize,
}

fn options() -> Options {
    Options {
        seconds: support::arg("--seconds", 10),
        rate: support::arg("--rate", 20_000),
        connections: support::arg("--connections", 64) as usize,
        rounds: support::arg("--rounds", 5).max(1) as usize,
    }
}

/// With `--otlp URL`, the server exports a trace of every request there (sample ratio 1).
fn otlp_env() -> Vec<(&'static str, String)> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--otlp")
        .and_then(|at| args.get(at + 1))
        .map(|endpoint| vec![("SUMMIT_OTLP_ENDPOINT", endpoint.clone())])
        .unwrap_or_default()
}

/// Writes every config once, from `writers` concurrent connections; returns (versions/s, latencies).
async fn load(addr: SocketAddr, writers: usize, generation: usize) -> (f64, Vec<Duration>) {
    let start = Instant::now();
    let tasks = (0..writers).map(|w| {
        tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut latencies = Vec::new();
            for i in (w..CONFIGS).step_by(writers) {
                let body = Bytes::from(serde_json::to_vec(&config_body(i, generation)).unwrap());
                let t = Instant::now();
                let path = format!("/api/v1/configs/cfg-{i:04}");
                let (status, text) = send(&mut sender, "PUT", &path, body).await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&text));
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let mut latencies = Vec::new();
    for task in futures::future::join_all(tasks).await {
        latencies.extend(task.unwrap());
    }
    let rate = CONFIGS as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies)
}

/// Effective reads spread over every config and 8,192 assignment keys.
fn spread_paths() -> Arc<Vec<String>> {
    Arc::new(
        (0..8192)
            .map(|n| {
                let config = (n * 7919) % CONFIGS;
                format!(
                    "/api/v1/configs/cfg-{config:04}/effective?environment=production&assignmentKey=user-{n}"
                )
            })
            .collect(),
    )
}

/// Open loop: `rate` requests/s for `window`, paced by a thread that releases one request
/// every `1/rate` s (the tokio timer's 1 ms ticks would release them in bursts), served by
/// `connections` client connections. Latency counts from the write to the whole answer; how
/// late each write was after its due time (the pacer's own wake-up, or no connection free) is
/// kept beside it, so a generator that held requests back shows.
async fn fixed_rate(
    addr: SocketAddr,
    rate: u64,
    connections: usize,
    window: Duration,
) -> OpenRound {
    let paths = spread_paths();
    let total = (rate as f64 * window.as_secs_f64()) as usize;
    let released = Arc::new(tokio::sync::Semaphore::new(0));
    // Due times in release order; a task that takes a permit takes the oldest.
    let due_times = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..connections {
        senders.push(connect(addr).await);
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(c, mut sender)| {
            let (paths, released, taken, due_times) = (
                paths.clone(),
                released.clone(),
                taken.clone(),
                due_times.clone(),
            );
            tokio::spawn(async move {
                let (mut latencies, mut lateness) = (Vec::new(), Vec::new());
                while taken.fetch_add(1, Ordering::Relaxed) < total {
                    released.acquire().await.unwrap().forget();
                    let due: Instant = due_times.lock().unwrap().pop_front().unwrap();
                    let t = Instant::now();
                    let path = &paths[(c * 977 + latencies.len()) % paths.len()];
                    let (status, _) = send(&mut sender, "GET", path, Bytes::new()).await;
                    assert_eq!(status, 200);
                    latencies.push(t.elapsed());
                    lateness.push(t.saturating_duration_since(due));
                }
                (latencies, lateness)
            })
        })
        .collect();
    let begun = Instant::now();
    let pacer = {
        let released = released.clone();
        std::thread::spawn(move || {
            let interval = Duration::from_secs_f64(1.0 / rate as f64);
            let start = Instant::now();
            for i in 1..=total {
                let due = start + interval * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                due_times.lock().unwrap().push_back(due);
                released.add_permits(1);
            }
        })
    };
    let mut round = OpenRound::default();
    for task in futures::future::join_all(tasks).await {
        let (latencies, lateness) = task.unwrap();
        round.latencies.extend(latencies);
        round.lateness.extend(lateness);
    }
    pacer.join().unwrap();
    round.achieved = round.latencies.len() as f64 / begun.elapsed().as_secs_f64();
    round.latencies.sort();
    round
}

/// One open-loop round: the answers per second, every latency (sorted, for the round's own
/// p99) and every lateness (sorted once, with the other rounds', in `OpenLoop::finish`).
#[derive(Default)]
struct OpenRound {
    achieved: f64,
    latencies: Vec<Duration>,
    lateness: Vec<Duration>,
}

/// The baseline: a bare axum handler on the same route answering each request with the bytes
/// summit-config gave for it (from `bodies_file`, one `path<TAB>body` a line), in its own process.
fn run_bare_server(port: u16, bodies_file: &str) {
    let bodies: HashMap<String, Bytes> = std::fs::read_to_string(bodies_file)
        .unwrap()
        .lines()
        .map(|line| {
            let (path, body) = line.split_once('\t').unwrap();
            (path.to_owned(), Bytes::from(body.to_owned()))
        })
        .collect();
    let bodies = Arc::new(bodies);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/api/v1/configs/{id}/effective",
            axum::routing::get(move |uri: axum::http::Uri| {
                let body = uri
                    .path_and_query()
                    .and_then(|p| bodies.get(p.as_str()))
                    .cloned()
                    .unwrap_or_default();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

fn main() {
    if let Some((port, answers)) = support::bare_server_args() {
        run_bare_server(port, &answers);
        return;
    }
    if support::is_probe() {
        return;
    }
    support::runtime().block_on(run(options()));
}

async fn run(opts: Options) {
    let dir = tempfile::tempdir().unwrap();
    let summit_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let summit = Server(
        support::summit(dir.path(), summit_addr)
            .envs(support::access_env())
            .envs(otlp_env())
            .spawn()
            .expect("start summit-config"),
    );
    wait_until_up(summit_addr).await;

    let (seq_rate, seq) = load(summit_addr, 1, 0).await;
    let (conc_rate, conc) = load(summit_addr, 8, 1).await;

    // The bytes summit-config answers for every path, for the bare baseline to return.
    let spread = spread_paths();
    let hot = Arc::new(vec![spread[0].clone()]);
    let mut probe = connect(summit_addr).await;
    let mut bodies = String::new();
    let mut body_len = 0;
    for path in spread.iter() {
        let (status, body) = send(&mut probe, "GET", path, Bytes::new()).await;
        assert_eq!(status, 200);
        body_len = body.len();
        bodies.push_str(&format!(
            "{path}\t{}\n",
            std::str::from_utf8(&body).unwrap()
        ));
    }
    let bodies_file = dir.path().join("bodies.tsv");
    std::fs::write(&bodies_file, bodies).unwrap();
    let (bare, bare_addr) = support::spawn_bare(&bodies_file).await;

    // Alternate the two servers in short rounds so drift in machine load hits both alike, and
    // report the medians of the per-round figures.
    let window = Duration::from_secs_f64(opts.seconds as f64 / opts.rounds as f64);
    let (summit_pid, bare_pid) = (summit.0.id(), bare.0.id());
    let mixes = [
        ("one hot config", hot),
        ("1,000 configs × 8,192 keys", spread.clone()),
    ];
    let mut closed = Vec::new();
    let open_only = std::env::args().any(|a| a == "--open-only");
    for (name, paths) in mixes.iter().filter(|_| !open_only) {
        let mut rounds = Vec::new();
        for _ in 0..opts.rounds {
            let b = max_throughput_measured(
                bare_addr,
                Some(bare_pid),
                paths.clone(),
                opts.connections,
                window,
            )
            .await;
            let s = max_throughput_measured(
                summit_addr,
                Some(summit_pid),
                paths.clone(),
                opts.connections,
                window,
            )
            .await;
            rounds.push((s, b));
        }
        closed.push((*name, rounds));
    }
    let mut external = Vec::new();
    if wrk::available() && !open_only {
        for (name, paths) in &mixes {
            let requests = paths.iter().map(|path| (path.as_str(), None));
            let script = wrk::script(dir.path(), "reads", "GET", requests);
            let summit = (summit_addr, summit_pid);
            let rounds = wrk::rounds(summit, (bare_addr, bare_pid), &script, opts.rounds, window);
            external.push((*name, rounds));
        }
    }
    // The open loop alternates too: a slow spell of the machine, which moves a p99 by more
    // than either server does, falls into both servers' windows alike.
    let latency_connections = opts.connections.min(50);
    let interval = Duration::from_secs_f64(1.0 / opts.rate as f64);
    let (wake_p50, wake_p99) = support::wake_lateness(interval, 10_000);
    let (mut summit_open, mut bare_open) = (OpenLoop::default(), OpenLoop::default());
    for _ in 0..opts.rounds {
        for (open, addr) in [(&mut bare_open, bare_addr), (&mut summit_open, summit_addr)] {
            let round = fixed_rate(addr, opts.rate, latency_connections, window).await;
            open.add(round);
        }
    }

    let access = if support::BEARER.get().is_some() {
        "access control on, bearer token, rate limiting off"
    } else {
        "access control off"
    };
    println!(
        "\n### effective_read ({CONFIGS} configs, responses of about {body_len} bytes, {access})\n"
    );
    println!("| measure | figure |\n|---|---|");
    println!(
        "| writes, 1 writer | {seq_rate:.0} versions/s, p50 {}, p99 {} |",
        ms(percentile(&seq, 0.5)),
        ms(percentile(&seq, 0.99))
    );
    println!(
        "| writes, 8 writers | {conc_rate:.0} versions/s, p50 {}, p99 {} |",
        ms(percentile(&conc, 0.5)),
        ms(percentile(&conc, 0.99))
    );
    for (generator, results) in [
        (
            format!("closed loop, this process, {} conns", opts.connections),
            &closed,
        ),
        ("wrk -t2 -c32".to_owned(), &external),
    ] {
        for (name, rounds) in results.iter() {
            if rounds.is_empty() {
                continue;
            }
            println!("| reads, {name}, {generator} | {} |", compare(rounds));
        }
    }
    if external.is_empty() && !open_only {
        println!("| reads with wrk | skipped: `wrk` is not installed (`apt-get install wrk`) |");
    }
    println!(
        "| this machine: a thread sleeping {} wakes late by | p50 {}, p99 {} (a floor under the latencies below) |",
        ms(interval),
        ms(wake_p50),
        ms(wake_p99)
    );
    for (who, open) in [("summit-config", summit_open), ("bare axum", bare_open)] {
        let (achieved, lat, late) = open.finish();
        println!(
            "| {who}: reads at {} req/s offered (achieved {achieved:.0}), 1,000 configs, {} rounds | p50 {}, p90 {}, p99 {} (rounds {}), p99.9 {}, max {}; writes p50 {} and p99 {} after their due time |",
            opts.rate,
            opts.rounds,
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.9)),
            ms(percentile(&lat, 0.99)),
            open.round_p99s(),
            ms(percentile(&lat, 0.999)),
            ms(percentile(&lat, 1.0)),
            ms(percentile(&late, 0.5)),
            ms(percentile(&late, 0.99)),
        );
    }
}

/// One server's open-loop rounds, merged.
#[derive(Default)]
struct OpenLoop {
    latencies: Vec<Duration>,
    lateness: Vec<Duration>,
    achieved: Vec<f64>,
    round_p99: Vec<Duration>,
}

impl OpenLoop {
    fn add(&mut self, round: OpenRound) {
        self.round_p99.push(percentile(&round.latencies, 0.99));
        self.achieved.push(round.achieved);
        self.latencies.extend(round.latencies);
        self.lateness.extend(round.lateness);
    }

    /// The mean achieved rate, and every latency and lateness, sorted.
    fn finish(&self) -> (f64, Vec<Duration>, Vec<Duration>) {
        let mut latencies = self.latencies.clone();
        latencies.sort();
        let mut lateness = self.lateness.clone();
        lateness.sort();
        let achieved = self.achieved.iter().sum::<f64>() / self.achieved.len() as f64;
        (achieved, latencies, lateness)
    }

    /// Each round's p99, in order.
    fn round_p99s(&self) -> String {
        let p99s: Vec<String> = self
            .round_p99
            .iter()
            .map(|p| format!("{:.3}", p.as_secs_f64() * 1e3))
            .collect();
        format!("{} ms", p99s.join(", "))
    }
}
