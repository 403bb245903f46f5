//! `GET /api/v1/watch`: change events over Server-Sent Events, resumable by revision.

use crate::common;

use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use common::{TestServer, meta};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

/// Longest wait for any one step, so a missing event fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(10);
/// How long silence must last to count as "nothing more was sent".
const QUIET: Duration = Duration::from_millis(300);

/// One dispatched SSE event.
#[derive(Debug, Clone)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// An open SSE response, parsed incrementally into events.
pub(crate) struct EventStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pending: String,
}

impl EventStream {
    fn new(response: reqwest::Response) -> Self {
        EventStream {
            body: Box::pin(response.bytes_stream()),
            pending: String::new(),
        }
    }

    /// Takes one complete block (up to a blank line) off the buffer, if there is one.
    fn take_block(&mut self) -> Option<String> {
        let normalized = self.pending.replace("\r\n", "\n");
        let end = normalized.find("\n\n")?;
        let block = normalized[..end].to_owned();
        self.pending = normalized[end + 2..].to_owned();
        Some(block)
    }

    /// Parses one block; comments (keep-alives) and blocks without data dispatch nothing.
    fn parse_block(block: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_owned()),
                "event" => event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        (!data.is_empty()).then(|| SseEvent {
            id,
            event,
            data: data.join("\n"),
        })
    }

    /// The next event, or `None` when the server ended the stream cleanly; no time limit.
    async fn read_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(block) = self.take_block() {
                if let Some(event) = Self::parse_block(&block) {
                    return Some(event);
                }
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self
                    .pending
                    .push_str(std::str::from_utf8(&chunk).expect("SSE is UTF-8")),
                Some(Err(error)) => panic!("SSE stream failed: {error}"),
                None => return None,
            }
        }
    }

    /// The next event, or `None` on a clean end; panics after `STEP` without one.
    async fn next_event(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(STEP, self.read_event())
            .await
            .expect("timed out waiting for an SSE event")
    }

    /// The next change event, checked to be a well-formed one whose `id:` is its revision.
    pub(crate) async fn next_change(&mut self) -> Value {
        let event = self
            .next_event()
            .await
            .expect("stream ended before the next change event");
        assert_eq!(event.event, None, "unexpected SSE event type: {event:?}");
        let change: Value = serde_json::from_str(&event.data).expect("event data is JSON");
        let revision = change["revision"].as_u64().expect("revision is a number");
        assert_eq!(
            event.id.as_deref(),
            Some(revision.to_string().as_str()),
            "id: is the revision"
        );
        change
    }

    async fn next_changes(&mut self, count: usize) -> Vec<Value> {
        let mut changes = Vec::with_capacity(count);
        for _ in 0..count {
            changes.push(self.next_change().await);
        }
        changes
    }

    /// Asserts the server sends no further event for a little while.
    pub(crate) async fn assert_quiet(&mut self) {
        if let Ok(Some(event)) = tokio::time::timeout(QUIET, self.read_event()).await {
            panic!("expected no further event, got {event:?}");
        }
    }
}

pub(crate) async fn watch(
    server: &TestServer,
    query: &str,
    last_event_id: Option<&str>,
) -> EventStream {
    let mut request = server
        .client
        .get(server.url(&format!("/api/v1/watch{query}")));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("watch answers in time")
        .expect("watch request");
    assert_eq!(response.status(), 200, "watch{query}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "content-type {content_type}"
    );
    EventStream::new(response)
}

fn version_body(value: Value, message: &str) -> Value {
    json!({"config": value, "metadata": meta("alice", message)})
}

fn revisions(changes: &[Value]) -> Vec<u64> {
    changes
        .iter()
        .map(|c| c["revision"].as_u64().unwrap())
        .collect()
}

fn config_ids(changes: &[Value]) -> Vec<&str> {
    changes
        .iter()
        .map(|c| c["configId"].as_str().unwrap())
        .collect()
}

async fn latest_revision(server: &TestServer) -> u64 {
    let (status, audit) = server.get_json("/api/v1/audit?limit=1").await;
    assert_eq!(status, 200, "{audit}");
    audit["items"][0]["revision"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn live_watcher_receives_updates_deletes_and_schema_changes_in_revision_order() {
    let server = TestServer::spawn().await;
    server
        .put_config("before", version_body(json!({"n": 0}), "not watched"))
        .await;
    let start = latest_revision(&server).await;
    let mut stream = watch(&server, "", None).await;

    let (status, v1) = server
        .put_json(
            "/api/v1/configs/svc",
            &version_body(json!({"port": 80}), "first"),
        )
        .await;
    assert_eq!(status, 201, "{v1}");
    let schema = json!({"type": "object", "properties": {"port": {"type": "integer"}}});
    let (status, registered) = server
        .put_json(
            "/api/v1/configs/svc/schema",
            &json!({"schema": schema, "metadata": meta("bob", "typed")}),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    let (status, v2) = server
        .put_json(
            "/api/v1/configs/svc",
            &version_body(json!({"port": 81}), "second"),
        )
        .await;
    assert_eq!(status, 201, "{v2}");
    let response = server
        .client
        .delete(server.url("/api/v1/configs/svc"))
        .json(&json!({"metadata": meta("carol", "retired")}))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 200);

    let changes = stream.next_changes(4).await;
    assert_eq!(
        revisions(&changes),
        (start + 1..=start + 4).collect::<Vec<_>>()
    );
    let expected = [
        ("config.updated", 1, &v1["checksum"], "alice", "first"),
        ("schema.updated", 1, &registered["checksum"], "bob", "typed"),
        ("config.updated", 2, &v2["checksum"], "alice", "second"),
        ("config.deleted", 2, &v2["checksum"], "carol", "retired"),
    ];
    for (change, (kind, version, checksum, actor, message)) in changes.iter().zip(expected) {
        assert_eq!(change["kind"], kind, "{change}");
        assert_eq!(change["configId"], "svc", "{change}");
        assert_eq!(change["version"], version, "{change}");
        assert_eq!(&change["checksum"], checksum, "{change}");
        assert_eq!(change["actor"], actor, "{change}");
        assert_eq!(change["message"], message, "{change}");
        let at = change["at"].as_str().expect("at is a string");
        at.parse::<DateTime<Utc>>()
            .expect("at is an RFC 3339 timestamp");
    }
    stream.assert_quiet().await;
}

#[tokio::test]
async fn from_revision_replays_history_then_continues_live_without_gap_or_duplicate() {
    let server = TestServer::spawn().await;
    for n in 1..=5 {
        server
            .put_config("replay", version_body(json!({"n": n}), "history"))
            .await;
    }
    let mut stream = watch(&server, "?fromRevision=2", None).await;
    let replayed = stream.next_changes(3).await;
    assert_eq!(revisions(&replayed), [3, 4, 5]);
    assert_eq!(
        replayed
            .iter()
            .map(|c| c["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [3, 4, 5]
    );

    for n in 6..=8 {
        server
            .put_config("replay", version_body(json!({"n": n}), "live"))
            .await;
    }
    let live = stream.next_changes(3).await;
    assert_eq!(revisions(&live), [6, 7, 8]);
    assert!(live.iter().all(|c| c["message"] == "live"), "{live:?}");
    stream.assert_quiet().await;
}

#[tokio::test]
async fn reconnect_with_last_event_id_resumes_without_gap_or_duplicate() {
    let server = TestServer::spawn().await;
    for n in 1..=3 {
        server
            .put_config("resume", version_body(json!({"n": n}), "before"))
            .await;
    }
    let mut first = watch(&server, "?fromRevision=0", None).await;
    let mut seen = first.next_changes(3).await;
    for n in 4..=5 {
        server
            .put_config("resume", version_body(json!({"n": n}), "watched"))
            .await;
    }
    seen.extend(first.next_changes(2).await);
    let last_seen = seen.last().unwrap()["revision"].as_u64().unwrap();
    assert_eq!(last_seen, 5);
    drop(first);

    for n in 6..=8 {
        server
            .put_config("resume", version_body(json!({"n": n}), "while away"))
            .await;
    }
    // An EventSource reconnects to the same URL; the header must win over the old fromRevision.
    let mut second = watch(&server, "?fromRevision=0", Some(&last_seen.to_string())).await;
    seen.extend(second.next_changes(3).await);
    server
        .put_config("resume", version_body(json!({"n": 9}), "after"))
        .await;
    seen.extend(second.next_changes(1).await);

    assert_eq!(revisions(&seen), (1..=9).collect::<Vec<_>>());
    second.assert_quiet().await;
}

#[tokio::test]
async fn config_id_and_prefix_filters_deliver_only_matching_configs_with_global_revisions() {
    let server = TestServer::spawn().await;
    let mut by_ids = watch(&server, "?configId=app.a,app.b&fromRevision=0", None).await;
    let mut by_prefix = watch(&server, "?prefix=app.&fromRevision=0", None).await;

    // Revisions 1..=6.
    for id in ["app.a", "other.c", "app.b", "app.d", "other.c", "app.a"] {
        server
            .put_config(id, version_body(json!({"id": id}), "filtered"))
            .await;
    }

    let picked = by_ids.next_changes(3).await;
    assert_eq!(revisions(&picked), [1, 3, 6]);
    assert_eq!(config_ids(&picked), ["app.a", "app.b", "app.a"]);
    let prefixed = by_prefix.next_changes(4).await;
    assert_eq!(revisions(&prefixed), [1, 3, 4, 6]);
    assert_eq!(config_ids(&prefixed), ["app.a", "app.b", "app.d", "app.a"]);

    // A later matching write comes next, so nothing unmatched was delivered in between.
    server
        .put_config("other.c", version_body(json!({}), "unmatched"))
        .await;
    server
        .put_config("app.b", version_body(json!({}), "matched"))
        .await;
    assert_eq!(revisions(&by_ids.next_changes(1).await), [8]);
    assert_eq!(revisions(&by_prefix.next_changes(1).await), [8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_of_concurrent_writes_reaches_every_watcher_complete_and_in_order() {
    const WRITERS: u64 = 10;
    const PER_WRITER: u64 = 30;
    const TOTAL: usize = (WRITERS * PER_WRITER) as usize;
    let server = TestServer::spawn().await;

    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut stream = watch(&server, "?fromRevision=0", None).await;
        readers.push(tokio::spawn(
            async move { stream.next_changes(TOTAL).await },
        ));
    }

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, base) = (server.client.clone(), server.base.clone());
        writers.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for n in 0..PER_WRITER {
                // Two writers share each config, so some writes contend for the same one.
                let id = format!("burst-{}", writer % (WRITERS / 2));
                let response = client
                    .put(format!("{base}/api/v1/configs/{id}"))
                    .json(&version_body(json!({"writer": writer, "n": n}), "burst"))
                    .send()
                    .await
                    .expect("put");
                assert_eq!(response.status(), 201);
                let created: Value = response.json().await.expect("created body");
                written.push((id, created["version"].as_u64().unwrap()));
            }
            written
        }));
    }
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer task"));
    }
    acknowledged.sort();

    for reader in readers {
        let changes = tokio::time::timeout(STEP * 3, reader)
            .await
            .expect("watcher finishes in time")
            .expect("watcher task");
        assert_eq!(revisions(&changes), (1..=TOTAL as u64).collect::<Vec<_>>());
        let mut delivered: Vec<(String, u64)> = changes
            .iter()
            .map(|c| {
                (
                    c["configId"].as_str().unwrap().to_owned(),
                    c["version"].as_u64().unwrap(),
                )
            })
            .collect();
        delivered.sort();
        assert_eq!(delivered, acknowledged);
    }
}

#[tokio::test]
async fn bad_watch_parameters_are_rejected_with_a_problem_naming_the_field() {
    let server = TestServer::spawn().await;
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("?fromRevision=abc", None, "fromRevision"),
        ("?configId=Bad!", None, "configId"),
        ("", Some("x"), "Last-Event-ID"),
    ];
    for (query, last_event_id, field) in cases {
        let mut request = server
            .client
            .get(server.url(&format!("/api/v1/watch{query}")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = tokio::time::timeout(STEP, request.send())
            .await
            .expect("answers in time")
            .expect("request");
        assert_eq!(response.status(), 400, "{query} {last_event_id:?}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "application/problem+json");
        let problem: Value = tokio::time::timeout(STEP, response.json())
            .await
            .expect("body in time")
            .expect("problem JSON");
        assert_eq!(problem["status"], 400, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
}

#[tokio::test]
async fn graceful_shutdown_ends_open_watch_streams() {
    let mut server = TestServer::spawn().await;
    let mut stream = watch(&server, "?fromRevision=0", None).await;
    server
        .put_config("stopping", version_body(json!({}), "seen"))
        .await;
    assert_eq!(revisions(&stream.next_changes(1).await), [1]);

    tokio::time::timeout(STEP, server.stop())
        .await
        .expect("shutdown does not wait on open watch streams");
    assert!(
        stream.next_event().await.is_none(),
        "the stream ends after shutdown"
    );
}

#[tokio::test]
async fn resuming_from_a_revision_ahead_of_the_log_is_refused() {
    let server = TestServer::spawn().await;
    server
        .put_config("svc", version_body(json!({"n": 1}), "one"))
        .await;
    let response = server.get("/api/v1/watch?fromRevision=5").await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "fromRevision");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("latest revision 1")
    );
    let mut stream = watch(&server, "?fromRevision=1", None).await;
    server
        .put_config("svc", version_body(json!({"n": 2}), "two"))
        .await;
    assert_eq!(revisions(&stream.next_changes(1).await), vec![2]);
}

#[tokio::test]
async fn watchers_beyond_the_limit_get_503_until_one_leaves() {
    let server = TestServer::spawn_with(|s| s.max_watchers = 2).await;
    let first = watch(&server, "", None).await;
    let _second = watch(&server, "", None).await;
    let response = server.get("/api/v1/watch").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    drop(first);
    // The slot is freed once the server notices the client left.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let response = server.get("/api/v1/watch").await;
        if response.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_new_version_of_a_referenced_secret_reaches_the_watchers_of_the_configs_using_it() {
    let server = TestServer::spawn().await;
    let put_secret = |value: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server
                .put_json(
                    "/api/v1/secrets/db-password",
                    &json!({"value": value, "metadata": meta("sam", "rotate")}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    };
    put_secret("first").await;
    for (id, config) in [
        (
            "uses-it",
            json!({"db": {"password": {"$secret": "store:db-password"}}}),
        ),
        (
            "other",
            json!({"db": {"password": {"$secret": "store:other-secret"}}}),
        ),
    ] {
        let (status, _) = server
            .put_json(
                &format!("/api/v1/configs/{id}"),
                &version_body(config, "v1"),
            )
            .await;
        assert_eq!(status, 201);
    }
    let mut stream = watch(&server, "", None).await;
    put_secret("second").await;
    let change = stream.next_change().await;
    assert_eq!(
        (&change["kind"], &change["configId"], &change["version"]),
        (
            &json!("config.secrets_changed"),
            &json!("uses-it"),
            &json!(1)
        ),
        "{change}"
    );
    assert!(!change.to_string().contains("second"), "{change}");
    stream.assert_quiet().await;
}

/// A watch outlives the request that authenticated it, not its credential: once the token is
/// revoked, the next event it would carry ends the stream with `unauthenticated` instead; a
/// token that expires while its stream is quiet is noticed within `RECHECK`.
#[tokio::test]
async fn a_watch_ends_once_its_token_is_revoked_or_expires() {
    const ADMIN: &str = "admin-token-for-the-sse-revocation-test-0123";
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
    })
    .await;
    let admin = |request: reqwest::RequestBuilder| request.bearer_auth(ADMIN);
    let put = |version: u64| {
        let request = server.client.put(server.url("/api/v1/configs/app"));
        admin(request)
            .json(&version_body(json!({"v": version}), "revocation"))
            .send()
    };
    assert_eq!(put(1).await.unwrap().status(), 201);
    let create = |body: Value| {
        admin(server.client.post(server.url("/api/v1/tokens")))
            .json(&body)
            .send()
    };
    let (_, created) = common::body_of(
        create(json!({"name": "watcher", "roles": ["config-reader"]}))
            .await
            .unwrap(),
    )
    .await;
    let (reader, reader_id) = (
        created["tokenText"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    );
    let open = |token: String| {
        let request = server.client.get(server.url("/api/v1/watch?configId=app"));
        async move {
            let response = request.bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200);
            EventStream::new(response)
        }
    };
    let mut stream = open(reader.clone()).await;
    assert_eq!(put(2).await.unwrap().status(), 201);
    assert_eq!(stream.next_change().await["version"], 2);
    let revoke = admin(
        server
            .client
            .delete(server.url(&format!("/api/v1/tokens/{reader_id}"))),
    );
    assert_eq!(revoke.send().await.unwrap().status(), 200);
    assert_eq!(put(3).await.unwrap().status(), 201);
    let refused = stream
        .next_event()
        .await
        .expect("an error event, not the change");
    assert_eq!(refused.event.as_deref(), Some("error"), "{refused:?}");
    assert!(refused.data.contains("unauthenticated"), "{refused:?}");
    assert!(stream.next_event().await.is_none(), "then the stream ends");

    // Expiry while nothing happens: noticed by the periodic check.
    let expires = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (_, created) = common::body_of(
        create(json!({"name": "short", "roles": ["config-reader"], "expiresAt": expires}))
            .await
            .unwrap(),
    )
    .await;
    let mut stream = open(created["tokenText"].as_str().unwrap().to_owned()).await;
    let ended = tokio::time::timeout(
        summit_config::core::access::RECHECK + STEP,
        stream.read_event(),
    )
    .await
    .expect("the expired token's stream ends within RECHECK")
    .expect("an error event first");
    assert_eq!(ended.event.as_deref(), Some("error"), "{ended:?}");
    assert!(ended.data.contains("unauthenticated"), "{ended:?}");
}

#[tokio::test]
async fn a_watch_naming_more_than_a_thousand_ids_is_refused_naming_the_parameter() {
    let server = TestServer::spawn().await;
    for (parameter, field) in [("configId", "configId"), ("service", "service")] {
        let names: Vec<String> = (0..1001).map(|n| format!("c{n}")).collect();
        let (status, problem) = server
            .get_json(&format!("/api/v1/watch?{parameter}={}", names.join(",")))
            .await;
        assert_eq!(
            (status, &problem["field"]),
            (400, &json!(field)),
            "{problem}"
        );
    }
    let names: Vec<String> = (0..1000).map(|n| format!("c{n}")).collect();
    let response = server
        .get(&format!("/api/v1/watch?configId={}", names.join(",")))
        .await;
    assert_eq!(response.status(), 200, "a thousand is allowed");
}
