//! gRPC health follows readiness (NOT_SERVING while PostgreSQL is down and from the start of a
//! shutdown, SERVING again on recovery, for the overall service and each named one), and
//! reflection v1alpha serves a client that speaks nothing else (Python's grpcio-reflection).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use summit_config::app::App;
use summit_config::settings::Settings;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::common::postgres::PgCluster;
use crate::common::{TestServer, meta};

const NAMED: &str = "summit.config.v1.ConfigService";

async fn status(health: &mut HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
    let request = HealthCheckRequest {
        service: service.into(),
    };
    match tokio::time::timeout(Duration::from_secs(5), health.check(request)).await {
        Ok(Ok(response)) => response.into_inner().status,
        other => panic!("Health.Check({service:?}): {other:?}"),
    }
}

/// Polls until both the overall and a named service report `want` (panics after `within`).
async fn until(
    health: &mut HealthClient<tonic::transport::Channel>,
    want: ServingStatus,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let overall = status(health, "").await;
        let named = status(health, NAMED).await;
        if overall == want as i32 && named == want as i32 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health is {overall}/{named}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn health_follows_the_database_and_shutdown() {
    let Some(cluster) = PgCluster::dedicated().await else {
        return;
    };
    let url = cluster.new_database().await;
    let app = App::build(Settings::for_tests(url))
        .await
        .expect("app builds");
    let grpc = app.grpc_addr();
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connects");
    let mut health = HealthClient::new(channel);
    until(&mut health, ServingStatus::Serving, Duration::from_secs(5)).await;

    cluster.stop().await;
    until(
        &mut health,
        ServingStatus::NotServing,
        Duration::from_secs(15),
    )
    .await;
    cluster.start().await;
    until(&mut health, ServingStatus::Serving, Duration::from_secs(30)).await;

    // A watcher of the overall service hears NOT_SERVING when the shutdown starts.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Health.Watch")
        .into_inner();
    let first: HealthCheckResponse = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    shutdown.cancel();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;
    match next {
        Ok(Ok(Some(message))) => assert_eq!(message.status, ServingStatus::NotServing as i32),
        // The stream may end with the server instead; it must not stay SERVING.
        Ok(Ok(None)) | Ok(Err(_)) => {}
        Err(_) => panic!("health still SERVING 5 s into the shutdown"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
}

#[tokio::test]
async fn a_client_speaking_only_reflection_v1alpha_discovers_and_calls_the_services() {
    let python = crate::python_client::python();
    let probe = std::process::Command::new(&python)
        .args([
            "-c",
            "import grpc, grpc_reflection.v1alpha.proto_reflection_descriptor_database",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        let why = format!("{python} lacks grpcio-reflection (.ci/run installs it)");
        assert!(!crate::common::ci_is_set(), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    }
    let server = TestServer::spawn().await;
    let version = server
        .put_config(
            "reflected",
            json!({"config": {"a": 1}, "metadata": meta("a", "b")}),
        )
        .await;
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg("tests/python/reflection_client.py")
            .arg(server.grpc_addr.to_string())
            .arg("reflected")
            .output(),
    )
    .await
    .expect("the client finishes")
    .expect("the client runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    let services: Vec<&str> = found["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for expected in [
        NAMED,
        "summit.config.v1.FlagService",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(&expected), "{services:?}");
    }
    assert_eq!(found["configId"], "reflected");
    assert_eq!(found["version"], version);
}
