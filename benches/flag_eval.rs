//! Flag evaluation benchmark: 40 flags (every type, with conditions, target keys, splits,
//! percentage rollouts and a prerequisite) in the real server (release binary, its own process,
//! SQLite), evaluated with 1,024 different contexts, for
//!   - one flag over REST (`POST /api/v1/feature-flags/evaluate`) and OFREP
//!     (`POST /ofrep/v1/evaluate/flags/{key}`);
//!   - a batch of 20 flags over REST (`/evaluate/batch` naming 20 keys) and OFREP (bulk
//!     evaluation of the 20 flags meant for one service).
//!
//! Each case runs closed loop saturated (`--connections`, default 64) for evaluations/s, with the
//! server process's CPU time per request (from `/proc/<pid>/stat`), in `--rounds` (default 3)
//! that alternate with a **bare axum server** (its own process) that reads each request's body
//! and answers the very bytes summit-config gave for that path and body: the median of the
//! per-round CPU-per-request ratios is the figure issue 18 sets a target for (1.5×). Then once
//! lightly loaded (4 connections) for latency. Then the same requests from `wrk -t2 -c32` (a
//! leaner load generator, when installed), alternating with the bare server in as many rounds.
//! Prints Markdown tables for docs/performance.md.
//! `cargo bench --bench flag_eval` (`-- --seconds 5 --rounds 3 --connections 64`; `-- --auth`
//! to run with access control on, every request carrying a bearer token; `-- --single` for the
//! two single-flag cases only, which issue 18 sets the target for).

mod support;

use support::{
    Server, compare, connect, free_port, median, ms, percentile, send, wait_until_up, wrk,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

const FLAGS: usize = 40;
const CONTEXTS: usize = 1024;

/// Flag `i`: every fourth of each type; the even ones are meant for service `web` (20 flags).
fn flag(i: usize) -> Value {
    let (kind, variants) = match i % 4 {
        0 => ("boolean", json!({"on": true, "off": false})),
        1 => ("string", json!({"on": "new", "off": "old"})),
        2 => ("number", json!({"on": 250, "off": 10})),
        _ => (
            "object",
            json!({"on": {"rps": 500, "burst": 1000}, "off": {"rps": 5, "burst": 10}}),
        ),
    };
    let mut rules = vec![
        json!({"id": "staff", "conditions": [
            {"attribute": "email", "operator": "ends_with", "value": "@acme.com"},
            {"attribute": "country", "operator": "in", "value": ["de", "fr", "nl"]}], "variant": "on"}),
        json!({"id": "vips", "targetKeys": ["user-1", "user-2", "user-3"], "variant": "on"}),
        json!({"id": "new-app", "conditions": [
            {"attribute": "appVersion", "operator": "semver_gt", "value": "3.0.0"}],
            "split": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 3}]}),
    ];
    if i > 0 && i.is_multiple_of(10) {
        rules.push(json!({"id": "after-flag-0", "prerequisites": [{"flagKey": "flag-00", "variants": ["on"]}],
                          "variant": "on"}));
    }
    json!({
        "type": kind, "variants": variants, "defaultVariant": "off",
        "services": if i.is_multiple_of(2) { json!(["web"]) } else { json!(["api"]) },
        "environments": {"production": {"rules": rules, "rollout": {"variant": "on", "percentage": 25}}},
        "metadata": {"actor": "bench"}
    })
}

fn context(n: usize) -> Value {
    json!({
        "targetingKey": format!("user-{n}"),
        "email": if n.is_multiple_of(5) { format!("u{n}@acme.com") } else { format!("u{n}@example.com") },
        "country": (["de", "us", "fr", "jp"][n % 4]),
        "appVersion": format!("{}.{}.0", 2 + n % 3, n % 7),
        "environment": "production"
    })
}

struct Case {
    name: &'static str,
    flags_per_request: usize,
    requests: Arc<Vec<(String, Bytes)>>,
}

fn cases() -> Vec<Case> {
    let bodies = |build: &dyn Fn(usize) -> (String, Value)| {
        Arc::new(
            (0..CONTEXTS)
                .map(|n| {
                    let (path, body) = build(n);
                    (path, Bytes::from(serde_json::to_vec(&body).unwrap()))
                })
                .collect::<Vec<_>>(),
        )
    };
    let twenty: Vec<String> = (0..FLAGS)
        .step_by(2)
        .map(|i| format!("flag-{i:02}"))
        .collect();
    vec![
        Case {
            name: "REST, 1 flag",
            flags_per_request: 1,
            requests: bodies(&|n| {
                (
                    "/api/v1/feature-flags/evaluate".into(),
                    json!({"flagKey": format!("flag-{:02}", n % FLAGS), "environment": "production",
                           "context": context(n)}),
                )
            }),
        },
        Case {
            name: "OFREP, 1 flag",
            flags_per_request: 1,
            requests: bodies(&|n| {
                (
                    format!("/ofrep/v1/evaluate/flags/flag-{:02}", n % FLAGS),
                    json!({"context": context(n)}),
                )
            }),
        },
        Case {
            name: "REST, batch of 20",
            flags_per_request: 20,
            requests: bodies(&|n| {
                (
                    "/api/v1/feature-flags/evaluate/batch".into(),
                    json!({"flagKeys": twenty, "environment": "production", "context": context(n)}),
                )
            }),
        },
        Case {
            name: "OFREP bulk, 20 flags",
            flags_per_request: 20,
            requests: bodies(&|n| {
                let mut context = context(n);
                context["service"] = json!("web");
                (
                    "/ofrep/v1/evaluate/flags".into(),
                    json!({"context": context}),
                )
            }),
        },
    ]
}

/// Closed loop over `connections` for `window` after a warm-up: (requests/s, sorted latencies,
/// the server process's CPU µs per request over the window).
async fn run(
    addr: SocketAddr,
    server: u32,
    requests: Arc<Vec<(String, Bytes)>>,
    connections: usize,
    window: Duration,
) -> (f64, Vec<Duration>, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (requests, stop, measuring) = (requests.clone(), stop.clone(), measuring.clone());
            tokio::spawn(async move {
                let mut sender = connect(addr).await;
                let mut latencies = Vec::new();
                let mut n = c * 131;
                while !stop.load(Ordering::Relaxed) {
                    let (path, body) = &requests[n % requests.len()];
                    let t = Instant::now();
                    let (status, text) = send(&mut sender, "POST", path, body.clone()).await;
                    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&text));
                    if measuring.load(Ordering::Relaxed) {
                        latencies.push(t.elapsed());
                    }
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    measuring.store(true, Ordering::Relaxed);
    let (started, cpu_before) = (Instant::now(), support::cpu::process_seconds(server));
    tokio::time::sleep(window).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu_spent = support::cpu::process_seconds(server) - cpu_before;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in futures::future::join_all(tasks).await {
        latencies.extend(task.expect("a connection failed"));
    }
    latencies.sort();
    let cpu_us = 1e6 * cpu_spent / latencies.len().max(1) as f64;
    (
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies,
        cpu_us,
    )
}

/// The baseline: any POST answered with the bytes summit-config gave for that path and body
/// (`bodies_file`: one `path<TAB>body<TAB>answer` a line), after reading the body.
fn run_bare_server(port: u16, bodies_file: &str) {
    let answers: std::collections::HashMap<(String, Bytes), Bytes> =
        std::fs::read_to_string(bodies_file)
            .unwrap()
            .lines()
            .map(|line| {
                let mut parts = line.splitn(3, '\t');
                let (path, body, answer) = (parts.next(), parts.next(), parts.next());
                let key = (
                    path.unwrap().to_owned(),
                    Bytes::from(body.unwrap().to_owned()),
                );
                (key, Bytes::from(answer.unwrap().to_owned()))
            })
            .collect();
    let answers = Arc::new(answers);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: Bytes| {
            let answer = answers
                .get(&(uri.path().to_owned(), body))
                .cloned()
                .unwrap_or_default();
            async move { ([("content-type", "application/json")], answer) }
        });
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
    let seconds = support::arg("--seconds", 5);
    let connections = support::arg("--connections", 64) as usize;
    let rounds = support::arg("--rounds", 3).max(1) as usize;
    support::runtime().block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let server = Server(
            support::summit(dir.path(), addr)
                .envs(support::access_env())
                .spawn()
                .expect("start summit-config"),
        );
        wait_until_up(addr).await;
        let mut sender = connect(addr).await;
        for i in 0..FLAGS {
            let body = Bytes::from(serde_json::to_vec(&flag(i)).unwrap());
            let path = format!("/api/v1/feature-flags/flag-{i:02}");
            let (status, text) = send(&mut sender, "PUT", &path, body).await;
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&text));
        }
        // What summit-config answers for every request of every case, for the bare baseline.
        let single = std::env::args().any(|a| a == "--single");
        let cases: Vec<Case> = cases()
            .into_iter()
            .filter(|case| !single || case.flags_per_request == 1)
            .collect();
        let mut answers = String::new();
        for case in &cases {
            for (path, body) in case.requests.iter() {
                let (status, answer) = send(&mut sender, "POST", path, body.clone()).await;
                assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&answer));
                let body = std::str::from_utf8(body).unwrap();
                let answer = std::str::from_utf8(&answer).unwrap();
                answers.push_str(&format!("{path}\t{body}\t{answer}\n"));
            }
        }
        let answers_file = dir.path().join("answers.tsv");
        std::fs::write(&answers_file, answers).unwrap();
        let (bare, bare_addr) = support::spawn_bare(&answers_file).await;

        println!(
            "\nflag_eval: {}\n",
            if support::BEARER.get().is_some() {
                "access control on, every request with a bearer token, rate limiting off"
            } else {
                "access control off"
            }
        );
        println!(
            "| case | evaluations/s ({connections} conns) | requests/s | server CPU per request: summit-config / bare (ratio) | p50 / p99 ({connections} conns) | p50 / p99 (4 conns) |"
        );
        println!("|---|---|---|---|---|---|");
        let (pid, bare_pid) = (server.0.id(), bare.0.id());
        let window = Duration::from_secs(seconds);
        for case in &cases {
            // Alternate the two servers round by round so drift in machine load hits both
            // alike; medians of the per-round figures, latencies of the last round.
            let (mut summit, mut bare, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            let mut loaded = Vec::new();
            for round in 0..rounds {
                let bare_first = round % 2 == 0;
                let mut bare_cpu = 0.0;
                if bare_first {
                    bare_cpu = run(bare_addr, bare_pid, case.requests.clone(), connections, window)
                        .await
                        .2;
                }
                let (rate, latencies, cpu_us) =
                    run(addr, pid, case.requests.clone(), connections, window).await;
                if !bare_first {
                    bare_cpu = run(bare_addr, bare_pid, case.requests.clone(), connections, window)
                        .await
                        .2;
                }
                summit.push((rate, cpu_us));
                bare.push(bare_cpu);
                ratios.push(cpu_us / bare_cpu.max(f64::MIN_POSITIVE));
                loaded = latencies;
            }
            let rate = median(summit.iter().map(|(rate, _)| *rate).collect());
            let cpu_us = median(summit.iter().map(|(_, cpu)| *cpu).collect());
            let (bare_cpu, ratio) = (median(bare), median(ratios));
            let (_, light, _) = run(addr, pid, case.requests.clone(), 4, window).await;
            println!(
                "| {} | {:.0} | {:.0} | {cpu_us:.1} µs / {bare_cpu:.1} µs (**{ratio:.2}×**) | {} / {} | {} / {} |",
                case.name,
                rate * case.flags_per_request as f64,
                rate,
                ms(percentile(&loaded, 0.50)),
                ms(percentile(&loaded, 0.99)),
                ms(percentile(&light, 0.50)),
                ms(percentile(&light, 0.99)),
            );
        }
        // The same requests from `wrk`, a leaner generator than this process's hyper client.
        if !wrk::available() {
            println!("\n`wrk` is not installed (`apt-get install wrk`): its rounds are skipped.");
            return;
        }
        println!("\n| case, wrk -t2 -c32 | figures |\n|---|---|");
        for case in &cases {
            let requests = case.requests.iter().map(|(path, body)| {
                let body = std::str::from_utf8(body).expect("a JSON body");
                (path.as_str(), Some(body))
            });
            let script = wrk::script(dir.path(), "evaluations", "POST", requests);
            let pairs = wrk::rounds((addr, pid), (bare_addr, bare_pid), &script, rounds, window);
            println!("| {} | {} |", case.name, compare(&pairs));
        }
    });
}
