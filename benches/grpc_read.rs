//! gRPC read benchmark: unary `GetEffectiveConfig` on the release server (its own process,
//! SQLite, 1,000 configs of about 2 KB with a 10% production canary) against a bare tonic unary
//! handler (also its own process) that answers each request with the very message summit-config
//! gave for it, in the same run, alternating. The headline is each server's own CPU time per
//! request (user + system from `/proc/<pid>/stat` over the measured window, divided by the calls
//! it answered); beside it throughput and latency. Two mixes: one hot config and key, and 1,000
//! configs × 8,192 assignment keys. The load generator is the generated tonic client, 64 calls in
//! flight over 4 HTTP/2 connections.
//!
//! `cargo bench --bench grpc_read` (options: `-- --seconds 5 --rounds 3 --in-flight 64
//! --channels 4`; `--auth` to check a bearer token on every call).
//! Not a test: it asserts nothing about speed and prints a Markdown table for docs/performance.md.

mod support;

use support::{
    Measured, Server, config_body, connect, free_port, median, percentile, send, wait_until_up,
};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

const CONFIGS: usize = 1_000;
const KEYS: usize = 8_192;
const METHOD: &str = "/summit.config.v1.ConfigService/GetEffectiveConfig";

struct Options {
    seconds: u64,
    rounds: usize,
    in_flight: usize,
    channels: usize,
}

fn options() -> Options {
    Options {
        seconds: support::arg("--seconds", 5),
        rounds: support::arg("--rounds", 3) as usize,
        in_flight: support::arg("--in-flight", 64) as usize,
        channels: support::arg("--channels", 4) as usize,
    }
}

type Client = ConfigServiceClient<InterceptedService<Channel, Bearer>>;
type Bearer = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// Adds the benchmark's bearer token (with `--auth`) to every call.
fn bearer(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if let Some(token) = support::BEARER.get() {
        let value = format!("Bearer {token}").parse().expect("ASCII token");
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// One HTTP/2 connection, Nagle off.
async fn client(addr: SocketAddr) -> Client {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect to the gRPC listener");
    ConfigServiceClient::with_interceptor(channel, bearer as Bearer)
}

/// The spread mix: 8,192 assignment keys over the 1,000 configs, production.
fn spread_requests() -> Vec<pb::GetEffectiveConfigRequest> {
    (0..KEYS)
        .map(|n| pb::GetEffectiveConfigRequest {
            config_id: format!("cfg-{:04}", (n * 7919) % CONFIGS),
            environment: "production".into(),
            assignment: Some(pb::get_effective_config_request::Assignment::AssignmentKey(
                format!("user-{n}"),
            )),
            resolve_secrets: false,
            instance_id: String::new(),
        })
        .collect()
}

/// What the bare server looks a request up by.
fn key_of(request: &pb::GetEffectiveConfigRequest) -> (String, String) {
    let key = match &request.assignment {
        Some(pb::get_effective_config_request::Assignment::AssignmentKey(key)) => key.clone(),
        _ => String::new(),
    };
    (request.config_id.clone(), key)
}

// ---- the bare tonic server -------------------------------------------------------------------

/// A bare tonic service: `GetEffectiveConfig` only, answered with a clone of the message
/// summit-config gave for the same request; the same codec as summit-config's generated code.
#[derive(Clone)]
struct Bare(Arc<HashMap<(String, String), pb::EffectiveConfig>>);

impl tonic::server::NamedService for Bare {
    const NAME: &'static str = "summit.config.v1.ConfigService";
}

impl tower::Service<axum::http::Request<tonic::body::Body>> for Bare {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        let answers = self.0.clone();
        Box::pin(async move {
            if request.uri().path() != METHOD {
                return Ok(tonic::Status::unimplemented("").into_http());
            }
            let handler = tower::service_fn(
                move |request: tonic::Request<pb::GetEffectiveConfigRequest>| {
                    let answer = answers.get(&key_of(request.get_ref())).cloned();
                    async move {
                        answer
                            .map(tonic::Response::new)
                            .ok_or_else(|| tonic::Status::not_found("no recorded answer"))
                    }
                },
            );
            let codec = summit_config::api::grpc::codec::CompactCodec::default();
            Ok(tonic::server::Grpc::new(codec)
                .unary(handler, request)
                .await)
        })
    }
}

/// Runs the bare server on `port` with the answers in `file` (length-delimited request, answer
/// pairs), until killed.
fn run_bare_server(port: u16, file: &str) {
    let mut bytes = Bytes::from(std::fs::read(file).unwrap());
    let mut answers = HashMap::new();
    while !bytes.is_empty() {
        let request = pb::GetEffectiveConfigRequest::decode_length_delimited(&mut bytes).unwrap();
        let answer = pb::EffectiveConfig::decode_length_delimited(&mut bytes).unwrap();
        answers.insert(key_of(&request), answer);
    }
    let bare = Bare(Arc::new(answers));
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(bare)
                .serve(([127, 0, 0, 1], port).into())
                .await
                .unwrap();
        });
}

// ---- measuring -------------------------------------------------------------------------------

/// Writes every config once over REST, from 8 concurrent connections.
async fn load_configs(http: SocketAddr) {
    let writers = 8;
    let tasks = (0..writers).map(|w| {
        tokio::spawn(async move {
            let mut sender = connect(http).await;
            for i in (w..CONFIGS).step_by(writers) {
                let body = Bytes::from(serde_json::to_vec(&config_body(i, 0)).unwrap());
                let path = format!("/api/v1/configs/cfg-{i:04}");
                let (status, text) = send(&mut sender, "PUT", &path, body).await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&text));
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
}

/// One measured phase: throughput, CPU per call and the latencies of the counted calls.
struct Phase {
    measured: Measured,
    latencies: Vec<Duration>,
}

/// Closed loop: `in_flight` tasks over `channels` connections call back-to-back; counts the
/// calls started and answered in a window after a half-second warm-up, and the CPU time the
/// process `server` spent in it.
async fn closed_loop(
    addr: SocketAddr,
    server: u32,
    requests: &Arc<Vec<pb::GetEffectiveConfigRequest>>,
    opts: &Options,
) -> Phase {
    let mut clients = Vec::new();
    for _ in 0..opts.channels.max(1) {
        clients.push(client(addr).await);
    }
    // 0: warm-up, 1: measuring, 2: stop.
    let phase = Arc::new(AtomicU8::new(0));
    let counted = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..opts.in_flight)
        .map(|t| {
            let mut client = clients[t % clients.len()].clone();
            let (requests, phase, counted) = (requests.clone(), phase.clone(), counted.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = t * 131;
                loop {
                    let before = phase.load(Ordering::Relaxed);
                    if before == 2 {
                        break;
                    }
                    let started = Instant::now();
                    let answer = client
                        .get_effective_config(requests[n % requests.len()].clone())
                        .await
                        .expect("GetEffectiveConfig");
                    let elapsed = started.elapsed();
                    assert!(!answer.get_ref().effective_config_json.is_empty());
                    if before == 1 && phase.load(Ordering::Relaxed) == 1 {
                        latencies.push(elapsed);
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = support::cpu::process_seconds(server);
    let started = Instant::now();
    phase.store(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
    phase.store(2, Ordering::Relaxed);
    let (window, cpu) = (
        started.elapsed(),
        support::cpu::process_seconds(server) - cpu_before,
    );
    let mut latencies = Vec::new();
    for task in futures::future::join_all(tasks).await {
        latencies.extend(task.expect("a closed-loop task failed"));
    }
    latencies.sort();
    let requests = counted.load(Ordering::Relaxed);
    Phase {
        measured: Measured {
            per_second: requests as f64 / window.as_secs_f64(),
            requests,
            cpu_per_request: cpu / requests.max(1) as f64,
        },
        latencies,
    }
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
    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let grpc: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let summit = Server(
        support::summit(dir.path(), http)
            .env("SUMMIT_GRPC_ADDR", grpc.to_string())
            .envs(support::access_env())
            .spawn()
            .expect("start summit-config"),
    );
    wait_until_up(http).await;
    wait_until_up(grpc).await;
    load_configs(http).await;

    // summit-config's answer to every request, for the bare server to return.
    let spread = Arc::new(spread_requests());
    let hot = Arc::new(vec![spread[0].clone()]);
    let mut probe = client(grpc).await;
    let mut recorded = Vec::new();
    let mut answer_bytes = 0;
    for request in spread.iter() {
        let answer = probe
            .get_effective_config(request.clone())
            .await
            .expect("GetEffectiveConfig")
            .into_inner();
        answer_bytes = answer.encoded_len();
        request.encode_length_delimited(&mut recorded).unwrap();
        answer.encode_length_delimited(&mut recorded).unwrap();
    }
    let answers_file = dir.path().join("answers.bin");
    std::fs::write(&answers_file, recorded).unwrap();
    let (bare, bare_addr) = support::spawn_bare(&answers_file).await;

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n### grpc_read ({} configs; answers of {answer_bytes} bytes; access control {}; {} calls in flight over {} connections; {} rounds of {} s per server and mix; load average at start: {})\n",
        CONFIGS,
        if support::BEARER.get().is_some() {
            "on (bearer token)"
        } else {
            "off"
        },
        opts.in_flight,
        opts.channels,
        opts.rounds,
        opts.seconds,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "| mix | server CPU per call: summit-config / bare tonic | ratio | calls/s: summit-config / bare | p50 / p99: summit-config | p50 / p99: bare |\n|---|---|---|---|---|---|"
    );
    let (summit_pid, bare_pid) = (summit.0.id(), bare.0.id());
    for (mix, requests) in [
        ("hot (1 config, 1 key)", &hot),
        ("spread (1,000 configs × 8,192 keys)", &spread),
    ] {
        // Alternate the two servers round by round so drift in machine load hits both alike;
        // medians of the per-round figures, latencies of the last round.
        let mut rounds = Vec::new();
        for round in 0..opts.rounds.max(1) {
            let (s, b) = if round % 2 == 0 {
                let s = closed_loop(grpc, summit_pid, requests, &opts).await;
                (s, closed_loop(bare_addr, bare_pid, requests, &opts).await)
            } else {
                let b = closed_loop(bare_addr, bare_pid, requests, &opts).await;
                (closed_loop(grpc, summit_pid, requests, &opts).await, b)
            };
            rounds.push((s, b));
        }
        let summit_cpu = median(rounds.iter().map(|(s, _)| s.measured.cpu_us()).collect());
        let bare_cpu = median(rounds.iter().map(|(_, b)| b.measured.cpu_us()).collect());
        let ratio = median(
            rounds
                .iter()
                .map(|(s, b)| s.measured.cpu_us() / b.measured.cpu_us().max(f64::MIN_POSITIVE))
                .collect(),
        );
        let summit_rate = median(rounds.iter().map(|(s, _)| s.measured.per_second).collect());
        let bare_rate = median(rounds.iter().map(|(_, b)| b.measured.per_second).collect());
        let (last_s, last_b) = rounds.last().unwrap();
        let p = |phase: &Phase, q: f64| support::ms(percentile(&phase.latencies, q));
        println!(
            "| {mix} | {summit_cpu:.1} / {bare_cpu:.1} µs | **{ratio:.2}×** | {summit_rate:.0} / {bare_rate:.0} ({:.1}%) | {} / {} | {} / {} |",
            100.0 * summit_rate / bare_rate.max(f64::MIN_POSITIVE),
            p(last_s, 0.5),
            p(last_s, 0.99),
            p(last_b, 0.5),
            p(last_b, 0.99),
        );
    }
}
