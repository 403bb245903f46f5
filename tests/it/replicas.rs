//! Several replicas of the real binary sharing one PostgreSQL database: writes through one are
//! read and watched through the other, concurrent writers get one winner per version, an outage
//! of the database degrades the replicas (stale reads, refused writes) and they recover without
//! missing a change, and acknowledged writes outlive the process.
//!
//! Every test skips (returns early) when the harness finds no PostgreSQL. Timings print on stderr
//! (`cargo test --test replicas -- --nocapture`); `TEST_LOG=1` echoes the replicas' logs.

use crate::common;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::postgres::{PgCluster, test_database_url};
use common::{body_of, meta};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// The longest any single step (a start-up, a request, one awaited event) may take.
const STEP: Duration = Duration::from_secs(15);
/// How often a condition that becomes true asynchronously is checked again.
const POLL: Duration = Duration::from_millis(5);

// ---- one replica: the real binary ---------------------------------------------------------

/// The real binary on an ephemeral port, logging JSON to stdout; killed if dropped.
struct Replica {
    name: &'static str,
    child: Child,
    base: String,
    /// Requests with a deadline.
    client: reqwest::Client,
    /// For SSE streams, which must not be cut by a request deadline.
    streaming: reqwest::Client,
}

impl Replica {
    /// A replica with access control off (the suite is about replication).
    async fn start(name: &'static str, database_url: &str) -> Replica {
        Self::start_with(name, database_url, &[("SUMMIT_NO_AUTH", "true")]).await
    }

    async fn start_with(name: &'static str, database_url: &str, env: &[(&str, &str)]) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_summit-config"))
            .envs(env.iter().copied())
            .env("SUMMIT_HTTP_ADDR", "127.0.0.1:0")
            .env("SUMMIT_GRPC_ADDR", "127.0.0.1:0")
            .env("SUMMIT_DATABASE_URL", database_url)
            .env("SUMMIT_LOG_FORMAT", "json")
            .env("SUMMIT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let addr = tokio::time::timeout(STEP, listening_addr(name, stdout))
            .await
            .unwrap_or_else(|_| panic!("replica {name} logs its address within {STEP:?}"));
        Replica {
            name,
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(STEP)
                .build()
                .expect("client"),
            streaming: reqwest::Client::builder()
                .connect_timeout(STEP)
                .build()
                .expect("streaming client"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.name))
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        body_of(self.get(path).await).await
    }

    /// GET that must answer 200 with JSON.
    async fn ok_json(&self, path: &str) -> Value {
        let (status, body) = self.get_json(path).await;
        assert_eq!(status, 200, "GET {path} on {}: {body}", self.name);
        body
    }

    async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path} on {}: {e}", self.name))
    }

    /// Writes a config version that must be accepted; returns its number.
    async fn put_config(&self, id: &str, body: &Value) -> u64 {
        let (status, created) =
            body_of(self.put(&format!("/api/v1/configs/{id}"), body).await).await;
        assert_eq!(status, 201, "PUT {id} on {}: {created}", self.name);
        created["version"].as_u64().expect("version")
    }

    async fn delete(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path} on {}: {e}", self.name))
    }

    /// The latest revision, as `/health` reports it.
    async fn revision(&self) -> u64 {
        let health = self.ok_json("/health").await;
        health["revision"].as_u64().expect("revision in /health")
    }

    /// The revision of the audit record of `id` at `version` for `action`.
    async fn revision_of(&self, id: &str, action: &str, version: u64) -> u64 {
        let audit = self
            .ok_json(&format!("/api/v1/configs/{id}/audit?limit=500"))
            .await;
        let record = audit["items"]
            .as_array()
            .expect("audit items")
            .iter()
            .find(|r| r["action"] == action && r["version"] == version)
            .unwrap_or_else(|| panic!("no {action} audit record of {id}@{version}: {audit}"));
        record["revision"].as_u64().expect("revision")
    }

    /// Every audit record (all configs), oldest first.
    async fn all_audit(&self) -> Vec<Value> {
        let mut records = Vec::new();
        let mut path = "/api/v1/audit?limit=500".to_owned();
        loop {
            let page = self.ok_json(&path).await;
            records.extend(
                page["items"]
                    .as_array()
                    .expect("audit items")
                    .iter()
                    .cloned(),
            );
            match page["nextCursor"].as_u64() {
                Some(cursor) => path = format!("/api/v1/audit?limit=500&cursor={cursor}"),
                None => break,
            }
        }
        records.reverse();
        records
    }

    /// Opens `GET /api/v1/watch?{query}`; the response has begun when this returns, so every
    /// change committed afterwards is delivered.
    async fn watch(&self, query: &str, last_event_id: Option<u64>) -> Watch {
        let mut request = self
            .streaming
            .get(self.url(&format!("/api/v1/watch?{query}")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = tokio::time::timeout(STEP, request.send())
            .await
            .unwrap_or_else(|_| panic!("watch on {} answers within {STEP:?}", self.name))
            .unwrap_or_else(|e| panic!("watch on {}: {e}", self.name));
        assert_eq!(response.status(), 200, "watch on {}", self.name);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Watch {
            body: Box::pin(response.bytes_stream()),
            text: String::new(),
        }
    }

    /// Sends SIGTERM and asserts a clean exit within `STEP`.
    async fn terminate(mut self) {
        let pid = self.child.id().expect("a running child has a pid");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}");
        let exit = tokio::time::timeout(STEP, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("replica {} exits within {STEP:?} of SIGTERM", self.name))
            .expect("wait");
        assert!(exit.success(), "replica {} exit status {exit}", self.name);
    }
}

/// Reads JSON log lines until the one with the bound `http` address, then keeps draining stdout
/// (echoing it when `TEST_LOG` is set) so the child never blocks on a full pipe.
async fn listening_addr(name: &'static str, stdout: ChildStdout) -> String {
    let echo = std::env::var_os("TEST_LOG").is_some();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .expect("stdout readable")
            .unwrap_or_else(|| panic!("replica {name} exited before listening"));
        if echo {
            eprintln!("[{name}] {line}");
        }
        let Ok(record) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(addr) = record["http"].as_str() {
            assert_eq!(record["message"], "summit-config listening", "{line}");
            let addr = addr.to_owned();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("[{name}] {line}");
                    }
                }
            });
            return addr;
        }
    }
}

// ---- SSE ----------------------------------------------------------------------------------

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct Watch {
    body: ByteStream,
    text: String,
}

/// One SSE event (keep-alive comments are skipped).
#[derive(Debug)]
struct SseEvent {
    id: Option<u64>,
    event: Option<String>,
    data: String,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data {self:?}: {e}"))
    }
}

/// What waiting for the next event gave.
#[derive(Debug)]
enum Next {
    Event(SseEvent),
    /// The server ended the stream (or the connection broke).
    Ended,
    TimedOut,
}

impl Watch {
    /// The next event within `wait`.
    async fn next(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.parse_one() {
                return Next::Event(event);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Next::TimedOut,
                Ok(None | Some(Err(_))) => return Next::Ended,
                Ok(Some(Ok(chunk))) => self
                    .text
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
            }
        }
    }

    /// The next event within `STEP`, which must be a change event.
    async fn change(&mut self) -> (u64, Value) {
        match self.next(STEP).await {
            Next::Event(event) => {
                assert_eq!(event.event, None, "not a change event: {event:?}");
                let id = event.id.unwrap_or_else(|| panic!("no id: {event:?}"));
                let data = event.json();
                assert_eq!(data["revision"], id, "id and revision agree: {event:?}");
                (id, data)
            }
            other => panic!("expected a change event within {STEP:?}, got {other:?}"),
        }
    }

    /// Nothing arrives for `wait`.
    async fn assert_quiet(&mut self, wait: Duration) {
        match self.next(wait).await {
            Next::TimedOut => {}
            other => panic!("expected no event for {wait:?}, got {other:?}"),
        }
    }

    fn parse_one(&mut self) -> Option<SseEvent> {
        while let Some(end) = self.text.find("\n\n") {
            let block: String = self.text.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, None, Vec::new());
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => id = Some(value.parse().expect("numeric event id")),
                    "event" => event = Some(value.to_owned()),
                    "data" => data.push(value.to_owned()),
                    _ => {} // comments (keep-alives) and unknown fields
                }
            }
            if id.is_some() || event.is_some() || !data.is_empty() {
                return Some(SseEvent {
                    id,
                    event,
                    data: data.join("\n"),
                });
            }
        }
        None
    }
}

// ---- helpers ------------------------------------------------------------------------------

/// Calls `check` every `POLL` until it gives `Some`, for at most `limit`; returns the value and
/// how long it took.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let polling = async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(POLL).await;
        }
    };
    match tokio::time::timeout(limit, polling).await {
        Ok(value) => (value, started.elapsed()),
        Err(_) => panic!("{what}: not within {limit:?}"),
    }
}

async fn start_pair(database_url: &str) -> (Replica, Replica) {
    // Both at once, as an orchestrator starts them: their migrations run concurrently.
    tokio::join!(
        Replica::start("a", database_url),
        Replica::start("b", database_url)
    )
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
}

fn content_type(response: &reqwest::Response) -> String {
    header(response, "content-type").unwrap_or_default()
}

fn versions_of(page: &Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page of versions, not {page}"))
        .iter()
        .map(|v| v["version"].as_u64().expect("version"))
        .collect()
}

// ---- 1. propagation -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_is_read_and_watched_through_the_other() {
    let Some(url) = test_database_url().await else {
        return;
    };
    let (a, b) = start_pair(&url).await;
    let effective = "/api/v1/configs/shared/effective?environment=prod";

    // Unknown on both before the write.
    assert_eq!(b.get_json(effective).await.0, 404);
    let mut watch = b.watch("configId=shared", None).await;

    let body = json!({
        "config": {"timeoutMs": 3000, "retries": 3},
        "overrides": {"prod": {"timeoutMs": 1000}},
        "metadata": meta("alice", "written through a"),
    });
    let (status, created) = body_of(a.put("/api/v1/configs/shared", &body).await).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);

    // From the moment a answered: b's read and b's watch, side by side.
    let answered = Instant::now();
    let ((read, read_took), (id, event, watch_took)) = tokio::join!(
        eventually("b serves a's write", STEP, || async {
            let (status, read) = b.get_json(effective).await;
            (status == 200).then_some(read)
        }),
        async {
            let (id, event) = watch.change().await;
            (id, event, answered.elapsed())
        },
    );
    eprintln!(
        "a → b: effective read has the write {} ms, watch delivers it {} ms after a answered 201",
        read_took.as_millis(),
        watch_took.as_millis()
    );
    assert_eq!(read["version"], 1);
    assert_eq!(
        read["effectiveConfig"],
        json!({"timeoutMs": 1000, "retries": 3})
    );
    // Both replicas render the same document.
    assert_eq!(a.ok_json(effective).await, read);
    assert_eq!(
        b.ok_json("/api/v1/configs/shared").await["checksum"],
        created["checksum"]
    );
    let revision = a.revision_of("shared", "config.put", 1).await;
    assert_eq!(id, revision, "{event}");
    assert_eq!(event["kind"], "config.updated");
    assert_eq!(event["configId"], "shared");
    assert_eq!(event["version"], 1);
    assert_eq!(event["checksum"], created["checksum"]);
    assert_eq!(event["actor"], "alice");
    assert_eq!(event["message"], "written through a");

    // A few more samples of the propagation delay (on another config: the watch filters it).
    let mut delays = Vec::new();
    for n in 1..=10u64 {
        let body = json!({"config": {"n": n}, "metadata": meta("alice", "timing")});
        a.put_config("timing", &body).await;
        let (_, took) = eventually("b serves a's latest write", STEP, || async {
            let (status, read) = b.get_json("/api/v1/configs/timing/effective").await;
            (status == 200 && read["version"] == n).then_some(())
        })
        .await;
        delays.push(took);
    }
    delays.sort();
    eprintln!(
        "a → b propagation over {} writes: min {} ms, median {} ms, max {} ms",
        delays.len(),
        delays[0].as_millis(),
        delays[delays.len() / 2].as_millis(),
        delays[delays.len() - 1].as_millis()
    );

    // A delete through a is seen by b.
    let response = a
        .delete(
            "/api/v1/configs/shared",
            &json!({"metadata": meta("bob", "retired"), "expectedVersion": 1}),
        )
        .await;
    let (status, deleted) = body_of(response).await;
    assert_eq!(status, 200, "{deleted}");
    let (_, took) = eventually("b no longer serves the deleted config", STEP, || async {
        let (status, _) = b.get_json(effective).await;
        (status == 404).then_some(())
    })
    .await;
    eprintln!("delete propagation a → b: {} ms", took.as_millis());
    let (status, problem) = b.get_json("/api/v1/configs/shared").await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["code"], "not_found");
    let listed = b.ok_json("/api/v1/configs").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["configId"], "timing", "{listed}");

    let revision = a.revision_of("shared", "config.delete", 1).await;
    let (id, event) = watch.change().await;
    assert_eq!(id, revision, "{event}");
    assert_eq!(event["kind"], "config.deleted");
    assert_eq!(event["version"], 1);
    assert_eq!(event["actor"], "bob");
    watch.assert_quiet(Duration::from_millis(500)).await;

    a.terminate().await;
    b.terminate().await;
}

// ---- 2. optimistic concurrency across replicas ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_through_different_replicas_have_one_winner_per_version() {
    const ROUNDS: u64 = 8;
    const WRITERS: usize = 6;
    let Some(url) = test_database_url().await else {
        return;
    };
    let (a, b) = start_pair(&url).await;
    let replicas = [&a, &b];
    let id = "contended";
    a.put_config(
        id,
        &json!({"config": {"round": 0}, "metadata": meta("setup", "v1")}),
    )
    .await;

    let mut winners = Vec::new();
    for round in 1..=ROUNDS {
        // Each round races on the database, not on a lagging cache: both replicas serve the
        // version every writer expects before they start.
        for replica in replicas {
            eventually(
                &format!("replica {} serves version {round}", replica.name),
                STEP,
                || async {
                    let (status, head) = replica.get_json(&format!("/api/v1/configs/{id}")).await;
                    (status == 200 && head["version"] == round).then_some(())
                },
            )
            .await;
        }
        let writes = (0..WRITERS).map(|writer| {
            let replica = replicas[writer % 2];
            let body = json!({
                "config": {"round": round, "writer": writer},
                "metadata": meta(&format!("writer-{writer}"), &format!("round {round}")),
                "expectedVersion": round,
            });
            async move {
                let response = replica.put(&format!("/api/v1/configs/{id}"), &body).await;
                let kind = content_type(&response);
                let (status, answer) = body_of(response).await;
                (writer, replica.name, status, kind, answer, body)
            }
        });
        let results = tokio::time::timeout(STEP, futures::future::join_all(writes))
            .await
            .expect("a round of writes answers in time");
        let mut won = Vec::new();
        for (writer, name, status, kind, answer, body) in results {
            match status {
                201 => {
                    assert_eq!(answer["version"], round + 1, "{answer}");
                    won.push((writer, name, body));
                }
                409 => {
                    assert!(kind.starts_with("application/problem+json"), "{kind}");
                    assert_eq!(answer["code"], "version_conflict", "{answer}");
                }
                other => panic!("round {round}, writer {writer} on {name}: {other} {answer}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one winner, got {:?}",
            won.iter().map(|(w, n, _)| (w, n)).collect::<Vec<_>>()
        );
        winners.push(won.remove(0));
    }
    let names: Vec<_> = winners.iter().map(|(_, name, _)| *name).collect();
    eprintln!("winning replica per round: {names:?}");

    let latest = ROUNDS + 1;
    for replica in replicas {
        // The history, newest first, is exactly latest..=1, each version the winner's write.
        let (history, _) = eventually(
            &format!("replica {} lists every version", replica.name),
            STEP,
            || async {
                let page = replica
                    .ok_json(&format!("/api/v1/configs/{id}/versions?limit=500"))
                    .await;
                (versions_of(&page).first() == Some(&latest)).then_some(page)
            },
        )
        .await;
        assert_eq!(
            versions_of(&history),
            (1..=latest).rev().collect::<Vec<_>>()
        );
        for (round, (_, _, body)) in (1..=ROUNDS).zip(&winners) {
            let stored = history["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["version"] == round + 1)
                .unwrap();
            assert_eq!(stored["config"], body["config"], "version {}", round + 1);
            assert_eq!(
                stored["metadata"],
                body["metadata"],
                "version {}",
                round + 1
            );
        }

        // One audit record per version, and nothing else.
        let audit = replica
            .ok_json(&format!("/api/v1/configs/{id}/audit?limit=500"))
            .await;
        let records = audit["items"].as_array().expect("audit items");
        let mut audited: Vec<u64> = records
            .iter()
            .map(|r| {
                assert_eq!(r["action"], "config.put", "{r}");
                r["version"].as_u64().expect("version")
            })
            .collect();
        audited.sort_unstable();
        assert_eq!(audited, (1..=latest).collect::<Vec<_>>(), "{audit}");
        let revisions: BTreeSet<u64> = records
            .iter()
            .map(|r| r["revision"].as_u64().unwrap())
            .collect();
        assert_eq!(revisions.len(), records.len(), "distinct revisions");
        // Rejected writes consume no revision: one per version, with no gap.
        assert_eq!(
            revisions.into_iter().collect::<Vec<_>>(),
            (1..=latest).collect::<Vec<_>>()
        );
        let head = replica.ok_json(&format!("/api/v1/configs/{id}")).await;
        assert_eq!(head["version"], latest);
    }

    a.terminate().await;
    b.terminate().await;
}

// ---- 3. a PostgreSQL outage ---------------------------------------------------------------

/// Reads `path` until the answer carries (or, with `stale == false`, lacks) `summit-stale`, for
/// at most 30 s; returns the status and the body of that answer.
async fn until_stale(replica: &Replica, path: &str, stale: bool) -> (u16, Bytes) {
    let (answer, _) = eventually(
        &format!(
            "replica {} {} summit-stale on {path}",
            replica.name,
            if stale { "sets" } else { "clears" }
        ),
        Duration::from_secs(30),
        || async {
            let response = replica.get(path).await;
            let marked = header(&response, "summit-stale");
            let status = response.status().as_u16();
            let body = response.bytes().await.expect("body");
            if let Some(value) = &marked {
                assert_eq!(value, "true", "the only value of summit-stale");
            }
            (marked.is_some() == stale).then_some((status, body))
        },
    )
    .await;
    answer
}

/// A PUT while the database is down: 503 problem+json `unavailable`; returns how long it took.
async fn refused_write(replica: &Replica) -> Duration {
    let body = json!({"config": {"mode": "lost"}, "metadata": meta("ops", "during the outage")});
    let asked = Instant::now();
    let response = replica.put("/api/v1/configs/outage", &body).await;
    let took = asked.elapsed();
    let kind = content_type(&response);
    let (status, problem) = body_of(response).await;
    assert_eq!(
        status, 503,
        "PUT on {} during the outage: {problem}",
        replica.name
    );
    assert!(kind.starts_with("application/problem+json"), "{kind}");
    assert_eq!(problem["code"], "unavailable", "{problem}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_serve_stale_reads_refuse_writes_and_recover_without_missing_events_when_postgres_stops()
 {
    let Some(cluster) = PgCluster::dedicated().await else {
        return;
    };
    let url = cluster.new_database().await;
    let (a, b) = start_pair(&url).await;
    let replicas = [&a, &b];
    let id = "outage";
    let effective = "/api/v1/configs/outage/effective?environment=prod";

    a.put_config(
        id,
        &json!({
            "config": {"mode": "v1", "limit": 10},
            "overrides": {"prod": {"limit": 100}},
            "metadata": meta("ops", "v1"),
        }),
    )
    .await;
    // Warm both caches: both read version 1, unmarked.
    let mut cached = Vec::new();
    for replica in replicas {
        let (read, _) = eventually(
            &format!("replica {} reads version 1", replica.name),
            STEP,
            || async {
                let response = replica.get(effective).await;
                let marked = header(&response, "summit-stale");
                let (status, read) = body_of(response).await;
                (status == 200 && read["version"] == 1).then_some((marked, read))
            },
        )
        .await;
        assert_eq!(read.0, None, "not stale while the database answers");
        assert_eq!(
            read.1["effectiveConfig"],
            json!({"mode": "v1", "limit": 100})
        );
        let response = replica.get(effective).await;
        cached.push(response.bytes().await.expect("body"));
    }
    assert_eq!(
        cached[0], cached[1],
        "both replicas render the same document"
    );

    // A watch on b from the current revision; it sees one change before the outage.
    let start_revision = b.revision().await;
    let mut watch = b
        .watch(&format!("fromRevision={start_revision}"), None)
        .await;
    a.put_config(
        "outage-marker",
        &json!({"config": {"before": true}, "metadata": meta("ops", "before the outage")}),
    )
    .await;
    let (seen_before, event) = watch.change().await;
    assert_eq!(seen_before, start_revision + 1, "{event}");
    assert_eq!(event["configId"], "outage-marker");
    let mut seen = vec![seen_before];

    // ---- the database goes away. a is left to its follower alone, so its first stale read
    // shows when the follower notices; b is asked to write at once, before anything noticed.
    cluster.stop().await;
    let stopped = Instant::now();
    let (noticed, first_write) = tokio::join!(
        async {
            let (status, body) = until_stale(&a, effective, true).await;
            (stopped.elapsed(), status, body)
        },
        refused_write(&b),
    );
    eprintln!(
        "replica a (follower only): summit-stale {} ms after PostgreSQL was down",
        noticed.0.as_millis()
    );
    eprintln!(
        "replica b: a PUT sent as PostgreSQL went down answered 503 in {} ms",
        first_write.as_millis()
    );
    assert!(
        first_write < Duration::from_secs(3),
        "a write fails fast even before the outage is noticed: {first_write:?}"
    );
    assert!(
        noticed.0 < Duration::from_secs(5),
        "a replica marks reads stale within a few seconds of the outage: {:?}",
        noticed.0
    );
    assert_eq!(noticed.1, 200, "a stale read still answers");
    assert_eq!(
        noticed.2, cached[0],
        "the stale read is the cached document"
    );
    let (status, body) = until_stale(&b, effective, true).await;
    eprintln!(
        "replica b: summit-stale {} ms after PostgreSQL was down",
        stopped.elapsed().as_millis()
    );
    assert_eq!(status, 200, "a stale read still answers");
    assert_eq!(body, cached[1], "the stale read is the cached document");
    // The cache answers a conditional read, and the latest version, too.
    let etag = header(&a.get(effective).await, "etag").expect("etag");
    let response = a
        .client
        .get(a.url(effective))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional read");
    assert_eq!(response.status(), 304);
    for replica in replicas {
        let head = replica.ok_json("/api/v1/configs/outage").await;
        assert_eq!(head["version"], 1);
    }

    for replica in replicas {
        let took = refused_write(replica).await;
        eprintln!(
            "replica {}: PUT once the outage is noticed answered 503 in {} ms",
            replica.name,
            took.as_millis()
        );
        assert!(
            took < Duration::from_secs(3),
            "the write failed fast: {took:?}"
        );

        let asked = Instant::now();
        let response = replica.get("/ready").await;
        let took = asked.elapsed();
        let kind = content_type(&response);
        let (status, problem) = body_of(response).await;
        eprintln!(
            "replica {}: /ready during the outage answered {status} in {} ms",
            replica.name,
            took.as_millis()
        );
        assert_eq!(status, 503, "{problem}");
        assert!(kind.starts_with("application/problem+json"), "{kind}");
        assert_eq!(problem["code"], "unavailable", "{problem}");
        assert_eq!(replica.get_json("/live").await.0, 200, "/live stays 200");
    }
    // A delete is refused the same way.
    let response = b
        .delete(
            "/api/v1/configs/outage-marker",
            &json!({"metadata": meta("ops", "lost")}),
        )
        .await;
    assert_eq!(response.status(), 503);

    // ---- the database comes back.
    cluster.start().await;
    let started = Instant::now();
    let (written, took) = eventually(
        "a accepts writes again",
        Duration::from_secs(30),
        || async {
            let body =
                json!({"config": {"mode": "v2", "limit": 20}, "metadata": meta("ops", "after")});
            let response = a.put("/api/v1/configs/outage", &body).await;
            let (status, answer) = body_of(response).await;
            match status {
                201 => Some(answer),
                503 => None,
                other => panic!("a write after recovery: {other} {answer}"),
            }
        },
    )
    .await;
    eprintln!(
        "writes accepted again {} ms after PostgreSQL accepted connections",
        took.as_millis()
    );
    assert_eq!(written["version"], 2, "the refused writes left nothing");
    for replica in replicas {
        let (status, _) = until_stale(replica, effective, false).await;
        eprintln!(
            "replica {}: summit-stale gone {} ms after PostgreSQL came back",
            replica.name,
            started.elapsed().as_millis()
        );
        assert_eq!(status, 200);
        let (read, _) = eventually(
            &format!("replica {} reads version 2", replica.name),
            STEP,
            || async {
                let (status, read) = replica.get_json(effective).await;
                (status == 200 && read["version"] == 2).then_some(read)
            },
        )
        .await;
        assert_eq!(read["effectiveConfig"], json!({"mode": "v2", "limit": 20}));
    }
    for replica in replicas {
        assert_eq!(
            replica.get_json("/ready").await.0,
            200,
            "{} ready",
            replica.name
        );
    }
    // More changes, through both replicas.
    a.put_config(
        id,
        &json!({"config": {"mode": "v3"}, "metadata": meta("ops", "v3")}),
    )
    .await;
    b.put_config(
        "outage-marker",
        &json!({"config": {"before": false}, "metadata": meta("ops", "through b")}),
    )
    .await;
    let response = b
        .delete(
            "/api/v1/configs/outage-marker",
            &json!({"metadata": meta("ops", "gone")}),
        )
        .await;
    assert_eq!(response.status(), 200);

    // The change log is the truth: every revision after the one seen before the outage.
    let log: Vec<u64> = a
        .all_audit()
        .await
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    let latest = *log.last().expect("changes");
    let expected: Vec<u64> = log.iter().copied().filter(|r| *r > seen_before).collect();
    assert_eq!(
        expected,
        (seen_before + 1..=latest).collect::<Vec<_>>(),
        "revisions go up by one per committed change, the outage included"
    );

    // b's watch: the same stream, or a reconnect with Last-Event-ID if it ended.
    let mut reconnects = 0;
    let recovering = Instant::now();
    while *seen.last().unwrap() < latest {
        match watch.next(STEP).await {
            Next::Event(event) if event.event.is_none() => {
                let id = event.id.unwrap_or_else(|| panic!("no id: {event:?}"));
                assert_eq!(event.json()["revision"], id);
                seen.push(id);
            }
            ended @ (Next::Event(_) | Next::Ended) => {
                // An `event: error` ends the stream too.
                eprintln!("b's watch ended ({ended:?}); reconnecting with Last-Event-ID");
                reconnects += 1;
                assert!(reconnects <= 3, "the watch keeps ending");
                watch = b.watch("", seen.last().copied()).await;
            }
            Next::TimedOut => panic!(
                "b's watch delivered {seen:?} and then nothing for {STEP:?} (latest {latest})"
            ),
        }
    }
    eprintln!(
        "b's watch caught up to revision {latest} {} ms after the last write ({reconnects} reconnects)",
        recovering.elapsed().as_millis()
    );
    let mut wanted = vec![seen_before];
    wanted.extend(&expected);
    assert_eq!(seen, wanted, "no gap and no duplicate across the outage");
    watch.assert_quiet(Duration::from_millis(500)).await;

    a.terminate().await;
    b.terminate().await;
}

// ---- 4. durability across a replica restart --------------------------------------------------

/// Everything a client reads back in `postgres_keeps_acknowledged_writes_across_a_replica_restart`.
#[derive(Debug, PartialEq)]
struct Snapshot {
    config: Value,
    versions: Value,
    schema: Value,
    audit: Value,
    effective: Value,
    listed: Value,
    deleted_status: u16,
}

async fn read_all(replica: &Replica) -> Snapshot {
    Snapshot {
        config: replica.ok_json("/api/v1/configs/durable").await,
        versions: replica
            .ok_json("/api/v1/configs/durable/versions?limit=500")
            .await,
        schema: replica.ok_json("/api/v1/configs/durable/schema").await,
        audit: replica.ok_json("/api/v1/audit?limit=500").await,
        effective: replica
            .ok_json("/api/v1/configs/durable/effective?environment=prod")
            .await,
        listed: replica.ok_json("/api/v1/configs").await,
        deleted_status: replica.get_json("/api/v1/configs/brief").await.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_acknowledged_writes_across_a_replica_restart() {
    let Some(url) = test_database_url().await else {
        return;
    };
    let first = Replica::start("first", &url).await;
    let schema = json!({"type": "object", "required": ["port"]});
    let response = first
        .put(
            "/api/v1/configs/durable/schema",
            &json!({"schema": schema, "metadata": meta("ops", "typed")}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let mut acknowledged = Vec::new();
    for port in [8080, 8081, 8082] {
        let body = json!({
            "config": {"port": port},
            "overrides": {"prod": {"tls": true}},
            "metadata": meta("alice", &format!("port {port}")),
        });
        let (status, created) = body_of(first.put("/api/v1/configs/durable", &body).await).await;
        assert_eq!(status, 201, "{created}");
        acknowledged.push(created);
    }
    first
        .put_config(
            "brief",
            &json!({"config": {"x": 1}, "metadata": meta("bob", "short-lived")}),
        )
        .await;
    let response = first
        .delete(
            "/api/v1/configs/brief",
            &json!({"metadata": meta("bob", "gone")}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let revisions = 6; // schema, three versions, a put and a delete

    let before = read_all(&first).await;
    assert_eq!(versions_of(&before.versions), vec![3, 2, 1]);
    assert_eq!(before.audit["items"].as_array().unwrap().len(), revisions);
    assert_eq!(before.deleted_status, 404);

    // An open watch does not hold the shutdown up, and ends with it.
    let mut watch = first.watch("fromRevision=0", None).await;
    for revision in 1..=revisions as u64 {
        assert_eq!(watch.change().await.0, revision);
    }
    first.terminate().await;
    match watch.next(STEP).await {
        Next::Ended => {}
        other => panic!("the watch ends with the server, got {other:?}"),
    }

    let second = Replica::start("second", &url).await;
    let after = read_all(&second).await;
    assert_eq!(after, before, "every read is the same after the restart");
    for (created, version) in acknowledged.iter().zip(1..) {
        let stored = second
            .ok_json(&format!("/api/v1/configs/durable/versions/{version}"))
            .await;
        assert_eq!(stored["checksum"], created["checksum"]);
        assert_eq!(stored["createdAt"], created["createdAt"]);
    }

    // The change log replays from revision 0, in order, matching the audit.
    let mut replay = second.watch("fromRevision=0", None).await;
    let mut replayed = Vec::new();
    for _ in 0..revisions {
        replayed.push(replay.change().await);
    }
    replay.assert_quiet(Duration::from_millis(300)).await;
    let audit: Vec<&Value> = after.audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .collect();
    for ((revision, event), record) in replayed.iter().zip(&audit) {
        assert_eq!(Some(*revision), record["revision"].as_u64());
        assert_eq!(event["configId"], record["configId"]);
        assert_eq!(event["version"], record["version"]);
        assert_eq!(event["actor"], record["actor"]);
    }
    let kinds: Vec<_> = replayed
        .iter()
        .map(|(_, e)| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "schema.updated",
            "config.updated",
            "config.updated",
            "config.updated",
            "config.updated",
            "config.deleted"
        ]
    );
    assert_eq!(
        replayed.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        (1..=revisions as u64).collect::<Vec<_>>()
    );

    // Counters continue: no version or revision is reused; the replay stream sees it live.
    let version = second
        .put_config(
            "durable",
            &json!({"config": {"port": 9000}, "metadata": meta("alice", "after restart")}),
        )
        .await;
    assert_eq!(version, 4);
    let (revision, event) = replay.change().await;
    assert_eq!(revision, revisions as u64 + 1);
    assert_eq!(event["version"], 4);
    second.terminate().await;
}

// ---- 5. the stale mark on every read the cache answers ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_answered_from_the_cache_during_an_outage_is_marked_stale() {
    let Some(cluster) = PgCluster::dedicated().await else {
        return;
    };
    let url = cluster.new_database().await;
    let replica = Replica::start("solo", &url).await;
    let effective = "/api/v1/configs/marked/effective?environment=prod";
    replica
        .put_config(
            "marked",
            &json!({"config": {"on": true}, "metadata": meta("ops", "v1")}),
        )
        .await;
    let etag = header(&replica.get(effective).await, "etag").expect("etag");

    cluster.stop().await;
    until_stale(&replica, effective, true).await;

    // Every read that still answers (from the cache) must say it may be out of date.
    let mut unmarked = Vec::new();
    for path in ["/api/v1/configs/marked", "/api/v1/configs"] {
        let response = replica.get(path).await;
        assert_eq!(
            response.status(),
            200,
            "GET {path} is answered from the cache"
        );
        if header(&response, "summit-stale").as_deref() != Some("true") {
            unmarked.push(format!("GET {path} (200)"));
        }
    }
    let response = replica
        .client
        .get(replica.url(effective))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional read");
    assert_eq!(response.status(), 304);
    if header(&response, "summit-stale").as_deref() != Some("true") {
        unmarked.push(format!("GET {effective} with If-None-Match (304)"));
    }
    assert!(
        unmarked.is_empty(),
        "served from the cache without summit-stale: {unmarked:?}"
    );

    cluster.start().await;
    replica.terminate().await;
}

// ---- 6. a write cut off by a PostgreSQL shutdown ------------------------------------------

/// `WRITE_LOCK_KEY` in src/store/postgres.rs: every write transaction takes it first.
const WRITE_LOCK_KEY: i64 = 0x5375_6d6d_6974;

/// A connection of the test's own, to hold a lock that a replica's write then waits on.
async fn blocker(url: &str) -> PgConnection {
    tokio::time::timeout(STEP, PgConnection::connect(url))
        .await
        .expect("connects in time")
        .expect("connects")
}

/// Sends a PUT in the background; it answers once it is no longer held up.
fn put_in_background(
    replica: &Replica,
    id: &str,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = replica
        .client
        .put(replica.url(&format!("/api/v1/configs/{id}")))
        .json(&body);
    tokio::spawn(async move { body_of(request.send().await.expect("PUT answered")).await })
}

/// Waits until a replica's query waits on a lock held by `blocker`.
async fn until_a_write_waits(blocker: &mut PgConnection) {
    let waiting = async {
        loop {
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = 'summit-config' AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut *blocker)
            .await
            .expect("pg_stat_activity");
            if count > 0 {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::time::timeout(STEP, waiting)
        .await
        .expect("the replica's write waits on the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_by_a_postgres_shutdown_answers_503() {
    let Some(cluster) = PgCluster::dedicated().await else {
        return;
    };
    let url = cluster.new_database().await;
    let replica = Replica::start("solo", &url).await;
    replica
        .put_config(
            "cut",
            &json!({"config": {"v": 1}, "metadata": meta("ops", "v1")}),
        )
        .await;

    // The write waits for the writers' lock, inside its transaction, when the database stops.
    let mut holder = blocker(&url).await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(WRITE_LOCK_KEY)
        .execute(&mut holder)
        .await
        .expect("take the writers' lock");
    let put = put_in_background(
        &replica,
        "cut",
        json!({"config": {"v": 2}, "metadata": meta("ops", "cut off")}),
    );
    until_a_write_waits(&mut holder).await;
    cluster.stop().await;
    drop(holder);

    let (status, problem) = tokio::time::timeout(STEP, put)
        .await
        .expect("the cut-off write answers in time")
        .expect("PUT task");
    cluster.start().await;
    // Shutdown races the write: usually the server ends its session (503, nothing written);
    // on a loaded machine the lock can be granted and the commit finish first (201, written).
    // Never an internal error, and the answer matches what the database kept.
    match status {
        503 => assert_eq!(problem["code"], "unavailable", "{problem}"),
        201 => assert_eq!(problem["version"], 2, "{problem}"),
        other => panic!("a write cut off by a shutdown answered {other}: {problem}"),
    }
    let kept = eventually("the replica reads the database again", STEP, || async {
        let (code, page) = replica.get_json("/api/v1/configs/cut/versions").await;
        (code == 200).then(|| versions_of(&page))
    })
    .await
    .0;
    let expected: Vec<u64> = if status == 201 { vec![2, 1] } else { vec![1] };
    assert_eq!(
        kept, expected,
        "the answer ({status}) matches what was kept"
    );
    replica.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_by_a_postgres_shutdown_leaves_no_gap_in_the_revisions() {
    let Some(cluster) = PgCluster::dedicated().await else {
        return;
    };
    let url = cluster.new_database().await;
    let replica = Replica::start("solo", &url).await;
    replica
        .put_config(
            "gapless",
            &json!({"config": {"v": 1}, "metadata": meta("ops", "v1")}),
        )
        .await;

    // The write has inserted its change (drawing a revision) and waits to insert its audit
    // record when the database stops.
    let mut holder = blocker(&url).await;
    sqlx::raw_sql("BEGIN; LOCK TABLE audit IN EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .expect("lock the audit table");
    let put = put_in_background(
        &replica,
        "gapless",
        json!({"config": {"v": 2}, "metadata": meta("ops", "cut off")}),
    );
    until_a_write_waits(&mut holder).await;
    cluster.stop().await;
    drop(holder);
    let (status, answer) = tokio::time::timeout(STEP, put)
        .await
        .expect("the cut-off write answers in time")
        .expect("PUT task");
    // Shutdown races the write (see a_write_cut_off_by_a_postgres_shutdown_answers_503): it
    // either committed (201) or left nothing; either way no revision may be skipped.
    assert!(matches!(status, 201 | 503), "{status}: {answer}");
    let committed = u64::from(status == 201);
    cluster.start().await;

    let (version, _) = eventually("writes are accepted again", STEP, || async {
        let body = json!({"config": {"v": 3}, "metadata": meta("ops", "after")});
        let (status, created) = body_of(replica.put("/api/v1/configs/gapless", &body).await).await;
        (status == 201).then(|| created["version"].as_u64().expect("version"))
    })
    .await;
    assert_eq!(
        version,
        2 + committed,
        "the cut-off write left a version only if it answered 201"
    );
    let mut revisions: Vec<u64> = replica
        .all_audit()
        .await
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    revisions.sort();
    let expected: Vec<u64> = (1..=2 + committed).collect();
    assert_eq!(
        revisions, expected,
        "one revision per committed change, no gap"
    );
    assert_eq!(replica.revision().await, 2 + committed);
    replica.terminate().await;
}

/// A client that reacts to a watch event by reading from the same replica sees that change:
/// a replica's watchers never run ahead of its cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_never_announces_a_change_its_reads_do_not_show_yet() {
    let Some(url) = test_database_url().await else {
        return;
    };
    let (a, b) = start_pair(&url).await;
    let mut watches = Vec::new();
    for replica in [&a, &b] {
        watches.push(replica.watch("configId=reactive", None).await);
    }
    for n in 1..=20u64 {
        let body = json!({"config": {"n": n}, "metadata": meta("writer", "")});
        let writer = if n % 2 == 0 { &a } else { &b };
        assert_eq!(writer.put_config("reactive", &body).await, n);
        for (replica, watch) in [&a, &b].into_iter().zip(watches.iter_mut()) {
            let (_, event) = watch.change().await;
            assert_eq!(event["version"], n);
            // Right away, on the replica that announced it.
            let read = replica.ok_json("/api/v1/configs/reactive/effective").await;
            assert_eq!(
                read["version"], n,
                "the event came before the read could show it"
            );
            assert_eq!(read["effectiveConfig"], json!({"n": n}));
        }
    }
}

/// How many changes `replica`'s follower took from memory and from the change log.
async fn follower_sources(replica: &Replica) -> (u64, u64) {
    let response = replica.client.get(replica.url("/metrics")).send().await;
    let text = response
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let taken = |source: &str| -> u64 {
        let series = format!("summit_follower_changes_total{{source=\"{source}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} on {}", replica.name))
    };
    (taken("memory"), taken("change_log"))
}

/// The change events of `id` a replica's watch replays from the start.
async fn seen_by(replica: &Replica, id: &str) -> Vec<Value> {
    let mut watch = replica.watch(&format!("configId={id}"), Some(0)).await;
    let mut events = Vec::new();
    while let Next::Event(event) = watch.next(Duration::from_millis(300)).await {
        events.push(event.json());
    }
    events
}

/// A replica publishes its own writes from memory (`committed_here`) and the other replica's
/// from the change log: whichever way, both replicas' watchers get the same events, every
/// revision once and in order, while both write concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_replicas_watchers_get_the_same_events_whichever_replica_wrote_them() {
    let Some(url) = test_database_url().await else {
        return;
    };
    let (a, b) = start_pair(&url).await;
    let start = a.revision().await;
    let mut watches = Vec::new();
    for replica in [&a, &b] {
        watches.push(replica.watch("", None).await);
    }
    const WRITERS: usize = 3;
    const VERSIONS: u64 = 8;
    let writes = [&a, &b].into_iter().flat_map(|replica| {
        (0..WRITERS).map(move |w| async move {
            let id = format!("both-{}-{w}", replica.name);
            for n in 1..=VERSIONS {
                let body = json!({
                    "config": {"n": n, "writer": w, "list": [n, n + 1]},
                    "overrides": {"prod": {"n": n * 10}},
                    "metadata": meta(replica.name, &format!("version {n}")),
                });
                assert_eq!(replica.put_config(&id, &body).await, n);
            }
            let response = replica
                .delete(
                    &format!("/api/v1/configs/{id}"),
                    &json!({"metadata": meta(replica.name, "done"), "expectedVersion": VERSIONS}),
                )
                .await;
            assert_eq!(response.status(), 200, "delete {id}");
        })
    });
    futures::future::join_all(writes).await;
    let total = 2 * WRITERS as u64 * (VERSIONS + 1);

    let mut seen = Vec::new();
    for watch in &mut watches {
        let mut events = Vec::new();
        for expected in start + 1..=start + total {
            let (id, event) = watch.change().await;
            assert_eq!(id, expected, "every revision once, in order: {event}");
            events.push(event);
        }
        watch.assert_quiet(Duration::from_millis(300)).await;
        seen.push(events);
    }
    assert_eq!(seen[0], seen[1], "a's and b's watchers got the same events");
    let deletes = seen[0]
        .iter()
        .filter(|event| event["kind"] == "config.deleted")
        .count();
    assert_eq!(deletes, 2 * WRITERS);
    // The patch of each version is in the events, as the change log has it.
    assert!(
        seen[0]
            .iter()
            .filter(|event| event["kind"] == "config.updated")
            .all(|event| event["changes"].is_array()),
        "{:?}",
        seen[0][0]
    );
    // Each replica took its own changes from memory where they followed its cursor (seldom,
    // while the two interleave), every other from the change log.
    for replica in [&a, &b] {
        let (memory, change_log) = follower_sources(replica).await;
        assert!(
            memory + change_log >= total,
            "{}: {memory} changes from memory, {change_log} from the change log, of {total}",
            replica.name
        );
    }
    // Alone, a replica reads none of its own changes back.
    let (memory_before, change_log_before) = follower_sources(&a).await;
    let mut live = vec![Vec::new(), Vec::new()];
    for n in 1..=10u64 {
        let body = json!({"config": {"n": n, "list": [n]}, "metadata": meta("a", "alone")});
        assert_eq!(a.put_config("alone", &body).await, n);
        for (watch, events) in watches.iter_mut().zip(&mut live) {
            let (_, event) = watch.change().await;
            assert_eq!(event["version"], n);
            events.push(event);
        }
    }
    let (memory, change_log) = follower_sources(&a).await;
    assert_eq!(
        (memory - memory_before, change_log - change_log_before),
        (10, 0),
        "a's own changes, from memory and from the change log"
    );
    // What a published from memory is what b read from the change log, and what a replays
    // from it, to the microsecond and the patch's byte.
    assert_eq!(live[0], live[1]);
    assert_eq!(live[0], seen_by(&a, "alone").await);
    a.terminate().await;
    b.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_written_through_one_replica_is_evaluated_and_watched_through_the_other() {
    let Some(url) = test_database_url().await else {
        return;
    };
    let (a, b) = start_pair(&url).await;
    let mut watch = b.watch("flags=true", None).await;
    let flag = |default: &str| {
        json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": default,
               "environments": {"prod": {"rules": [{"id": "staff", "conditions": [
                   {"attribute": "email", "operator": "ends_with", "value": "@acme.com"}], "variant": "on"}]}},
               "metadata": meta("alice", "flag through a")})
    };
    let evaluate_on_b = |key: &'static str| {
        let b = &b;
        async move {
            let response = b
                .client
                .post(b.url("/api/v1/feature-flags/evaluate"))
                .json(&json!({"flagKey": key, "environment": "prod",
                              "context": {"targetingKey": "u1", "email": "x@example.com"}}))
                .send()
                .await
                .expect("evaluate on b");
            body_of(response).await
        }
    };
    assert_eq!(evaluate_on_b("shared-flag").await.0, 404);

    let (status, created) = body_of(
        a.put("/api/v1/feature-flags/shared-flag", &flag("off"))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (evaluation, took) = eventually("b evaluates a's flag", STEP, || async {
        let (status, evaluation) = evaluate_on_b("shared-flag").await;
        (status == 200).then_some(evaluation)
    })
    .await;
    eprintln!(
        "a → b: flag evaluable on b {} ms after a answered 201",
        took.as_millis()
    );
    assert_eq!(
        (evaluation["value"].clone(), evaluation["reason"].clone()),
        (json!(false), json!("DEFAULT"))
    );
    let (_, event) = watch.change().await;
    assert_eq!(
        (event["kind"].clone(), event["flagKey"].clone()),
        (json!("flag.updated"), json!("shared-flag"))
    );

    // An update through a replaces what b evaluates; the stream carries it in order.
    let (status, _) = body_of(
        a.put("/api/v1/feature-flags/shared-flag", &flag("on"))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    eventually("b evaluates a's update", STEP, || async {
        let (_, evaluation) = evaluate_on_b("shared-flag").await;
        (evaluation["version"] == 2 && evaluation["value"] == true).then_some(())
    })
    .await;
    let (_, event) = watch.change().await;
    assert_eq!(
        (event["kind"].clone(), event["version"].clone()),
        (json!("flag.updated"), json!(2))
    );
    // A conflicting write through b (it expected version 1) is refused by the database.
    let mut stale = flag("off");
    stale["expectedVersion"] = json!(1);
    let (status, problem) = body_of(b.put("/api/v1/feature-flags/shared-flag", &stale).await).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["currentVersion"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_replica_is_refused_by_the_other() {
    let Some(url) = test_database_url().await else {
        return;
    };
    const ADMIN: &str = "admin-token-shared-by-both-replicas-0123";
    let env = [("SUMMIT_ADMIN_TOKEN", ADMIN)];
    let (a, b) = tokio::join!(
        Replica::start_with("a", &url, &env),
        Replica::start_with("b", &url, &env)
    );
    let request = |replica: &Replica, method: reqwest::Method, path: &str, token: &str| {
        replica
            .client
            .request(method, replica.url(path))
            .bearer_auth(token.to_owned())
    };
    let response = request(&a, reqwest::Method::POST, "/api/v1/tokens", ADMIN)
        .json(&json!({"name": "ci", "roles": ["config-reader"]}))
        .send()
        .await
        .unwrap();
    let (status, created) = body_of(response).await;
    assert_eq!(status, 201, "{created}");
    let token = created["tokenText"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    // Created through a, accepted by b once b's follower applied the change.
    eventually("b accepts a token created through a", STEP, || async {
        let response = request(&b, reqwest::Method::GET, "/api/v1/configs", &token)
            .send()
            .await
            .unwrap();
        (response.status() == 200).then_some(())
    })
    .await;
    let response = request(
        &a,
        reqwest::Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        ADMIN,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let (_, took) = eventually("b refuses the revoked token", STEP, || async {
        let response = request(&b, reqwest::Method::GET, "/api/v1/configs", &token)
            .send()
            .await
            .unwrap();
        (response.status() == 401).then_some(())
    })
    .await;
    eprintln!(
        "revocation through a refused by b after {} ms",
        took.as_millis()
    );
    // Through a itself: at once.
    let response = request(&a, reqwest::Method::GET, "/api/v1/configs", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_is_checked_against_a_schema_registered_through_the_other() {
    let Some(url) = test_database_url().await else {
        return;
    };
    let (a, b) = start_pair(&url).await;
    async fn put(replica: &Replica, body: Value) -> (u16, Value) {
        body_of(replica.put("/api/v1/configs/typed", &body).await).await
    }
    let loose = json!({"config": {"name": "x"}, "metadata": meta("alice", "no port")});
    // Through a: no schema yet, and a keeps that in mind for the writes that follow.
    for port in [8080, 8081] {
        let body = json!({"config": {"port": port}, "metadata": meta("alice", "port")});
        let (status, body) = put(&a, body).await;
        assert_eq!(status, 201, "{body}");
    }
    let schema = json!({"type": "object", "required": ["port"]});
    let response = b
        .put(
            "/api/v1/configs/typed/schema",
            &json!({"schema": schema, "metadata": meta("ops", "typed")}),
        )
        .await;
    assert_eq!(response.status(), 201);
    // Through a, the same document is refused from now on: before a's follower applied the
    // schema change as a conflict to retry (the commit sees the schema moved), after it as a
    // schema violation. It is never stored.
    eventually("a checks writes against b's schema", STEP, || async {
        let (status, body) = put(&a, loose.clone()).await;
        assert!(status == 409 || status == 422, "{status} {body}");
        (status == 422).then_some(())
    })
    .await;
    let typed = json!({"config": {"name": "x", "port": 8080}, "metadata": meta("alice", "port")});
    let (status, body) = put(&a, typed).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 3, "{body}");
    // And a schema changed through a itself applies at once to a's next write.
    let response = a
        .put(
            "/api/v1/configs/typed/schema",
            &json!({"schema": {"type": "object"}, "metadata": meta("ops", "loose again")}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let (status, body) = put(&a, loose).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 4, "{body}");
}

/// A config or flag created through one replica can be deleted through the other at once,
/// before the other's follower has applied the create (without asking the database, this
/// answered 404 now and then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_replica_just_created_the_other_deletes_at_once() {
    let Some(url) = test_database_url().await else {
        return;
    };
    let (a, b) = start_pair(&url).await;
    let flag = json!({"type": "boolean", "variants": {"on": true, "off": false},
                      "defaultVariant": "off", "metadata": meta("alice", "made on a")});
    let gone = json!({"metadata": meta("alice", "deleted on b")});
    for round in 0..20 {
        let id = format!("quick-{round}");
        a.put_config(
            &id,
            &json!({"config": {"n": round}, "metadata": meta("alice", "on a")}),
        )
        .await;
        let response = b.delete(&format!("/api/v1/configs/{id}"), &gone).await;
        let (status, body) = body_of(response).await;
        assert_eq!(status, 200, "config {id} deleted on b: {body}");

        let (status, body) =
            body_of(a.put(&format!("/api/v1/feature-flags/{id}"), &flag).await).await;
        assert_eq!(status, 201, "flag {id} on a: {body}");
        let response = b
            .delete(&format!("/api/v1/feature-flags/{id}"), &gone)
            .await;
        let (status, body) = body_of(response).await;
        assert_eq!(status, 200, "flag {id} deleted on b: {body}");
    }
    a.terminate().await;
    b.terminate().await;
}
