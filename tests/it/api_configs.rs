//! The REST surface end to end: schema, versions, effective, history, diff, rollback, audit,
//! applied state and drift, through HTTP against the real server on a real SQLite file.

use crate::common;

use common::{TestServer, meta};
use serde_json::{Value, json};

fn timeout_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"timeout": {"type": "integer", "minimum": 1, "maximum": 60}, "color": {"type": "string"}},
        "required": ["timeout"]
    })
}

/// A key inside (`bucket < 10%`) and one outside the 10% canary of config `checkout`.
fn canary_keys(config_id: &str) -> (String, String) {
    use summit_config::core::rollout::{BasisPoints, bucket, canary_namespace};
    let ten = BasisPoints::from_percent(10.0, "p").unwrap();
    let ns = canary_namespace(config_id);
    let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let inside = keys
        .iter()
        .find(|k| ten.includes(bucket(&ns, k)))
        .unwrap()
        .clone();
    let outside = keys
        .iter()
        .find(|k| !ten.includes(bucket(&ns, k)))
        .unwrap()
        .clone();
    (inside, outside)
}

fn checkout_body() -> Value {
    json!({
        "config": {"timeout": 30, "color": "blue"},
        "overrides": {"production": {"timeout": 10}},
        "canary": {"environment": "production", "trafficPercent": 10, "config": {"timeout": 5}, "startAt": "2026-01-01T00:00:00Z"},
        "metadata": meta("alice", "initial rollout")
    })
}

#[tokio::test]
async fn schema_is_registered_versioned_and_read_back() {
    let server = TestServer::spawn().await;
    let (status, first) = server
        .put_json(
            "/api/v1/configs/checkout/schema",
            &json!({"schema": timeout_schema(), "metadata": meta("alice", "v1")}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["version"], 1);
    let (status, second) = server
        .put_json(
            "/api/v1/configs/checkout/schema",
            &json!({"schema": {"type": "object"}, "metadata": meta("alice", "v2")}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(second["version"], 2);
    let (status, read) = server.get_json("/api/v1/configs/checkout/schema").await;
    assert_eq!(status, 200);
    assert_eq!(read["schema"], json!({"type": "object"}));
    assert_eq!(read["version"], 2);
}

#[tokio::test]
async fn schema_that_the_current_config_violates_is_refused() {
    let server = TestServer::spawn().await;
    server.put_config("checkout", checkout_body()).await;
    let strict =
        json!({"type": "object", "properties": {"timeout": {"type": "integer", "minimum": 20}}});
    let (status, problem) = server
        .put_json(
            "/api/v1/configs/checkout/schema",
            &json!({"schema": strict, "metadata": meta("bob", "")}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "schema_violation");
    assert_eq!(problem["errors"][0]["pointer"], "/timeout");
    assert_eq!(problem["errors"][0]["scope"], "environment=production");
    let (status, _) = server.get_json("/api/v1/configs/checkout/schema").await;
    assert_eq!(status, 404, "nothing was registered");
}

#[tokio::test]
async fn writes_are_validated_in_every_layer_with_json_pointers() {
    let server = TestServer::spawn().await;
    server
        .put_json(
            "/api/v1/configs/checkout/schema",
            &json!({"schema": timeout_schema(), "metadata": meta("a", "")}),
        )
        .await;
    let mut body = checkout_body();
    body["canary"]["config"] = json!({"timeout": 500});
    let (status, problem) = server.put_json("/api/v1/configs/checkout", &body).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["pointer"], "/timeout");
    assert_eq!(
        problem["errors"][0]["scope"],
        "environment=production,canary"
    );

    let mut body = checkout_body();
    body["abTest"] =
        json!({"name": "colors", "variants": [{"name": "a", "weight": 1, "config": {"color": 7}}]});
    let (status, problem) = server.put_json("/api/v1/configs/checkout", &body).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["pointer"], "/color");
    assert!(
        problem["errors"][0]["scope"]
            .as_str()
            .unwrap()
            .contains("variant=a")
    );

    let (status, _) = server.get_json("/api/v1/configs/checkout").await;
    assert_eq!(status, 404, "no version was written");

    let (status, report) = server
        .post_json(
            "/api/v1/configs/checkout/schema/validate",
            &json!({"config": {"timeout": 0}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["valid"], false);
    assert_eq!(report["violations"][0]["pointer"], "/timeout");
    let (_, report) = server
        .post_json(
            "/api/v1/configs/checkout/schema/validate",
            &json!({"config": {"timeout": 3}}),
        )
        .await;
    assert_eq!(report["valid"], true);
}

#[tokio::test]
async fn put_creates_immutable_versions_with_checksum_and_metadata() {
    let server = TestServer::spawn().await;
    let (status, created) = server
        .put_json("/api/v1/configs/checkout", &checkout_body())
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["version"], 1);
    // The version checksum covers the whole document (base and every layer), as stored.
    let (_, stored) = server.get_json("/api/v1/configs/checkout/versions/1").await;
    let document: serde_json::Map<String, Value> = ["config", "overrides", "canary", "abTest"]
        .into_iter()
        .filter_map(|key| stored.get(key).map(|value| (key.to_owned(), value.clone())))
        .collect();
    let expected = summit_config::core::checksum::checksum(&Value::Object(document));
    assert_eq!(created["checksum"], expected);
    assert_ne!(
        created["checksum"],
        summit_config::core::checksum::checksum(&json!({"timeout": 30, "color": "blue"})),
        "not the base alone"
    );
    assert!(created["createdAt"].is_string());

    let mut second = checkout_body();
    second["config"]["timeout"] = json!(40);
    assert_eq!(server.put_config("checkout", second).await, 2);

    let response = server.get("/api/v1/configs/checkout").await;
    assert_eq!(response.headers()["etag"], "\"2\"");
    let latest: Value = response.json().await.unwrap();
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["config"]["timeout"], 40);
    assert_eq!(latest["metadata"]["actor"], "alice");
    assert_eq!(latest["overrides"]["production"]["timeout"], 10);

    let (_, v1) = server.get_json("/api/v1/configs/checkout/versions/1").await;
    assert_eq!(v1["config"]["timeout"], 30, "version 1 is unchanged");
    let (status, _) = server.get_json("/api/v1/configs/checkout/versions/9").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn expected_version_and_if_match_guard_writes() {
    let server = TestServer::spawn().await;
    let mut body = checkout_body();
    body["expectedVersion"] = json!(0);
    assert_eq!(server.put_config("checkout", body.clone()).await, 1);
    let (status, problem) = server.put_json("/api/v1/configs/checkout", &body).await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "version_conflict");
    assert_eq!(problem["currentVersion"], 1);

    let stale = server
        .client
        .put(server.url("/api/v1/configs/checkout"))
        .header("if-match", "\"0\"")
        .json(&checkout_body())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    let fresh = server
        .client
        .put(server.url("/api/v1/configs/checkout"))
        .header("if-match", "\"1\"")
        .json(&checkout_body())
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 201);
    let (_, page) = server.get_json("/api/v1/configs/checkout/versions").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn effective_config_applies_override_and_canary_by_assignment_key() {
    let server = TestServer::spawn().await;
    server.put_config("checkout", checkout_body()).await;
    let (inside, outside) = canary_keys("checkout");

    let (status, hit) = server
        .get_json(&format!(
            "/api/v1/configs/checkout/effective?environment=production&assignmentKey={inside}"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        hit["effectiveConfig"],
        json!({"timeout": 5, "color": "blue"})
    );
    assert_eq!(hit["assignment"], json!({"canary": true, "variant": null}));
    assert_eq!(hit["version"], 1);
    assert_eq!(hit["environment"], "production");

    let (_, miss) = server
        .get_json(&format!(
            "/api/v1/configs/checkout/effective?environment=production&assignmentKey={outside}"
        ))
        .await;
    assert_eq!(
        miss["effectiveConfig"],
        json!({"timeout": 10, "color": "blue"})
    );
    assert_eq!(miss["assignment"]["canary"], false);
    assert_eq!(
        miss["checksum"],
        summit_config::core::checksum::checksum(&json!({"timeout": 10, "color": "blue"}))
    );

    let (_, staging) = server
        .get_json("/api/v1/configs/checkout/effective?environment=staging&assignmentValue=0.01")
        .await;
    assert_eq!(
        staging["effectiveConfig"],
        json!({"timeout": 30, "color": "blue"})
    );

    let (_, by_value) = server
        .get_json("/api/v1/configs/checkout/effective?environment=production&assignmentValue=0.05")
        .await;
    assert_eq!(by_value["assignment"]["canary"], true, "0.05 < 10%");
}

#[tokio::test]
async fn effective_config_selects_ab_variant_by_weight() {
    let server = TestServer::spawn().await;
    let mut body = checkout_body();
    body["abTest"] = json!({"name": "colors", "environment": "production", "variants": [
        {"name": "red", "weight": 1, "config": {"color": "red"}},
        {"name": "green", "weight": 3, "config": {"color": "green"}}
    ]});
    server.put_config("checkout", body).await;
    let (_, low) = server
        .get_json("/api/v1/configs/checkout/effective?environment=production&assignmentValue=0.2")
        .await;
    assert_eq!(
        low["assignment"],
        json!({"canary": false, "variant": "red"})
    );
    assert_eq!(low["effectiveConfig"]["color"], "red");
    let (_, high) = server
        .get_json("/api/v1/configs/checkout/effective?environment=production&assignmentValue=0.3")
        .await;
    assert_eq!(high["assignment"]["variant"], "green");
    let (_, staging) = server
        .get_json("/api/v1/configs/checkout/effective?environment=staging&assignmentValue=0.3")
        .await;
    assert_eq!(
        staging["assignment"]["variant"],
        Value::Null,
        "the test targets production only"
    );
}

#[tokio::test]
async fn effective_config_has_etag_and_answers_304() {
    let server = TestServer::spawn().await;
    server.put_config("checkout", checkout_body()).await;
    let etag_of = |path: &'static str| {
        let server = &server;
        async move {
            let response = server.get(path).await;
            let etag = response.headers()["etag"].to_str().unwrap().to_owned();
            let body = response.bytes().await.unwrap();
            (etag, body)
        }
    };
    let path = "/api/v1/configs/checkout/effective?environment=production";
    let (etag, body) = etag_of(path).await;
    let digest = summit_config::core::checksum::checksum_of_bytes(&body);
    assert_eq!(
        etag,
        format!("\"{digest}\""),
        "a strong ETag of the response bytes"
    );
    let again = server
        .client
        .get(server.url(path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    let weak = server
        .client
        .get(server.url(path))
        .header("if-none-match", format!("W/{etag}, \"x\""))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 304);

    // An environment without a layer of its own gets a document naming it, with its own ETag.
    let (other_etag, other_body) =
        etag_of("/api/v1/configs/checkout/effective?environment=qa").await;
    let other: Value = serde_json::from_slice(&other_body).unwrap();
    assert_eq!(other["environment"], "qa");
    assert_eq!(
        other_etag,
        format!(
            "\"{}\"",
            summit_config::core::checksum::checksum_of_bytes(&other_body)
        )
    );

    // A change elsewhere (staging) leaves production's config alone but not its version: new ETag.
    let mut changed = checkout_body();
    changed["overrides"]["staging"] = json!({"timeout": 31});
    server.put_config("checkout", changed).await;
    let after = server
        .client
        .get(server.url(path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
    let after: Value = after.json().await.unwrap();
    let before: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(after["version"], 2);
    assert_eq!(
        after["checksum"], before["checksum"],
        "same effective config, same checksum"
    );
}

#[tokio::test]
async fn secrets_resolve_only_when_asked_and_are_never_stored() {
    // IT_DB_PASSWORD is set before main (common::env).
    let server = TestServer::spawn().await;
    let mut body = checkout_body();
    body["config"]["password"] = json!({"$secret": "env:IT_DB_PASSWORD"});
    server.put_config("checkout", body).await;

    let (_, plain) = server
        .get_json("/api/v1/configs/checkout/effective?environment=staging")
        .await;
    assert_eq!(
        plain["effectiveConfig"]["password"],
        json!({"$secret": "env:IT_DB_PASSWORD"})
    );
    let resolved = server
        .get("/api/v1/configs/checkout/effective?environment=staging&resolveSecrets=true")
        .await;
    assert_eq!(resolved.headers()["cache-control"], "no-store");
    let resolved: Value = resolved.json().await.unwrap();
    assert_eq!(
        resolved["effectiveConfig"]["password"],
        "hunter2-very-secret"
    );

    for path in [
        "/api/v1/configs/checkout",
        "/api/v1/configs/checkout/versions",
        "/api/v1/audit",
        "/api/v1/configs/checkout/audit",
    ] {
        let text = server.get(path).await.text().await.unwrap();
        assert!(!text.contains("hunter2"), "{path} leaked the secret");
    }
    let file = std::fs::read(&server.db_path).unwrap();
    assert!(
        !file.windows(7).any(|w| w == b"hunter2"),
        "the secret value reached the database"
    );

    let mut broken = checkout_body();
    broken["config"]["password"] = json!({"$secret": "env:IT_NOT_SET"});
    server.put_config("broken", broken).await;
    let (status, problem) = server
        .get_json("/api/v1/configs/broken/effective?resolveSecrets=true")
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["code"], "secret_unresolved");
    assert_eq!(problem["errors"][0]["pointer"], "/password");
    assert!(problem["detail"].as_str().unwrap().contains("'env'"));
}

#[tokio::test]
async fn rollback_creates_new_version_equal_to_target() {
    let server = TestServer::spawn().await;
    server.put_config("checkout", checkout_body()).await;
    let mut second = checkout_body();
    second["config"]["timeout"] = json!(45);
    second["canary"] = Value::Null;
    server.put_config("checkout", second).await;
    let (status, created) = server
        .post_json(
            "/api/v1/configs/checkout/rollback",
            &json!({"targetVersion": 1, "metadata": meta("carol", "bad deploy")}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 3);
    assert_eq!(created["rollbackOf"], 1);
    let (_, v1) = server.get_json("/api/v1/configs/checkout/versions/1").await;
    let (_, v3) = server.get_json("/api/v1/configs/checkout/versions/3").await;
    for field in ["config", "overrides", "canary", "checksum"] {
        assert_eq!(v1[field], v3[field], "{field}");
    }
    assert_eq!(v3["rollbackOf"], 1);
    assert_eq!(v3["metadata"]["actor"], "carol");
    let (status, _) = server
        .post_json(
            "/api/v1/configs/checkout/rollback",
            &json!({"targetVersion": 42, "metadata": meta("c", "")}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn diff_returns_json_patch_between_versions_and_environments() {
    let server = TestServer::spawn().await;
    server.put_config("checkout", checkout_body()).await;
    let mut second = checkout_body();
    second["config"]["color"] = json!("red");
    second["overrides"]["production"]["timeout"] = json!(12);
    server.put_config("checkout", second).await;
    let (status, diff) = server
        .get_json("/api/v1/configs/checkout/diff?from=1&to=2")
        .await;
    assert_eq!(status, 200);
    let ops = diff["patch"].as_array().unwrap();
    assert!(
        ops.contains(&json!({"op": "replace", "path": "/config/color", "value": "red"})),
        "{diff}"
    );
    assert!(
        ops.contains(
            &json!({"op": "replace", "path": "/overrides/production/timeout", "value": 12})
        )
    );
    let (_, env_diff) = server
        .get_json("/api/v1/configs/checkout/diff?from=1&to=2&environment=production")
        .await;
    let ops = env_diff["patch"].as_array().unwrap();
    assert!(
        ops.contains(&json!({"op": "replace", "path": "/timeout", "value": 12})),
        "{env_diff}"
    );
    assert!(ops.contains(&json!({"op": "replace", "path": "/color", "value": "red"})));
    let (_, default_diff) = server.get_json("/api/v1/configs/checkout/diff").await;
    assert_eq!(default_diff["from"], 1);
    assert_eq!(default_diff["to"], 2);
}

#[tokio::test]
async fn versions_are_paginated_newest_first() {
    let server = TestServer::spawn().await;
    for timeout in 1..=7 {
        let mut body = checkout_body();
        body["config"]["timeout"] = json!(timeout);
        server.put_config("checkout", body).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/configs/checkout/versions?limit=3".to_owned();
    loop {
        let (status, page) = server.get_json(&path).await;
        assert_eq!(status, 200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_u64().unwrap()),
        );
        match page["nextCursor"].as_u64() {
            Some(cursor) => {
                path = format!("/api/v1/configs/checkout/versions?limit=3&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
}

#[tokio::test]
async fn list_filters_by_prefix_and_delete_keeps_history_and_audit() {
    let server = TestServer::spawn().await;
    for id in ["payments.api", "payments.worker", "search"] {
        server.put_config(id, checkout_body()).await;
    }
    let (_, list) = server.get_json("/api/v1/configs?prefix=payments.").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["configId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["payments.api", "payments.worker"]);

    let response = server
        .client
        .delete(server.url("/api/v1/configs/search"))
        .json(&json!({"metadata": meta("dave", "retired")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.get_json("/api/v1/configs/search").await.0, 404);
    assert_eq!(
        server.get_json("/api/v1/configs/search/effective").await.0,
        404
    );
    let (_, list) = server.get_json("/api/v1/configs").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (status, history) = server.get_json("/api/v1/configs/search/versions").await;
    assert_eq!(status, 200);
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    let (_, audit) = server.get_json("/api/v1/configs/search/audit").await;
    assert_eq!(audit["items"][0]["action"], "config.delete");
    assert_eq!(audit["items"][0]["actor"], "dave");
    let again = server
        .client
        .delete(server.url("/api/v1/configs/search"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(
        server.put_config("search", checkout_body()).await,
        2,
        "re-creating continues the numbering"
    );
}

#[tokio::test]
async fn audit_records_every_mutation_with_who_what_and_why() {
    let server = TestServer::spawn().await;
    server
        .put_json(
            "/api/v1/configs/checkout/schema",
            &json!({"schema": timeout_schema(), "metadata": meta("sam", "schema")}),
        )
        .await;
    server.put_config("checkout", checkout_body()).await;
    let mut second = checkout_body();
    second["overrides"]["staging"] = json!({"timeout": 20});
    server.put_config("checkout", second).await;
    server
        .post_json(
            "/api/v1/configs/checkout/rollback",
            &json!({"targetVersion": 1, "metadata": meta("rita", "revert")}),
        )
        .await;
    let (_, audit) = server.get_json("/api/v1/configs/checkout/audit").await;
    let items = audit["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["config.rollback", "config.put", "config.put", "schema.put"]
    );
    assert_eq!(items[0]["actor"], "rita");
    assert_eq!(items[0]["message"], "revert");
    assert_eq!(items[0]["version"], 3);
    assert_eq!(items[1]["environments"], json!(["staging"]));
    assert_eq!(items[2]["environments"], json!(["*"]));
    let revisions: Vec<u64> = items
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, vec![4, 3, 2, 1]);
    let (_, all) = server.get_json("/api/v1/audit?limit=2").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert!(all["nextCursor"].is_u64());
    let (_, rest) = server
        .get_json(&format!("/api/v1/audit?cursor={}", all["nextCursor"]))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn applied_reports_drive_drift_in_sync_drifted_and_stale() {
    // "old" reports, then waits out the staleness window; the three fresh
    // reports and the drift read that follow must all land inside one window.
    // With a 1 s window a busy CI machine once took longer than that, and
    // "control" read as stale: 3 s leaves room for a loaded machine.
    const STALE_AFTER_SECS: u64 = 3;
    let server = TestServer::spawn_with(|s| s.stale_after_secs = STALE_AFTER_SECS).await;
    server.put_config("checkout", checkout_body()).await;
    let (_, control) = server
        .get_json("/api/v1/configs/checkout/effective?environment=production")
        .await;
    let (_, canary) = server
        .get_json("/api/v1/configs/checkout/effective?environment=production&assignmentValue=0.0")
        .await;
    let report = |instance: &str, checksum: &Value| json!({"environment": "production", "instanceId": instance, "version": 1, "checksum": checksum});
    let (status, reply) = server
        .post_json(
            "/api/v1/configs/checkout/applied",
            &report("old", &control["checksum"]),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    tokio::time::sleep(std::time::Duration::from_millis(
        STALE_AFTER_SECS * 1000 + 200,
    ))
    .await;
    server
        .post_json(
            "/api/v1/configs/checkout/applied",
            &report("control", &control["checksum"]),
        )
        .await;
    server
        .post_json(
            "/api/v1/configs/checkout/applied",
            &report("canary", &canary["checksum"]),
        )
        .await;
    server
        .post_json(
            "/api/v1/configs/checkout/applied",
            &report("rogue", &json!("0".repeat(64))),
        )
        .await;

    let (status, drift) = server
        .get_json("/api/v1/configs/checkout/drift?environment=production")
        .await;
    assert_eq!(status, 200);
    let status_of = |id: &str| {
        drift["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instanceId"] == id)
            .unwrap_or_else(|| panic!("no instance {id} in {drift}"))["status"]
            .clone()
    };
    assert_eq!(status_of("control"), "in_sync", "{drift}");
    assert_eq!(
        status_of("canary"),
        "in_sync",
        "the canary view is currently valid"
    );
    assert_eq!(status_of("rogue"), "drifted");
    assert_eq!(status_of("old"), "stale");
    assert_eq!(
        drift["summary"],
        json!({"inSync": 2, "drifted": 1, "stale": 1})
    );

    let (_, report_all) = server.get_json("/api/v1/drift").await;
    assert_eq!(
        report_all["summary"],
        json!({"inSync": 2, "drifted": 1, "stale": 1})
    );
    assert_eq!(report_all["configs"][0]["configId"], "checkout");

    let (status, problem) = server
        .post_json("/api/v1/configs/checkout/applied", &json!({"environment": "production", "instanceId": "x", "version": 1, "checksum": "nothex"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem["field"], "/checksum");
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let server = TestServer::spawn().await;
    assert_eq!(server.get_json("/live").await.0, 200);
    assert_eq!(server.get_json("/ready").await.0, 200);
    let (status, health) = server.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    server.put_config("checkout", checkout_body()).await;
    let metrics = server.get("/metrics").await;
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("summit_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/configs/{id}\""));
}
