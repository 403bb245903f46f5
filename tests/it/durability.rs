//! What survives a restart: through `App` on the same database, and through the real binary
//! stopped with SIGTERM.

use crate::common;

use std::time::Duration;

use common::binary::start_binary;
use common::{TestServer, body_of, meta};
use serde_json::{Value, json};

const STEP: Duration = Duration::from_secs(10);

/// Everything a client can read about the state written in `restart_keeps_every_read_identical`.
#[derive(Debug, PartialEq)]
struct Observed {
    config: Value,
    config_etag: String,
    versions: Value,
    schema: Value,
    config_audit: Value,
    all_audit: Value,
    effective: Value,
    effective_etag: String,
    drift: Value,
    drift_report: Value,
    deleted_status: u16,
    deleted_versions: Value,
    listed: Value,
    changes: Vec<Value>,
}

async fn ok_json(server: &TestServer, path: &str) -> (Value, String) {
    let response = server.get(path).await;
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = body_of(response).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    (body, etag)
}

/// Replays the change log from the start over SSE, reading exactly `count` events.
async fn replay_changes(server: &TestServer, count: usize) -> Vec<Value> {
    let response = server.get("/api/v1/watch?fromRevision=0").await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut changes = Vec::new();
    while changes.len() < count {
        let chunk = tokio::time::timeout(STEP, futures::StreamExt::next(&mut body))
            .await
            .expect("replayed event in time")
            .expect("stream stays open")
            .expect("stream chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .collect();
            if !data.is_empty() {
                changes.push(serde_json::from_str(data.join("\n").trim()).expect("event JSON"));
            }
        }
    }
    changes
}

async fn observe(server: &TestServer, revisions: usize) -> Observed {
    let (config, config_etag) = ok_json(server, "/api/v1/configs/svc").await;
    let (effective, effective_etag) =
        ok_json(server, "/api/v1/configs/svc/effective?environment=prod").await;
    let (deleted_status, _) = server.get_json("/api/v1/configs/doomed").await;
    Observed {
        config,
        config_etag,
        versions: ok_json(server, "/api/v1/configs/svc/versions").await.0,
        schema: ok_json(server, "/api/v1/configs/svc/schema").await.0,
        config_audit: ok_json(server, "/api/v1/configs/svc/audit").await.0,
        all_audit: ok_json(server, "/api/v1/audit").await.0,
        effective,
        effective_etag,
        drift: ok_json(server, "/api/v1/configs/svc/drift?environment=prod")
            .await
            .0,
        drift_report: ok_json(server, "/api/v1/drift").await.0,
        deleted_status,
        deleted_versions: ok_json(server, "/api/v1/configs/doomed/versions").await.0,
        listed: ok_json(server, "/api/v1/configs").await.0,
        changes: replay_changes(server, revisions).await,
    }
}

#[tokio::test]
async fn restart_keeps_every_read_identical() {
    let server = TestServer::spawn().await;
    let schema = json!({
        "type": "object",
        "properties": {"port": {"type": "integer"}, "mode": {"type": "string"}},
        "required": ["port"]
    });
    let (status, body) = server
        .put_json(
            "/api/v1/configs/svc/schema",
            &json!({"schema": schema, "metadata": meta("ops", "typed")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for port in [8080, 8081, 8082] {
        server
            .put_config(
                "svc",
                json!({
                    "config": {"port": port, "mode": "base"},
                    "overrides": {"prod": {"mode": "strict"}, "dev": {"mode": null}},
                    "metadata": meta("alice", &format!("port {port}")),
                }),
            )
            .await;
    }
    server
        .put_config(
            "doomed",
            json!({"config": {"x": 1}, "metadata": meta("bob", "short-lived")}),
        )
        .await;
    let response = server
        .client
        .delete(server.url("/api/v1/configs/doomed"))
        .json(&json!({"metadata": meta("bob", "gone")}))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 200);

    let (effective, _) = ok_json(&server, "/api/v1/configs/svc/effective?environment=prod").await;
    assert_eq!(
        effective["effectiveConfig"],
        json!({"port": 8082, "mode": "strict"})
    );
    let report = json!({
        "environment": "prod",
        "instanceId": "web-1",
        "version": 3,
        "checksum": effective["checksum"],
    });
    let (status, body) = server
        .post_json("/api/v1/configs/svc/applied", &report)
        .await;
    assert_eq!(status, 200, "{body}");

    // schema, three versions, put and delete of another config.
    let revisions = 6;
    let before = observe(&server, revisions).await;
    assert_eq!(before.deleted_status, 404);
    assert_eq!(before.drift["summary"]["inSync"], 1, "{}", before.drift);
    assert_eq!(
        before
            .changes
            .iter()
            .map(|c| c["revision"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (1..=revisions as u64).collect::<Vec<_>>()
    );

    let server = server.restart().await;
    let after = observe(&server, revisions).await;
    assert_eq!(after, before);

    let response = server
        .client
        .get(server.url("/api/v1/configs/svc/effective?environment=prod"))
        .header("If-None-Match", &before.effective_etag)
        .send()
        .await
        .expect("conditional read");
    assert_eq!(response.status(), 304);

    // Counters continue where they stopped: no version or revision is reused.
    let version = server
        .put_config(
            "svc",
            json!({"config": {"port": 9000}, "metadata": meta("alice", "after restart")}),
        )
        .await;
    assert_eq!(version, 4);
    let changes = replay_changes(&server, revisions + 1).await;
    assert_eq!(changes[revisions]["revision"], revisions as u64 + 1);
    assert_eq!(changes[revisions]["version"], 4);
}

#[tokio::test]
async fn binary_keeps_an_acknowledged_write_across_sigterm_and_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("data").join("db.sqlite");
    let client = reqwest::Client::new();

    let first = start_binary(&database).await;
    let body = json!({
        "config": {"feature": true, "limit": 7},
        "overrides": {"prod": {"limit": 70}},
        "metadata": meta("ops", "before SIGTERM"),
    });
    let response = client
        .put(format!("{}/api/v1/configs/survivor", first.base))
        .json(&body)
        .send()
        .await
        .expect("put");
    let (status, created) = body_of(response).await;
    assert_eq!(status, 201, "{created}");
    first.terminate().await;

    let second = start_binary(&database).await;
    let response = client
        .get(format!("{}/api/v1/configs/survivor", second.base))
        .send()
        .await
        .expect("get");
    let (status, stored) = body_of(response).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["checksum"], created["checksum"]);
    assert_eq!(stored["config"], body["config"]);
    assert_eq!(stored["overrides"], body["overrides"]);
    assert_eq!(stored["metadata"], body["metadata"]);
    second.terminate().await;
}

/// A SIGTERM the moment the binary says it is listening is a clean stop: the handler is
/// installed before that line is logged, so a supervisor never meets the default action.
#[tokio::test]
async fn binary_stops_cleanly_on_a_sigterm_right_after_listening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("data").join("db.sqlite");
    for _ in 0..5 {
        start_binary(&database).await.terminate().await;
    }
}

/// SIGKILL mid-traffic: every write that was acknowledged (201) is there after restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_killed_mid_traffic_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("data").join("db.sqlite");
    let client = reqwest::Client::new();
    let mut running = start_binary(&database).await;

    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base, acknowledged) =
                (client.clone(), running.base.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let body =
                        json!({"config": {"writer": w, "n": n}, "metadata": meta("load", "")});
                    let Ok(response) = client
                        .put(format!("{base}/api/v1/configs/crash-{w}"))
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() != 201 {
                        return;
                    }
                    let Ok(created) = response.json::<Value>().await else {
                        return;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .push((w, created["version"].as_u64().unwrap(), n));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    running.child.start_kill().expect("SIGKILL");
    running.child.wait().await.expect("wait");
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 4,
        "some writes were acknowledged before the kill"
    );

    let restarted = start_binary(&database).await;
    for (w, version, n) in acknowledged {
        let response = client
            .get(format!(
                "{}/api/v1/configs/crash-{w}/versions/{version}",
                restarted.base
            ))
            .send()
            .await
            .expect("get");
        let (status, stored) = body_of(response).await;
        assert_eq!(status, 200, "acknowledged crash-{w} v{version} was lost");
        assert_eq!(stored["config"]["n"], n);
    }
    restarted.terminate().await;
}

#[test]
fn help_lists_every_summit_environment_variable() {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_summit-config"));
    command.arg("--help");
    for (key, _) in std::env::vars() {
        if key.starts_with("SUMMIT_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("binary runs");
    assert!(output.status.success(), "--help exits 0");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");

    // Every variable the settings declare, plus the ones the design requires by name.
    let declared = include_str!("../../src/settings.rs")
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next());
    let required = [
        "SUMMIT_HTTP_ADDR",
        "SUMMIT_DATABASE_URL",
        "SUMMIT_LOG_FORMAT",
        "SUMMIT_MAX_BODY_BYTES",
    ];
    for variable in declared.chain(required) {
        assert!(
            help.contains(variable),
            "--help does not list {variable}:\n{help}"
        );
    }
}

/// A database file locked by another process past the busy timeout (a backup tool, a second
/// server by mistake) is the store being unavailable, not a bug: 503, and the write is made once
/// the lock is gone.
#[tokio::test]
async fn a_write_while_another_process_holds_the_database_lock_is_503_and_writes_nothing() {
    use sqlx::Connection;
    let server = TestServer::spawn().await;
    let url = format!("sqlite://{}", server.db_path.display());
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let body = json!({"config": {"a": 1}, "metadata": meta("alice", "locked")});
    let (status, problem) = server.put_json("/api/v1/configs/locked", &body).await;
    assert_eq!(
        (status, &problem["code"]),
        (503, &json!("unavailable")),
        "{problem}"
    );

    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    let (status, created) = server.put_json("/api/v1/configs/locked", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1, "the refused write left nothing");
}
