//! Rotation of the built-in store's secrets: the scheduler makes a new version when one is due
//! (generated, or a pending one promoted), the replaced version stays served as `previous` until
//! its grace period ends, watchers of referencing configs hear of it, a restart past a due time
//! rotates once for it, and two replicas on PostgreSQL never both rotate one due time.
//!
//! Intervals are seconds long, so these tests wait for the scheduler (polling, with deadlines).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::{TestServer, meta};
use crate::watch_sse::watch;

/// Longest wait for a rotation the test expects.
const DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);
const FIRST: &str = "first-ROTATING-secret-5c2b";

async fn rotating_server() -> TestServer {
    TestServer::spawn_with(|s| s.secret_rotation_check_ms = 20).await
}

fn policy(interval: u64, grace: u64, generator: Value) -> Value {
    json!({"intervalSecs": interval, "gracePeriodSecs": grace, "generator": generator})
}

async fn put_secret(server: &TestServer, name: &str, value: Value, rotation: Value) -> Value {
    let (status, created) = server
        .put_json(
            &format!("/api/v1/secrets/{name}"),
            &json!({"value": value, "metadata": meta("sam", "set"), "rotation": rotation}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn describe(server: &TestServer, name: &str) -> Value {
    let (status, described) = server.get_json(&format!("/api/v1/secrets/{name}")).await;
    assert_eq!(status, 200, "{described}");
    described
}

/// Waits until the secret's newest version is at least `version` (a replica may not know the
/// secret at first); returns its metadata.
async fn until_version(server: &TestServer, name: &str, version: u64) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, described) = server.get_json(&format!("/api/v1/secrets/{name}")).await;
        assert!(status == 200 || status == 404, "{described}");
        if described["versions"][0]["version"].as_u64() >= Some(version) {
            return described;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no version {version} of {name} within {DEADLINE:?}: {described}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn value(server: &TestServer, name: &str, query: &str) -> (u16, Value) {
    server
        .get_json(&format!("/api/v1/secrets/{name}/value{query}"))
        .await
}

async fn resolved(server: &TestServer, config: &str) -> (u16, Value) {
    server
        .get_json(&format!(
            "/api/v1/configs/{config}/effective?resolveSecrets=true"
        ))
        .await
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

#[tokio::test]
async fn a_due_rotation_generates_a_value_tells_watchers_and_serves_the_previous_through_its_grace()
{
    let server = rotating_server().await;
    let generator = json!({"type": "string", "length": 32});
    let created = put_secret(&server, "api-key", json!(FIRST), policy(3, 2, generator)).await;
    assert_eq!(created["version"], 1);
    let described = describe(&server, "api-key").await;
    let created_at = time(&described["versions"][0]["createdAt"]);
    assert_eq!(
        time(&described["nextRotationAt"]),
        created_at + chrono::Duration::seconds(3)
    );
    assert_eq!(described["rotation"]["generator"]["type"], "string");
    for (id, config) in [
        ("svc", json!({"key": {"$secret": "store:api-key"}})),
        (
            "svc-old",
            json!({"key": {"$secret": "store:api-key?stage=previous"}}),
        ),
    ] {
        server
            .put_config(
                id,
                json!({"config": config, "metadata": meta("alice", "v1")}),
            )
            .await;
    }
    let (status, problem) = resolved(&server, "svc-old").await;
    assert!(status >= 400, "no previous version yet: {problem}");
    let mut stream = watch(&server, "", None).await;

    // The scheduler rotates at the due time; both referencing configs' watchers hear of it.
    let (mut heard, mut events) = (BTreeSet::new(), Vec::new());
    while heard.len() < 2 {
        let change = stream.next_change().await;
        events.push(change.clone());
        if change["kind"] == "config.secrets_changed" {
            heard.insert(change["configId"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        heard,
        BTreeSet::from(["svc".to_owned(), "svc-old".to_owned()])
    );
    let described = describe(&server, "api-key").await;
    let rotated = &described["versions"][0];
    assert_eq!(
        (
            &rotated["version"],
            &rotated["stages"],
            &rotated["origin"]["type"]
        ),
        (&json!(2), &json!(["current"]), &json!("rotation")),
        "{described}"
    );
    assert_eq!(rotated["origin"]["scheduled"], true);
    assert_eq!(
        time(&rotated["origin"]["dueAt"]),
        created_at + chrono::Duration::seconds(3)
    );
    assert_eq!(described["versions"][1]["stages"], json!(["previous"]));
    let (status, current) = value(&server, "api-key", "").await;
    assert_eq!(status, 200);
    let new_value = current["value"].as_str().unwrap().to_owned();
    assert_eq!(new_value.len(), 32);
    assert_ne!(new_value, FIRST);
    // The generated value is in no listing, audit record or change event.
    let (_, audit) = server.get_json("/api/v1/audit?limit=500").await;
    for shown in [&described, &audit, &json!(events)] {
        assert!(!shown.to_string().contains(&new_value), "{shown}");
    }
    assert!(
        audit.to_string().contains("secret.rotate"),
        "the rotation is audited: {audit}"
    );

    // At once: the effective reads give the new value, and the old one during the grace period.
    let (status, svc) = resolved(&server, "svc").await;
    assert_eq!(
        (status, &svc["effectiveConfig"]["key"]),
        (200, &json!(new_value))
    );
    let (status, old) = resolved(&server, "svc-old").await;
    assert_eq!(
        (status, &old["effectiveConfig"]["key"]),
        (200, &json!(FIRST)),
        "{old}"
    );

    // When the grace period ends the previous version is no longer served.
    let expires = time(&described["previousExpiresAt"]);
    assert_eq!(
        expires,
        time(&rotated["createdAt"]) + chrono::Duration::seconds(2)
    );
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, old) = resolved(&server, "svc-old").await;
        if status != 200 {
            assert!(
                Utc::now() >= expires,
                "refused before the grace period ended"
            );
            assert!(!old.to_string().contains(FIRST), "{old}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "previous served forever"
        );
        tokio::time::sleep(POLL).await;
    }
    let (status, _) = value(&server, "api-key", "?stage=previous").await;
    assert_eq!(status, 404, "an expired previous stage is not served");
    let described = describe(&server, "api-key").await;
    assert_eq!(described["versions"][1]["stages"], json!([]));
}

#[tokio::test]
async fn a_supplied_rotation_waits_for_a_pending_value_and_promotes_it_when_due() {
    let server = rotating_server().await;
    put_secret(
        &server,
        "db",
        json!({"user": "app", "password": FIRST}),
        policy(3, 60, json!({"type": "supplied"})),
    )
    .await;
    server
        .put_config(
            "svc",
            json!({"config": {"pw": {"$secret": "store:db#password"}}, "metadata": meta("a", "v1")}),
        )
        .await;
    let rotate = |body: Value| {
        let server = &server;
        async move { server.post_json("/api/v1/secrets/db/rotate", &body).await }
    };
    let (status, problem) = rotate(json!({})).await;
    assert_eq!(
        (status, &problem["field"]),
        (400, &json!("/value")),
        "{problem}"
    );
    let (status, problem) = server
        .post_json("/api/v1/secrets/db/promote", &json!({}))
        .await;
    assert_eq!(status, 404, "nothing pending: {problem}");

    let next = json!({"user": "app", "password": "next-PENDING-secret-91ab"});
    let (status, pending) = rotate(json!({"value": next, "pending": true})).await;
    assert_eq!((status, &pending["version"]), (201, &json!(2)), "{pending}");
    let described = describe(&server, "db").await;
    assert_eq!(described["versions"][0]["stages"], json!(["pending"]));
    assert_eq!(described["versions"][1]["stages"], json!(["current"]));
    let (_, svc) = resolved(&server, "svc").await;
    assert_eq!(
        svc["effectiveConfig"]["pw"], FIRST,
        "a pending value is not served"
    );
    let (status, staged) = value(&server, "db", "?stage=pending").await;
    assert_eq!((status, &staged["value"]), (200, &next));

    // Due: the scheduler promotes the pending value to a new current version.
    let described = until_version(&server, "db", 3).await;
    let promoted = &described["versions"][0];
    assert_eq!(promoted["stages"], json!(["current"]), "{described}");
    assert_eq!(promoted["origin"]["scheduled"], true);
    assert_eq!(described["versions"][1]["stages"], json!([]));
    assert_eq!(described["versions"][2]["stages"], json!(["previous"]));
    let (_, svc) = resolved(&server, "svc").await;
    assert_eq!(svc["effectiveConfig"]["pw"], "next-PENDING-secret-91ab");

    // Nothing pending and nothing to generate: the next due time waits for a value.
    let next_due = time(&described["nextRotationAt"]);
    tokio::time::sleep(
        (next_due - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(800),
    )
    .await;
    let described = describe(&server, "db").await;
    assert_eq!(described["versions"][0]["version"], 3, "{described}");
    let (status, promoted) = rotate(json!({"value": {"user": "app", "password": "third"}})).await;
    assert_eq!((status, &promoted["version"]), (201, &json!(4)));
}

#[tokio::test]
async fn rotation_policies_that_cannot_work_are_refused_naming_the_field() {
    let server = rotating_server().await;
    for (value, rotation, field) in [
        (
            json!("x"),
            policy(0, 1, json!({"type": "supplied"})),
            "/rotation/intervalSecs",
        ),
        (
            json!("x"),
            policy(60, 1, json!({"type": "string", "length": 2})),
            "/rotation/generator/length",
        ),
        (
            json!({"a": "b"}),
            policy(60, 1, json!({"type": "string", "length": 16})),
            "/rotation/generator/field",
        ),
    ] {
        let (status, problem) = server
            .put_json(
                "/api/v1/secrets/refused",
                &json!({"value": value, "metadata": meta("sam", "set"), "rotation": rotation}),
            )
            .await;
        assert_eq!(
            (status, &problem["field"]),
            (400, &json!(field)),
            "{problem}"
        );
    }
    let (status, problem) = server
        .put_json(
            "/api/v1/secrets/refused",
            &json!({"value": "x", "metadata": meta("sam", "set"),
                    "rotation": policy(60, 1, json!({"type": "dice"}))}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["field"].as_str().unwrap_or("").contains("rotation"),
        "{problem}"
    );
    let (status, _) = server.get_json("/api/v1/secrets/refused").await;
    assert_eq!(status, 404, "nothing was written");

    // A policy set once is kept by later writes until removed with null.
    put_secret(
        &server,
        "kept",
        json!("v1"),
        policy(3600, 60, json!({"type": "supplied"})),
    )
    .await;
    let (status, _) = server
        .put_json(
            "/api/v1/secrets/kept",
            &json!({"value": "v2", "metadata": meta("sam", "v2")}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        describe(&server, "kept").await["rotation"]["intervalSecs"],
        3600
    );
    put_secret(&server, "kept", json!("v3"), Value::Null).await;
    let described = describe(&server, "kept").await;
    assert!(described.get("rotation").is_none(), "{described}");
    assert!(described.get("nextRotationAt").is_none(), "{described}");
}

#[tokio::test]
async fn a_restart_past_a_due_time_rotates_once_for_it() {
    let mut server = rotating_server().await;
    let generator = json!({"type": "bytes", "length": 16, "encoding": "base64"});
    put_secret(&server, "token", json!(FIRST), policy(2, 0, generator)).await;
    let created_at = time(&describe(&server, "token").await["versions"][0]["createdAt"]);
    server.stop().await;
    // Down across the due time and most of the next interval: one rotation is owed, not two.
    let due = created_at + chrono::Duration::seconds(2);
    tokio::time::sleep(
        (due - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(1500),
    )
    .await;
    let server = server
        .restart_with(|s| s.secret_rotation_check_ms = 20)
        .await;
    let described = until_version(&server, "token", 2).await;
    let versions = described["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{described}");
    assert_eq!(time(&versions[0]["origin"]["dueAt"]), due);
    assert_eq!(
        time(&described["nextRotationAt"]),
        time(&versions[0]["createdAt"]) + chrono::Duration::seconds(2),
        "the schedule restarts from the rotation"
    );
}

#[tokio::test]
async fn two_replicas_on_postgresql_rotate_each_due_time_once() {
    let Some(url) = crate::common::postgres::test_database_url().await else {
        return;
    };
    let replica = |url: String| {
        TestServer::spawn_with(move |s| {
            s.database_url = url;
            s.secret_rotation_check_ms = 10;
        })
    };
    let first = replica(url.clone()).await;
    let second = replica(url).await;
    let generator = json!({"type": "string", "length": 24});
    put_secret(&first, "shared", json!(FIRST), policy(1, 0, generator)).await;
    first
        .put_config(
            "svc",
            json!({"config": {"key": {"$secret": "store:shared"}}, "metadata": meta("a", "v1")}),
        )
        .await;
    let described = until_version(&second, "shared", 4).await;
    // The other replica resolves the version it has as current (a rotation may land between
    // the two reads: then they are taken again).
    let mut agreed = false;
    for _ in 0..20 {
        let (_, current) = value(&second, "shared", "").await;
        let (status, svc) = resolved(&second, "svc").await;
        if status == 200 && svc["effectiveConfig"]["key"] == current["value"] {
            agreed = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(agreed, "the second replica resolves its current version");
    let mut versions = described["versions"].as_array().unwrap().clone();
    versions.reverse();
    let mut due_times = BTreeSet::new();
    for pair in versions.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert_eq!(
            after["version"].as_u64(),
            before["version"].as_u64().map(|v| v + 1)
        );
        let due = time(&after["origin"]["dueAt"]);
        assert_eq!(
            due,
            time(&before["createdAt"]) + chrono::Duration::seconds(1),
            "each rotation serves the due time of the version before it: {described}"
        );
        assert!(
            due_times.insert(due),
            "one due time rotated twice: {described}"
        );
    }
}

#[tokio::test]
async fn an_object_a_rotation_would_push_past_the_size_limit_is_refused() {
    let server = rotating_server().await;
    let rotation = policy(
        3600,
        0,
        json!({"type": "bytes", "length": 4096, "encoding": "hex", "field": "key"}),
    );
    // 64 KiB with the key at 3 bytes; 8,192 hex digits would not fit.
    let crowded = json!({"key": "old", "pad": "p".repeat(64 * 1024 - 40)});
    let (status, problem) = server
        .put_json(
            "/api/v1/secrets/crowded",
            &json!({"value": crowded, "metadata": meta("sam", "set"), "rotation": rotation}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("/value")),
        "{problem}"
    );
    let (status, _) = server.get_json("/api/v1/secrets/crowded").await;
    assert_eq!(status, 404, "a refused put stores nothing");
    // With room for the longest key, the same policy is taken and rotates.
    let roomy = json!({"key": "old", "pad": "p".repeat(1024)});
    put_secret(&server, "roomy", roomy, rotation).await;
    let (status, rotated) = server
        .post_json(
            "/api/v1/secrets/roomy/rotate",
            &json!({"metadata": meta("sam", "rotate")}),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let (status, current) = value(&server, "roomy", "").await;
    assert_eq!(status, 200, "{current}");
    assert_eq!(current["value"]["key"].as_str().map(str::len), Some(8192));
}
