//! Staged deployments end to end against the real server: released versions in an environment
//! that requires deployments, each strategy driven to completion by simulated instances (real
//! registry registrations and heartbeats from the test, each reporting the checksum its own
//! `/effective?instanceId=` read answered), automatic rollback on unhealthy reports with the
//! measured values in the log, no data handled as configured, operators' actions, 409 on a
//! second deployment, watchers on targeted and untargeted instances, a restart mid-deployment,
//! and two PostgreSQL replicas with the engine moving when its holder stops.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, meta};
use crate::watch_sse::watch;

const DEADLINE: Duration = Duration::from_secs(30);
const ENV: &str = "production";
const SERVICE: &str = "web";

async fn server() -> TestServer {
    TestServer::spawn_with(|s| {
        s.deployment_environments = "production,staging".into();
        s.deployment_tick_ms = 50;
    })
    .await
}

fn fleet(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("web-{i}")).collect()
}

async fn register_fleet(server: &TestServer, ids: &[String]) {
    for (n, id) in ids.iter().enumerate() {
        let body = json!({
            "serviceName": SERVICE, "instanceId": id, "environment": ENV,
            "serviceUrl": format!("http://127.0.0.1:{}", 10_000 + n),
        });
        let (status, instance) = server.post_json("/api/v1/registry/register", &body).await;
        assert_eq!(status, 201, "{instance}");
    }
}

/// The effective config `id` serves to `instance` in production.
async fn served(server: &TestServer, config: &str, instance: &str) -> Value {
    let (status, body) = server
        .get_json(&format!(
            "/api/v1/configs/{config}/effective?environment={ENV}&instanceId={instance}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every instance reads its config and reports the checksum it got (and its health) in a
/// heartbeat, as a real instance would.
async fn report(server: &TestServer, config: &str, ids: &[String], unhealthy: &[String]) {
    for id in ids {
        let checksum = served(server, config, id).await["checksum"].clone();
        let status = if unhealthy.contains(id) {
            "critical"
        } else {
            "passing"
        };
        let (code, body) = server
            .put_json(
                &format!("/api/v1/registry/services/{SERVICE}/instances/{id}/heartbeat"),
                &json!({"status": status, "applied": {config: checksum}}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
}

/// Heartbeats that report the served version applied, with what each instance measured.
async fn report_measured(server: &TestServer, config: &str, ids: &[String], error_rate: f64) {
    for id in ids {
        let checksum = served(server, config, id).await["checksum"].clone();
        let (code, body) = server
            .put_json(
                &format!("/api/v1/registry/services/{SERVICE}/instances/{id}/heartbeat"),
                &json!({"status": "passing", "applied": {config: checksum},
                        "errorRate": error_rate, "latencyP99Ms": 80.5}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
}

async fn put(server: &TestServer, config: &str, value: u64) -> u64 {
    server
        .put_config(
            config,
            json!({"config": {"value": value}, "metadata": meta("dev", "change")}),
        )
        .await
}

async fn deploy(server: &TestServer, config: &str, version: u64, strategy: Value) -> Value {
    let (status, body) = server
        .post_json(
            "/api/v1/deployments",
            &json!({"configId": config, "environment": ENV, "version": version,
                    "strategy": strategy, "metadata": meta("release-manager", "ship it")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "pending");
    body
}

async fn deployment(server: &TestServer, id: &str) -> Value {
    let (status, body) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn log(server: &TestServer, id: &str) -> Vec<Value> {
    let (status, body) = server
        .get_json(&format!("/api/v1/deployments/{id}/log"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// Lets the fleet report until the deployment reaches `state`.
async fn until_state(
    server: &TestServer,
    config: &str,
    id: &str,
    ids: &[String],
    unhealthy: &[String],
    state: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        report(server, config, ids, unhealthy).await;
        let found = deployment(server, id).await;
        if found["state"] == state {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deployment never reached {state}: {found}\nlog: {:#?}",
            log(server, id).await
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// As `until_state`, the instances reporting `error_rate` with every heartbeat.
async fn until_measured_state(
    server: &TestServer,
    config: &str,
    id: &str,
    ids: &[String],
    error_rate: f64,
    state: &str,
) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while deployment(server, id).await["state"] != state {
        report_measured(server, config, ids, error_rate).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "deployment never reached {state}: {:#?}",
            log(server, id).await
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Polls until `instance` is served `version`: what is served follows a transition read back
/// through the API within moments (it is refreshed right after the commit).
async fn until_served(server: &TestServer, config: &str, instance: &str, version: u64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while value_of(&served(server, config, instance).await) != version {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{instance} never served version {version} of {config}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn strategy(rollout: Value) -> Value {
    json!({"rollout": rollout, "finalBakeSecs": 0, "gate": {"applyTimeoutSecs": 20}})
}

fn value_of(effective: &Value) -> u64 {
    effective["effectiveConfig"]["value"].as_u64().unwrap()
}

#[tokio::test]
async fn every_strategy_walks_to_completion_and_releases_the_version() {
    let server = server().await;
    let ids = fleet(10);
    register_fleet(&server, &ids).await;
    let rollouts = [
        (
            "canary",
            json!({"type": "canary", "steps": [{"percent": 30, "bakeSecs": 0}, {"percent": 60, "bakeSecs": 0}]}),
        ),
        (
            "linear",
            json!({"type": "linear", "stepPercent": 40, "intervalSecs": 0}),
        ),
        (
            "exponential",
            json!({"type": "exponential", "initialPercent": 10, "growthFactor": 3, "intervalSecs": 0}),
        ),
        (
            "rolling",
            json!({"type": "rolling", "batchSize": 4, "bakeSecs": 0}),
        ),
        (
            "blue-green",
            json!({"type": "blue-green", "previewPercent": 20, "autoPromote": true, "promoteAfterSecs": 0}),
        ),
        ("direct", json!({"type": "direct"})),
    ];
    for (name, rollout) in rollouts {
        let config = format!("svc-{name}");
        assert_eq!(put(&server, &config, 1).await, 1);
        // A config's first version is released at once: there is nothing to protect.
        assert_eq!(value_of(&served(&server, &config, "web-0").await), 1);
        report(&server, &config, &ids, &[]).await;
        assert_eq!(put(&server, &config, 2).await, 2);
        // The new version is not served in production, to any instance, until deployed…
        for id in &ids {
            assert_eq!(value_of(&served(&server, &config, id).await), 1, "{name}");
        }
        // …while environments that do not require deployments serve it at once.
        let (_, dev) = server
            .get_json(&format!(
                "/api/v1/configs/{config}/effective?environment=dev"
            ))
            .await;
        assert_eq!(value_of(&dev), 2);
        let started = deploy(&server, &config, 2, strategy(rollout)).await;
        let id = started["id"].as_str().unwrap();
        assert_eq!(started["previousVersion"], 1);
        assert_eq!(started["instances"].as_array().unwrap().len(), 10);
        until_state(&server, &config, id, &ids, &[], "complete").await;
        for id in &ids {
            until_served(&server, &config, id, 2).await;
        }
        let (_, anyone) = server
            .get_json(&format!(
                "/api/v1/configs/{config}/effective?environment={ENV}"
            ))
            .await;
        assert_eq!(value_of(&anyone), 2, "released to instances outside it too");
        let entries = log(&server, id).await;
        let states: Vec<&str> = entries.iter().map(|e| e["to"].as_str().unwrap()).collect();
        assert_eq!(states.first(), Some(&"pending"), "{name}: {states:?}");
        assert_eq!(states.last(), Some(&"complete"), "{name}: {states:?}");
        assert!(states.contains(&"final_bake"), "{name}: {states:?}");
        // Every step that passed its gate says what it measured.
        let passed = entries
            .iter()
            .filter(|e| e["to"] == "baking" || e["to"] == "final_bake")
            .collect::<Vec<_>>();
        assert!(!passed.is_empty());
        for entry in passed {
            assert_eq!(entry["triggeredBy"], "health", "{entry}");
            assert_eq!(entry["measured"]["ackRatio"], 1.0, "{entry}");
        }
        // Percentages only grow (sticky targets).
        let percents: Vec<f64> = entries
            .iter()
            .map(|e| e["percent"].as_f64().unwrap())
            .collect();
        assert!(
            percents.windows(2).all(|w| w[0] <= w[1]),
            "{name}: {percents:?}"
        );
        let (_, releases) = server
            .get_json(&format!("/api/v1/configs/{config}/releases"))
            .await;
        let production = releases["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["environment"] == ENV)
            .unwrap()
            .clone();
        assert_eq!(production["releasedVersion"], 2, "{releases}");
        assert_eq!(production["releasedBy"], id);
    }
}

#[tokio::test]
async fn an_unhealthy_canary_rolls_back_and_watchers_see_exactly_their_versions() {
    let server = server().await;
    let ids = fleet(10);
    register_fleet(&server, &ids).await;
    put(&server, "checkout", 1).await;
    report(&server, "checkout", &ids, &[]).await;
    put(&server, "checkout", 2).await;
    let started = deploy(
        &server,
        "checkout",
        2,
        json!({"rollout": {"type": "canary", "steps": [{"percent": 30, "bakeSecs": 3600}]},
               "gate": {"applyTimeoutSecs": 20, "maxUnhealthyRatio": 0.2}}),
    )
    .await;
    let id = started["id"].as_str().unwrap();
    let baking = until_state(&server, "checkout", id, &ids, &[], "baking").await;
    let targets: Vec<String> = serde_json::from_value(baking["targets"].clone()).unwrap();
    assert!(!targets.is_empty() && targets.len() < ids.len(), "{baking}");
    let outside = ids.iter().find(|i| !targets.contains(i)).unwrap().clone();
    // Targeted instances run version 2, the others version 1.
    assert_eq!(value_of(&served(&server, "checkout", &targets[0]).await), 2);
    assert_eq!(value_of(&served(&server, "checkout", &outside).await), 1);
    // Drift judges each instance against the version it is served: all in sync, the targets
    // on version 2 and the others on version 1.
    let (_, drift) = server
        .get_json(&format!("/api/v1/configs/checkout/drift?environment={ENV}"))
        .await;
    assert_eq!(drift["summary"]["inSync"], 10, "{drift}");
    assert_eq!(drift["summary"]["drifted"], 0, "{drift}");
    let mut targeted = watch(
        &server,
        &format!(
            "?configId=checkout&environment={ENV}&instanceId={}",
            targets[0]
        ),
        None,
    )
    .await;
    let mut untargeted = watch(
        &server,
        &format!("?configId=checkout&environment={ENV}&instanceId={outside}"),
        None,
    )
    .await;
    // Every targeted instance reports critical: the deployment rolls back by itself.
    let rolled = until_state(&server, "checkout", id, &ids, &targets, "rolled_back").await;
    assert_eq!(rolled["previousVersion"], 1);
    // The targeted instance's watch delivers version 1 again; the other's stays quiet (it
    // never stopped running version 1).
    let back = targeted.next_change().await;
    assert_eq!(back["kind"], "config.updated", "{back}");
    assert_eq!(back["version"], 1, "{back}");
    untargeted.assert_quiet().await;
    for id in &ids {
        assert_eq!(value_of(&served(&server, "checkout", id).await), 1);
    }
    let entries = log(&server, id).await;
    let failure = entries
        .iter()
        .find(|e| e["to"] == "rolling_back")
        .expect("a rolling_back transition");
    assert_eq!(failure["triggeredBy"], "health");
    // The gate fails on the first evaluation over its limit (the fleet reports one by one).
    let measured = &failure["measured"];
    assert!(
        measured["unhealthyRatio"].as_f64().unwrap() > 0.2,
        "{failure}"
    );
    assert!(measured["unhealthy"].as_u64().unwrap() >= 1, "{failure}");
    assert_eq!(
        measured["targeted"].as_u64().unwrap() as usize,
        targets.len()
    );
    assert!(
        failure["reason"]
            .as_str()
            .unwrap()
            .contains("maxUnhealthyRatio"),
        "{failure}"
    );
    // A change event and an audit record per transition.
    let (_, audit) = server.get_json("/api/v1/configs/checkout/audit").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"deployment.rolling_back"), "{actions:?}");
    assert!(actions.contains(&"deployment.rolled_back"), "{actions:?}");
    assert!(actions.contains(&"deployment.created"), "{actions:?}");
}

#[tokio::test]
async fn no_data_pauses_or_rolls_back_as_the_gate_says_and_never_passes() {
    let server = server().await;
    put(&server, "quiet", 1).await;
    put(&server, "quiet", 2).await;
    // Instances nobody registered: nothing reports, so the gate has no data.
    let body = |on_no_data: &str| {
        json!({"configId": "quiet", "environment": ENV, "version": 2,
               "instances": ["ghost-1", "ghost-2"],
               "strategy": {"rollout": {"type": "direct"},
                            "gate": {"applyTimeoutSecs": 1, "maxErrorRate": 0.01,
                                     "minAckRatio": 0.5, "onNoData": on_no_data}},
               "metadata": meta("ops", "try")})
    };
    let (status, paused) = server
        .post_json("/api/v1/deployments", &body("pause"))
        .await;
    assert_eq!(status, 201, "{paused}");
    let id = paused["id"].as_str().unwrap().to_owned();
    let found = until_state(&server, "quiet", &id, &[], &[], "rolled_back").await;
    // Nothing acked within the apply timeout: a failed gate (no data is never a pass).
    assert!(
        found["reason"].as_str().unwrap().contains("applied"),
        "{found}"
    );

    // Registered instances that applied, but report no error rate while the gate asks for one.
    let ids = fleet(2);
    register_fleet(&server, &ids).await;
    report(&server, "quiet", &ids, &[]).await;
    let mut with_instances = body("pause");
    with_instances["instances"] = json!(ids);
    let (status, started) = server
        .post_json("/api/v1/deployments", &with_instances)
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let paused = until_state(&server, "quiet", &id, &ids, &[], "paused").await;
    assert!(
        paused["reason"].as_str().unwrap().starts_with("no data"),
        "{paused}"
    );
    let entries = log(&server, &id).await;
    let entry = entries.last().unwrap();
    assert_eq!(entry["to"], "paused");
    // The gate judges once enough instances applied (`minAckRatio` 0.5: one of the two may
    // still be applying when it does, on a loaded machine).
    assert_eq!(entry["measured"]["targeted"], 2, "{entry}");
    assert!(
        entry["measured"]["ackRatio"].as_f64().unwrap() >= 0.5,
        "{entry}"
    );
    // Abort: everyone is served the previous version again.
    let (status, aborted) = server
        .post_json(&format!("/api/v1/deployments/{id}/abort"), &json!({}))
        .await;
    assert_eq!(status, 200, "{aborted}");
    assert_eq!(aborted["state"], "aborted");
    assert_eq!(value_of(&served(&server, "quiet", "web-0").await), 1);

    let mut rollback = body("rollback");
    rollback["instances"] = json!(ids);
    let (status, started) = server.post_json("/api/v1/deployments", &rollback).await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    until_state(&server, "quiet", &id, &ids, &[], "rolled_back").await;
    let entries = log(&server, &id).await;
    assert!(
        entries
            .iter()
            .any(|e| e["to"] == "rolling_back"
                && e["reason"].as_str().unwrap().starts_with("no data")),
        "{entries:#?}"
    );
}

#[tokio::test]
async fn a_gate_judges_the_error_rates_and_latencies_instances_report() {
    let server = server().await;
    let ids = fleet(4);
    register_fleet(&server, &ids).await;
    put(&server, "metered", 1).await;
    report(&server, "metered", &ids, &[]).await;
    put(&server, "metered", 2).await;
    // Heartbeats carry what each instance measured; a bad value is refused, naming it.
    let path = format!("/api/v1/registry/services/{SERVICE}/instances/web-0/heartbeat");
    let (status, problem) = server.put_json(&path, &json!({"errorRate": 1.5})).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "/errorRate");
    let (status, problem) = server.put_json(&path, &json!({"latencyP99Ms": -1})).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "/latencyP99Ms");
    for id in &ids {
        let path = format!("/api/v1/registry/services/{SERVICE}/instances/{id}/heartbeat");
        let (status, _) = server
            .put_json(&path, &json!({"errorRate": 0.2, "latencyP99Ms": 80.5}))
            .await;
        assert_eq!(status, 200);
    }
    let (_, instance) = server
        .get_json(&format!("/api/v1/registry/services/{SERVICE}"))
        .await;
    assert!(
        instance.to_string().contains("\"errorRate\":0.2"),
        "{instance}"
    );
    let started = deploy(
        &server,
        "metered",
        2,
        json!({"rollout": {"type": "direct"},
               "gate": {"applyTimeoutSecs": 20, "maxErrorRate": 0.05, "maxLatencyP99Ms": 500}}),
    )
    .await;
    let id = started["id"].as_str().unwrap();
    // What they measured before applying is forgotten when they apply: the gate judges what
    // they report running the new version.
    until_measured_state(&server, "metered", id, &ids, 0.2, "rolled_back").await;
    let entries = log(&server, id).await;
    let failure = entries.iter().find(|e| e["to"] == "rolling_back").unwrap();
    // The mean of what the instances that applied reported (in floating point).
    let rate = failure["measured"]["errorRate"].as_f64().unwrap();
    assert!((rate - 0.2).abs() < 1e-9, "{failure}");
    assert_eq!(failure["measured"]["latencyP99Ms"], 80.5, "{failure}");
    assert!(
        failure["reason"].as_str().unwrap().contains("maxErrorRate"),
        "{failure}"
    );
}

#[tokio::test]
async fn metrics_measured_before_applying_are_not_judged() {
    let server = server().await;
    let ids = fleet(4);
    register_fleet(&server, &ids).await;
    put(&server, "measured", 1).await;
    // Version 1 errs a lot, and the instances say so before version 2 is deployed (the first
    // heartbeat that reports version 1 applied has its metrics forgotten, the second's count).
    report_measured(&server, "measured", &ids, 0.3).await;
    report_measured(&server, "measured", &ids, 0.3).await;
    let (_, instances) = server
        .get_json(&format!("/api/v1/registry/services/{SERVICE}"))
        .await;
    assert!(
        instances.to_string().contains("\"errorRate\":0.3"),
        "{instances}"
    );
    put(&server, "measured", 2).await;
    let started = deploy(
        &server,
        "measured",
        2,
        json!({"rollout": {"type": "direct"}, "finalBakeSecs": 0,
               "gate": {"applyTimeoutSecs": 20, "maxErrorRate": 0.05}}),
    )
    .await;
    let id = started["id"].as_str().unwrap();
    // They apply version 2, the heartbeat saying so still carrying what they measured running
    // version 1, and then report nothing more yet: the gate waits for their metrics rather than
    // judge version 1's.
    report_measured(&server, "measured", &ids, 0.3).await;
    for _ in 0..10 {
        report(&server, "measured", &ids, &[]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waiting = deployment(&server, id).await;
    assert_eq!(waiting["state"], "deploying", "{waiting}");
    let (_, instances) = server
        .get_json(&format!("/api/v1/registry/services/{SERVICE}"))
        .await;
    assert!(!instances.to_string().contains("errorRate"), "{instances}");
    // Version 2 does well.
    until_measured_state(&server, "measured", id, &ids, 0.01, "complete").await;
    assert!(
        log(&server, id)
            .await
            .iter()
            .all(|entry| entry["to"] != "rolling_back"),
        "version 1's errors never failed version 2"
    );
}

#[tokio::test]
async fn actions_conflicts_and_bad_input() {
    let server = server().await;
    let ids = fleet(4);
    register_fleet(&server, &ids).await;
    put(&server, "api", 1).await;
    report(&server, "api", &ids, &[]).await;
    put(&server, "api", 2).await;
    put(&server, "api", 3).await;
    let bad = |body: Value, field: &'static str| {
        let server = &server;
        async move {
            let (status, problem) = server.post_json("/api/v1/deployments", &body).await;
            assert_eq!(status, 400, "{problem}");
            assert!(
                problem.to_string().contains(field),
                "{field} named in {problem}"
            );
        }
    };
    let base = json!({"configId": "api", "environment": ENV, "version": 2,
                      "strategy": "canary", "metadata": meta("ops", "go")});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    bad(with("environment", json!("dev")), "environment").await;
    bad(with("version", json!(9)), "version").await;
    bad(with("strategy", json!("no-such-strategy")), "strategy").await;
    bad(
        with(
            "strategy",
            json!({"rollout": {"type": "canary", "steps": [{"percent": 50, "bakeSecs": 1}, {"percent": 20, "bakeSecs": 1}]}}),
        ),
        "/strategy/rollout/steps/1/percent",
    )
    .await;
    bad(with("instances", json!(["bad id!"])), "/instances/0").await;
    bad(with("instances", json!([])), "/instances").await;
    // An inline strategy's shape errors name the field inside it.
    bad(
        with(
            "strategy",
            json!({"rollout": {"type": "direct"}, "finalBakeSecs": "soon"}),
        ),
        "/strategy/finalBakeSecs",
    )
    .await;
    let (_, none) = server.get_json("/api/v1/deployments?configId=api").await;
    assert_eq!(none["items"], json!([]), "bad input changes nothing");
    // Version 1 is released already.
    let (status, problem) = server
        .post_json("/api/v1/deployments", &with("version", json!(1)))
        .await;
    assert_eq!(status, 409, "{problem}");

    let slow = json!({"rollout": {"type": "canary", "steps": [{"percent": 50, "bakeSecs": 3600}]},
                      "gate": {"applyTimeoutSecs": 20}});
    let started = deploy(&server, "api", 2, slow.clone()).await;
    let id = started["id"].as_str().unwrap();
    // One active deployment per config and environment: the second is refused, naming it.
    let (status, problem) = server
        .post_json("/api/v1/deployments", &with("version", json!(3)))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem.to_string().contains(id), "{problem}");
    until_state(&server, "api", id, &ids, &[], "baking").await;
    let act = |action: &'static str| {
        let server = &server;
        async move {
            server
                .post_json(
                    &format!("/api/v1/deployments/{id}/{action}"),
                    &json!({"metadata": meta("ops", action)}),
                )
                .await
        }
    };
    let (status, paused) = act("pause").await;
    assert_eq!((status, paused["state"].clone()), (200, json!("paused")));
    let (status, _) = act("pause").await;
    assert_eq!(status, 409, "a paused deployment cannot be paused");
    let (status, resumed) = act("resume").await;
    assert_eq!((status, resumed["state"].clone()), (200, json!("baking")));
    let (status, promoted) = act("promote").await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["percent"], 100.0);
    until_state(&server, "api", id, &ids, &[], "complete").await;
    until_served(&server, "api", "web-1", 2).await;
    let (status, _) = act("abort").await;
    assert_eq!(status, 409, "a complete deployment cannot be aborted");
    let (status, problem) = server
        .post_json("/api/v1/deployments/not-a-uuid/pause", &json!({}))
        .await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) = server
        .post_json(&format!("/api/v1/deployments/{id}/explode"), &json!({}))
        .await;
    assert_eq!(status, 400, "{problem}");
    // Not while a later deployment is active (it would pull the release from under it).
    let later = deploy(&server, "api", 3, slow.clone()).await;
    let (status, problem) = act("rollback").await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem.to_string().contains(later["id"].as_str().unwrap()),
        "{problem}"
    );
    let (status, _) = server
        .post_json(
            &format!(
                "/api/v1/deployments/{}/abort",
                later["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    // Manual rollback after completion: version 1 is released again.
    let mut watcher = watch(
        &server,
        &format!("?configId=api&environment={ENV}&instanceId=web-1"),
        None,
    )
    .await;
    let (status, rolled) = act("rollback").await;
    assert_eq!(
        (status, rolled["state"].clone()),
        (200, json!("rolled_back"))
    );
    let back = watcher.next_change().await;
    assert_eq!(
        (back["kind"].clone(), back["version"].clone()),
        (json!("config.updated"), json!(1))
    );
    for id in &ids {
        assert_eq!(value_of(&served(&server, "api", id).await), 1);
    }
    let entries = log(&server, id).await;
    let last = entries.last().unwrap();
    assert_eq!(
        (last["to"].clone(), last["triggeredBy"].clone()),
        (json!("rolled_back"), json!("user"))
    );
    assert_eq!(last["actor"], "ops");
}

#[tokio::test]
async fn a_restart_mid_deployment_resumes_where_it_was() {
    let server = server().await;
    let ids = fleet(6);
    register_fleet(&server, &ids).await;
    put(&server, "resume", 1).await;
    report(&server, "resume", &ids, &[]).await;
    put(&server, "resume", 2).await;
    let started = deploy(
        &server,
        "resume",
        2,
        json!({"rollout": {"type": "canary", "steps": [{"percent": 20, "bakeSecs": 1}, {"percent": 50, "bakeSecs": 3600}]},
               "gate": {"applyTimeoutSecs": 20}}),
    )
    .await;
    let id = started["id"].as_str().unwrap().to_owned();
    let mut baking = until_state(&server, "resume", &id, &ids, &[], "baking").await;
    while baking["step"] != 1 {
        baking = until_state(&server, "resume", &id, &ids, &[], "baking").await;
    }
    let before = log(&server, &id).await.len();
    let server = server
        .restart_with(|s| {
            s.deployment_environments = "production".into();
            s.deployment_tick_ms = 50;
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = deployment(&server, &id).await;
    assert_eq!(after["state"], "baking", "{after}");
    assert_eq!(
        after["step"], 1,
        "resumed at its step, not from zero: {after}"
    );
    assert_eq!(
        after["targets"], baking["targets"],
        "the same instances keep the version"
    );
    assert_eq!(log(&server, &id).await.len(), before, "no step made twice");
    let target = baking["targets"][0].as_str().unwrap();
    assert_eq!(value_of(&served(&server, "resume", target).await), 2);
    // An instance's stream replaying from before the restart learns the version it runs now
    // from the first change it replays (the deployment's own changes are left out).
    let mut replay = watch(
        &server,
        &format!("?configId=resume&environment={ENV}&instanceId={target}&fromRevision=0"),
        None,
    )
    .await;
    let first = replay.next_change().await;
    assert_eq!(
        (first["kind"].clone(), first["version"].clone()),
        (json!("config.updated"), json!(2)),
        "{first}"
    );
    let (status, _) = server
        .post_json(&format!("/api/v1/deployments/{id}/promote"), &json!({}))
        .await;
    assert_eq!(status, 200);
    until_state(&server, "resume", &id, &ids, &[], "complete").await;
}

#[tokio::test]
async fn two_postgresql_replicas_hand_the_engine_over_when_its_holder_stops() {
    let Some(url) = crate::common::postgres::test_database_url().await else {
        return;
    };
    let replica = |url: String| {
        TestServer::spawn_with(move |s| {
            s.database_url = url;
            s.deployment_environments = "production".into();
            s.deployment_tick_ms = 50;
        })
    };
    let mut first = replica(url.clone()).await;
    let second = replica(url).await;
    let ids = fleet(5);
    register_fleet(&first, &ids).await;
    put(&first, "shared", 1).await;
    report(&second, "shared", &ids, &[]).await;
    put(&second, "shared", 2).await;
    // A version written through one replica is not served in production by the other.
    assert_eq!(value_of(&served(&first, "shared", "web-0").await), 1);
    let started = deploy(
        &first,
        "shared",
        2,
        json!({"rollout": {"type": "canary", "steps": [{"percent": 40, "bakeSecs": 2}]},
               "gate": {"applyTimeoutSecs": 20}}),
    )
    .await;
    let id = started["id"].as_str().unwrap().to_owned();
    let baking = until_state(&second, "shared", &id, &ids, &[], "baking").await;
    let target = baking["targets"][0].as_str().unwrap().to_owned();
    // Both replicas serve the targeted instance the new version.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while value_of(&served(&first, "shared", &target).await) != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "first never served it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut watcher = watch(
        &second,
        &format!("?configId=shared&environment={ENV}&instanceId=web-0"),
        None,
    )
    .await;
    // The first replica (the lease holder, or not) stops: the other finishes the deployment.
    first.stop().await;
    until_state(&second, "shared", &id, &ids, &[], "complete").await;
    if !baking["targets"]
        .as_array()
        .unwrap()
        .contains(&json!("web-0"))
    {
        let change = watcher.next_change().await;
        assert_eq!(change["version"], 2, "{change}");
    }
    let entries = log(&second, &id).await;
    let mut seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let count = seqs.len();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        count,
        "no transition recorded twice: {entries:#?}"
    );
}

#[tokio::test]
async fn a_deployment_to_a_protected_environment_starts_once_approved_and_applied() {
    let server = TestServer::spawn_with(|s| {
        s.deployment_environments = "production".into();
        s.deployment_tick_ms = 50;
        s.protected_environments = "production=1".into();
    })
    .await;
    let decide = |id: String, action: &'static str, actor: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server
                .post_json(
                    &format!("/api/v1/change-requests/{id}/{action}"),
                    &json!({"metadata": meta(actor, action)}),
                )
                .await;
            assert_eq!(status, 200, "{action}: {body}");
            body
        }
    };
    // Writing touches production too: each version goes through the workflow.
    for value in [1, 2] {
        let (status, request) = server
            .put_json(
                "/api/v1/configs/guarded",
                &json!({"config": {"value": value}, "metadata": meta("dev", "change")}),
            )
            .await;
        assert_eq!(status, 202, "{request}");
        let id = request["id"].as_str().unwrap().to_owned();
        decide(id.clone(), "approve", "lead").await;
        decide(id, "apply", "dev").await;
    }
    let ids = fleet(3);
    register_fleet(&server, &ids).await;
    report(&server, "guarded", &ids, &[]).await;
    assert_eq!(value_of(&served(&server, "guarded", "web-0").await), 1);
    // The deployment waits for approvals: 202 with the change request, nothing started.
    let (status, request) = server
        .post_json(
            "/api/v1/deployments",
            &json!({"configId": "guarded", "environment": ENV, "version": 2,
                    "strategy": strategy(json!({"type": "direct"})),
                    "metadata": meta("release-manager", "ship 2")}),
        )
        .await;
    assert_eq!(status, 202, "{request}");
    assert_eq!(request["operation"]["type"], "deploy", "{request}");
    assert_eq!(request["operation"]["version"], 2, "{request}");
    assert_eq!(request["environments"], json!([ENV]));
    let (_, none) = server
        .get_json("/api/v1/deployments?configId=guarded")
        .await;
    assert_eq!(none["items"], json!([]));
    let request_id = request["id"].as_str().unwrap().to_owned();
    let (status, early) = server
        .post_json(
            &format!("/api/v1/change-requests/{request_id}/apply"),
            &json!({"metadata": meta("release-manager", "too early")}),
        )
        .await;
    assert_eq!(status, 409, "not approved yet: {early}");
    decide(request_id.clone(), "approve", "lead").await;
    let applied = decide(request_id, "apply", "release-manager").await;
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(applied["appliedVersion"], 2);
    let (_, started) = server
        .get_json("/api/v1/deployments?configId=guarded")
        .await;
    let id = started["items"][0]["id"].as_str().unwrap().to_owned();
    until_state(&server, "guarded", &id, &ids, &[], "complete").await;
    until_served(&server, "guarded", "web-0", 2).await;
}

#[tokio::test]
async fn the_deployment_service_runs_deployments_over_grpc_under_the_same_rules() {
    use reqwest::Method;
    use summit_config::api::grpc::pb;
    use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
    use summit_config::api::grpc::pb::deployment_service_client::DeploymentServiceClient;
    use tonic::Code;

    use crate::grpc_access::{secured, token, with_token};

    let (server, channel) = secured(|s| {
        s.deployment_environments = "production,staging".into();
        s.deployment_tick_ms = 50;
    })
    .await;
    let mut deployments = DeploymentServiceClient::new(channel.clone());
    let mut configs = ConfigServiceClient::new(channel);
    let ops = token(&server, "ops", &["config-admin"], json!({})).await;
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let staging = token(
        &server,
        "staging-ops",
        &["config-admin"],
        json!({"environments": ["staging"]}),
    )
    .await;
    for value in [1, 2] {
        let (status, body) = crate::authorization::call(
            &server,
            &ops,
            Method::PUT,
            "/api/v1/configs/grpc-app",
            Some(json!({"config": {"value": value}, "metadata": meta("ops", "v")})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    // An instance's watch starts with what it is served (version 1: version 2 is not released)
    // and then hears only changes of that: a write that is not released to it is no change.
    let watch = pb::WatchRequest {
        config_ids: vec!["grpc-app".into()],
        environment: ENV.into(),
        instance_id: "g-0".into(),
        ..Default::default()
    };
    let mut stream = configs
        .watch(with_token(watch, Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first.event {
        Some(pb::watch_event::Event::Snapshot(change)) => assert_eq!(change.version, 1),
        other => panic!("expected the snapshot, got {other:?}"),
    }
    let (status, body) = crate::authorization::call(
        &server,
        &ops,
        Method::PUT,
        "/api/v1/configs/grpc-app",
        Some(json!({"config": {"value": 3}, "metadata": meta("ops", "v")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let quiet = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            let message = stream.message().await.unwrap().unwrap();
            if !matches!(message.event, Some(pb::watch_event::Event::Heartbeat(_))) {
                return message;
            }
        }
    })
    .await;
    assert!(
        quiet.is_err(),
        "an unreleased write reached the instance: {quiet:?}"
    );
    drop(stream);
    let instances: Vec<String> = (0..10).map(|i| format!("g-{i}")).collect();
    let create = |strategy_name: &str| pb::CreateDeploymentRequest {
        config_id: "grpc-app".into(),
        environment: ENV.into(),
        version: 2,
        strategy_name: strategy_name.into(),
        strategy_json: String::new(),
        instances: instances.clone(),
        metadata: Some(pb::Metadata {
            actor: "ops".into(),
            message: Some("over grpc".into()),
        }),
    };
    for refused in [&reader, &staging] {
        let status = deployments
            .create_deployment(with_token(create("canary"), Some(refused)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let status = deployments
        .create_deployment(with_token(create(""), Some(&ops)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let created = deployments
        .create_deployment(with_token(create("canary"), Some(&ops)))
        .await
        .expect("a config-admin deploys")
        .into_inner();
    assert_eq!((created.state.as_str(), created.version), ("pending", 2));
    let again = deployments
        .create_deployment(with_token(create("canary"), Some(&ops)))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(again.message().contains(&created.id), "{again:?}");
    // The engine takes the first step: some instances are targeted.
    let get = pb::GetDeploymentRequest {
        id: created.id.clone(),
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let deploying = loop {
        let found = deployments
            .get_deployment(with_token(get.clone(), Some(&reader)))
            .await
            .unwrap()
            .into_inner();
        if found.state == "deploying" {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{found:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let deployment: Value = serde_json::from_str(&deploying.deployment_json).unwrap();
    let targets: Vec<String> = serde_json::from_value(deployment["targets"].clone()).unwrap();
    let untargeted = instances.iter().find(|i| !targets.contains(i)).unwrap();
    let effective = |instance: &str| pb::GetEffectiveConfigRequest {
        config_id: "grpc-app".into(),
        environment: ENV.into(),
        instance_id: instance.into(),
        ..Default::default()
    };
    let version = |effective: pb::EffectiveConfig| effective.version;
    // What is served follows the recorded transition within moments (it is refreshed right
    // after the commit, before the change is published).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let target_sees = configs
            .get_effective_config(with_token(effective(&targets[0]), Some(&reader)))
            .await
            .unwrap()
            .into_inner();
        if version(target_sees) == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never served version 2"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let other_sees = configs
        .get_effective_config(with_token(effective(untargeted), Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version(other_sees), 1);
    let act = |action: &str| pb::DeploymentActionRequest {
        id: created.id.clone(),
        action: action.into(),
        metadata: Some(pb::Metadata {
            actor: "ops".into(),
            message: None,
        }),
    };
    let refused = deployments
        .act_on_deployment(with_token(act("abort"), Some(&reader)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let aborted = deployments
        .act_on_deployment(with_token(act("abort"), Some(&ops)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(aborted.state, "aborted");
    let back = configs
        .get_effective_config(with_token(effective(&targets[0]), Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        version(back),
        1,
        "an abort serves the previous version again"
    );
    let log = deployments
        .get_deployment_log(with_token(get.clone(), Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    let states: Vec<String> = log
        .entries_json
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["to"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(states, ["pending", "deploying", "aborted"]);
    let listed = deployments
        .list_deployments(with_token(
            pb::ListDeploymentsRequest {
                config_id: "grpc-app".into(),
                ..Default::default()
            },
            Some(&reader),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.deployments.len(), 1);
    let active = deployments
        .list_deployments(with_token(
            pb::ListDeploymentsRequest {
                active_only: true,
                ..Default::default()
            },
            Some(&reader),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(active.deployments.is_empty());
}

#[tokio::test]
async fn an_automatic_rollback_reaches_watchers_on_every_postgresql_replica() {
    let Some(url) = crate::common::postgres::test_database_url().await else {
        return;
    };
    let replica = |url: String| {
        TestServer::spawn_with(move |s| {
            s.database_url = url;
            s.deployment_environments = "production".into();
            s.deployment_tick_ms = 50;
        })
    };
    let first = replica(url.clone()).await;
    let second = replica(url).await;
    let ids = fleet(6);
    register_fleet(&first, &ids).await;
    put(&first, "both", 1).await;
    report(&first, "both", &ids, &[]).await;
    put(&first, "both", 2).await;
    let started = deploy(
        &second,
        "both",
        2,
        json!({"rollout": {"type": "canary", "steps": [{"percent": 30, "bakeSecs": 3600}]},
               "gate": {"applyTimeoutSecs": 20}}),
    )
    .await;
    let id = started["id"].as_str().unwrap().to_owned();
    let baking = until_state(&first, "both", &id, &ids, &[], "baking").await;
    let targets: Vec<String> = serde_json::from_value(baking["targets"].clone()).unwrap();
    let query = format!("?configId=both&environment={ENV}&instanceId={}", targets[0]);
    // Both replicas serve it version 2 (the follower may still be catching up on one).
    for server in [&first, &second] {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while value_of(&served(server, "both", &targets[0]).await) != 2 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut on_first = watch(&first, &query, None).await;
    let mut on_second = watch(&second, &query, None).await;
    // The unhealthy report lands on one replica; whichever holds the lease rolls back, and
    // the watch on each replica delivers version 1.
    let path = format!(
        "/api/v1/registry/services/{SERVICE}/instances/{}/heartbeat",
        targets[0]
    );
    let (status, _) = second.put_json(&path, &json!({"status": "critical"})).await;
    assert_eq!(status, 200);
    for events in [&mut on_first, &mut on_second] {
        let back = events.next_change().await;
        assert_eq!(
            (back["kind"].clone(), back["version"].clone()),
            (json!("config.updated"), json!(1)),
            "{back}"
        );
    }
    for server in [&first, &second] {
        assert_eq!(value_of(&served(server, "both", &targets[0]).await), 1);
    }
}

#[tokio::test]
async fn deleting_the_config_stops_its_deployment() {
    let server = server().await;
    put(&server, "doomed", 1).await;
    put(&server, "doomed", 2).await;
    let (status, started) = server
        .post_json(
            "/api/v1/deployments",
            &json!({"configId": "doomed", "environment": ENV, "version": 2,
                    "instances": ["ghost-1"], "strategy": "canary",
                    "metadata": meta("ops", "go")}),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap();
    let (status, _) = server
        .delete_json(
            "/api/v1/configs/doomed",
            &json!({"metadata": meta("ops", "gone")}),
        )
        .await;
    assert_eq!(status, 200);
    let stopped = until_state(&server, "doomed", id, &[], &[], "aborted").await;
    assert_eq!(stopped["reason"], "the config was deleted", "{stopped}");
    let entries = log(&server, id).await;
    assert_eq!(entries.last().unwrap()["triggeredBy"], "internal");
}

#[tokio::test]
async fn a_secret_change_reaches_a_config_whose_released_version_refers_to_it() {
    let server = server().await;
    let secret = |value: &str| json!({"value": value, "metadata": meta("ops", "set")});
    let (status, body) = server.put_json("/api/v1/secrets/db", &secret("one")).await;
    assert!(status == 200 || status == 201, "{body}");
    // Version 1 refers to the secret and stays released in production; version 2 does not.
    server
        .put_config(
            "orders",
            json!({"config": {"password": {"$secret": "store:db"}}, "metadata": meta("dev", "v1")}),
        )
        .await;
    put(&server, "orders", 2).await;
    let (status, body) = server.put_json("/api/v1/secrets/db", &secret("two")).await;
    assert_eq!(status, 201, "{body}");
    let (status, audit) = server.get_json("/api/v1/configs/orders/audit").await;
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["action"] == "config.secrets_changed"),
        "production's watchers are told: {audit}"
    );
}
