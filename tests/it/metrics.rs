//! `/metrics` of the real binary (a process of its own, so no other test's server shares its
//! recorder): every metric issue 15 names is scraped, and each moves with what it counts —
//! gRPC calls by method and code, drift by config/environment/state, pending change requests,
//! cache hits, commits, watch streams, auth failures and rate-limit refusals.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;

use crate::common::binary::start_binary_with;

const ADMIN: &str = "metrics-test-admin-token-0123456789";

/// `name{labels}` → value, from Prometheus text.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series whose name is `name` and whose labels include all of `labels`.
fn value(scrape: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .iter()
        .find(|(series, _)| {
            let bare = series.split('{').next().unwrap_or_default();
            bare == name
                && labels
                    .iter()
                    .all(|(key, value)| series.contains(&format!("{key}=\"{value}\"")))
        })
        .map(|(_, value)| *value)
}

const ISSUE_METRICS: [&str; 24] = [
    "summit_http_requests_total",
    "summit_http_request_duration_seconds_bucket",
    "summit_grpc_requests_total",
    "summit_grpc_request_duration_seconds_bucket",
    "summit_watch_streams",
    "summit_events_published_total",
    "summit_watch_resyncs_total",
    "summit_cache_entries",
    "summit_cache_requests_total",
    "summit_commit_duration_seconds_bucket",
    "summit_commit_batch_size_bucket",
    "summit_drift_instances",
    "summit_change_requests_pending",
    "summit_change_request_oldest_pending_seconds",
    "summit_deployments",
    "summit_deployment_rollbacks_total",
    "summit_webhook_deliveries_total",
    "summit_webhook_queue_depth",
    "summit_webhooks_disabled",
    "summit_secret_rotations_total",
    "summit_database_up",
    "summit_auth_failures_total",
    "summit_rate_limited_total",
    "summit_revision",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_scraped_and_moves_with_what_it_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary_with(
        &dir.path().join("db.sqlite"),
        &[
            ("SUMMIT_ADMIN_TOKEN", ADMIN),
            ("SUMMIT_PROTECTED_ENVIRONMENTS", "production=1"),
            ("SUMMIT_RATE_LIMIT_PER_SEC", "5"),
            ("SUMMIT_RATE_LIMIT_BURST", "40"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let scrape = || async {
        let answer = client.get(url("/metrics")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        parse(&answer.text().await.unwrap())
    };

    let before = scrape().await;
    assert_eq!(value(&before, "summit_database_up", &[]), Some(1.0));

    // Creating a config touches production, which is protected: approved by a second
    // identity and applied. A second change then stays pending.
    let call = |method: reqwest::Method, path: &str, token: &str, body: serde_json::Value| {
        client
            .request(method, url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let meta = json!({"actor": "ci", "message": "metrics"});
    let answer = call(
        reqwest::Method::PUT,
        "/api/v1/configs/payments.api",
        ADMIN,
        json!({"config": {"timeout": 5}, "metadata": meta}),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 202);
    let request: serde_json::Value = answer.json().await.unwrap();
    let request = request["id"].as_str().unwrap().to_owned();
    let approver: serde_json::Value = call(
        reqwest::Method::POST,
        "/api/v1/tokens",
        ADMIN,
        json!({"name": "approver", "roles": ["config-admin"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let approver = approver["tokenText"].as_str().unwrap().to_owned();
    for (token, action) in [(approver.as_str(), "approve"), (ADMIN, "apply")] {
        let path = format!("/api/v1/change-requests/{request}/{action}");
        let answer = call(reqwest::Method::POST, &path, token, json!({}))
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            200,
            "{action}: {}",
            answer.text().await.unwrap()
        );
    }
    let answer = call(
        reqwest::Method::PUT,
        "/api/v1/configs/payments.api",
        ADMIN,
        json!({"config": {"timeout": 5}, "overrides": {"production": {"timeout": 9}},
               "metadata": meta, "expectedVersion": 1}),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());

    // Two instances report: one runs what it should, one does not.
    let effective: serde_json::Value = client
        .get(url(
            "/api/v1/configs/payments.api/effective?environment=staging",
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (instance, checksum) in [
        (
            "in-sync",
            effective["checksum"].as_str().unwrap().to_owned(),
        ),
        ("rogue", "0".repeat(64)),
    ] {
        let answer = client
            .post(url("/api/v1/configs/payments.api/applied"))
            .bearer_auth(ADMIN)
            .json(
                &json!({"environment": "staging", "instanceId": instance, "version": 1,
                          "checksum": checksum}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }

    // gRPC: one call answered, one not found.
    let mut grpc = ConfigServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let call = |id: &str| {
        let mut request = tonic::Request::new(pb::GetConfigRequest {
            config_id: id.to_owned(),
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        request
    };
    grpc.get_config(call("payments.api")).await.unwrap();
    let missing = grpc.get_config(call("nothing.here")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // A watcher open while the scrape happens.
    let watch = client
        .get(url("/api/v1/watch"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);

    // A wrong credential.
    let refused = client
        .get(url("/api/v1/configs"))
        .bearer_auth("not-a-token-at-all-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let after = scrape().await;
    for name in ISSUE_METRICS {
        assert!(
            after
                .keys()
                .any(|series| series.split('{').next() == Some(name)),
            "{name} missing from the scrape"
        );
    }
    let grew = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels).unwrap_or(0.0) - value(&before, name, labels).unwrap_or(0.0)
    };
    let method = "/summit.config.v1.ConfigService/GetConfig";
    assert_eq!(
        value(
            &after,
            "summit_grpc_requests_total",
            &[("method", method), ("code", "OK")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "summit_grpc_requests_total",
            &[("method", method), ("code", "NOT_FOUND")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &after,
            "summit_grpc_request_duration_seconds_count",
            &[("method", method), ("code", "OK")]
        ) == Some(1.0)
    );
    for (state, count) in [("in_sync", 1.0), ("drifted", 1.0)] {
        assert_eq!(
            value(
                &after,
                "summit_drift_instances",
                &[
                    ("config", "payments.api"),
                    ("environment", "staging"),
                    ("state", state)
                ]
            ),
            Some(count),
            "{state}"
        );
    }
    assert_eq!(
        value(&after, "summit_change_requests_pending", &[]),
        Some(1.0)
    );
    assert!(value(&after, "summit_change_request_oldest_pending_seconds", &[]).unwrap() >= 0.0);
    assert!(grew("summit_cache_requests_total", &[("result", "hit")]) >= 1.0);
    assert!(grew("summit_commit_duration_seconds_count", &[]) >= 1.0);
    assert!(grew("summit_commit_batch_size_count", &[]) >= 1.0);
    assert!(grew("summit_events_published_total", &[]) >= 1.0);
    assert_eq!(
        value(&after, "summit_watch_streams", &[("transport", "sse")]),
        Some(1.0)
    );
    assert_eq!(grew("summit_auth_failures_total", &[]), 1.0);
    assert!(value(&after, "summit_cache_entries", &[]).unwrap() >= 1.0);
    assert!(value(&after, "summit_revision", &[]).unwrap() >= 2.0);
    assert!(
        grew(
            "summit_http_requests_total",
            &[("route", "/api/v1/configs/{id}/applied"), ("status", "200")]
        ) == 2.0
    );
    // The effective read, answered ahead of the router, is counted under its route too.
    assert_eq!(
        grew(
            "summit_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/api/v1/configs/{id}/effective"),
                ("status", "200")
            ]
        ),
        1.0
    );

    // The watcher gone, the gauge comes down.
    drop(watch);
    let mut streams = None;
    for _ in 0..50 {
        streams = value(
            &scrape().await,
            "summit_watch_streams",
            &[("transport", "sse")],
        );
        if streams == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(streams, Some(0.0));

    // Past the burst, the rate limit refuses, and says so in the metrics.
    let mut limited = 0;
    for _ in 0..60 {
        let answer = client
            .get(url("/api/v1/configs"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        limited += usize::from(answer.status() == 429);
    }
    assert!(limited > 0);
    let last = scrape().await;
    assert_eq!(
        value(&last, "summit_rate_limited_total", &[]).unwrap()
            - value(&before, "summit_rate_limited_total", &[]).unwrap(),
        limited as f64
    );
    server.terminate().await;
}

/// A gRPC client that can call any path (not only the generated clients' methods).
async fn raw_grpc(
    server: &crate::common::TestServer,
) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

/// A gRPC path is the client's text: a call to a path no service has is labelled `unknown`
/// whatever it is answered (here UNAUTHENTICATED, before any routing), so made-up paths cannot
/// grow the metrics without bound.
#[tokio::test]
async fn grpc_calls_to_unknown_paths_share_one_label() {
    let server = crate::common::TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
    })
    .await;
    let mut grpc = raw_grpc(&server).await;
    for n in 0..5 {
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(format!(
            "/made.up.Service{n}/Method{n}"
        ))
        .unwrap();
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let status = grpc
            .unary(tonic::Request::new(()), path, codec)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    }
    let scrape = server.get("/metrics").await.text().await.unwrap();
    assert!(
        !scrape.contains("made.up"),
        "a client's path became a label"
    );
    assert!(
        scrape.contains(r#"method="unknown""#),
        "the calls are counted under unknown"
    );
}

/// A call that outlives the request timeout ends with DEADLINE_EXCEEDED (tonic's own timeout
/// answered CANCELLED, as if the client had gone), and is counted with that code.
#[tokio::test]
async fn a_grpc_call_past_the_request_timeout_is_deadline_exceeded_and_counted() {
    let server = crate::common::TestServer::spawn_with(|s| s.request_timeout_secs = 1).await;
    let mut grpc = raw_grpc(&server).await;
    grpc.ready().await.unwrap();
    let path = "/summit.config.v1.ConfigService/GetConfig";
    // The request's message never comes: the handler waits for it until the deadline.
    let never = futures::stream::pending::<pb::GetConfigRequest>();
    let codec = tonic_prost::ProstCodec::<pb::GetConfigRequest, pb::ConfigVersion>::default();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        grpc.client_streaming(tonic::Request::new(never), path.parse().unwrap(), codec),
    )
    .await
    .expect("answered within the timeout and then some")
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    let scrape = parse(&server.get("/metrics").await.text().await.unwrap());
    let labels = [("method", path), ("code", "DEADLINE_EXCEEDED")];
    assert!(
        value(&scrape, "summit_grpc_requests_total", &labels).is_some_and(|n| n >= 1.0),
        "{scrape:?}"
    );
}
