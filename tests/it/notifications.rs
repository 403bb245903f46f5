//! Notifications that survive faults: the server killed with SIGKILL while deliveries are
//! pending delivers every event after a restart, in order per config; two PostgreSQL replicas
//! deliver each event once; and change events reach a real Kafka-protocol broker (Tansu).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use summit_config::app::App;
use summit_config::settings::Settings;

use crate::common::binary::start_binary_with;
use crate::common::kafka::{consume, tansu};
use crate::common::receiver::{Receiver, signed_with};
use crate::common::{TestServer, body_of, meta};

const WAIT: Duration = Duration::from_secs(30);

/// The versions of each config in order of first receipt (a repeat is at-least-once).
fn first_receipts(events: &[Value]) -> BTreeMap<String, Vec<u64>> {
    let mut seen = BTreeSet::new();
    let mut by_config: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in events {
        let revision = event["revision"].as_u64().unwrap();
        if seen.insert(revision) {
            let config = event["configId"].as_str().unwrap().to_owned();
            by_config
                .entry(config)
                .or_default()
                .push(event["version"].as_u64().unwrap());
        }
    }
    by_config
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    body_of(client.post(url).json(&body).send().await.expect("request")).await
}

async fn put(client: &reqwest::Client, base: &str, id: &str, value: i64) -> (u16, Value) {
    let body = json!({"config": {"value": value}, "metadata": meta("alice", "tune")});
    body_of(
        client
            .put(format!("{base}/api/v1/configs/{id}"))
            .json(&body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn pending_deliveries_outlive_a_sigkill_and_arrive_in_order_per_config() {
    let receiver = Receiver::start().await;
    receiver.set_failing(true);
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("summit.db");
    let env = [
        ("SUMMIT_NO_AUTH", "true"),
        ("SUMMIT_WEBHOOK_ALLOW", "127.0.0.1"),
        (
            "SUMMIT_WEBHOOK_RETRY_SCHEDULE",
            "100ms,200ms,300ms,300ms,300ms,300ms,300ms,300ms",
        ),
    ];
    let mut running = start_binary_with(&database, &env).await;
    let client = reqwest::Client::new();
    let (status, created) = post(
        &client,
        format!("{}/api/v1/webhooks", running.base),
        json!({"url": receiver.url, "events": ["config.updated"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    for value in 1..=6 {
        for id in ["alpha", "beta"] {
            let (status, body) = put(&client, &running.base, id, value).await;
            assert_eq!(status, 201, "{body}");
        }
    }
    // A write refused (and so rolled back) notifies nobody.
    let body = json!({"config": {"value": 0}, "expectedVersion": 1, "metadata": meta("a", "b")});
    let refused = client
        .put(format!("{}/api/v1/configs/alpha", running.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 409);
    // Attempts have begun (and failed): deliveries are pending when the process dies.
    let deadline = std::time::Instant::now() + WAIT;
    while receiver.refused() == 0 {
        assert!(std::time::Instant::now() < deadline, "no attempt was made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.child.start_kill().expect("SIGKILL");
    running.child.wait().await.expect("killed");

    receiver.set_failing(false);
    let restarted = start_binary_with(&database, &env).await;
    let received = receiver.wait_for(12, WAIT).await;
    let events: Vec<Value> = received.iter().map(|d| d.event.clone()).collect();
    let order = first_receipts(&events);
    assert_eq!(order["alpha"], vec![1, 2, 3, 4, 5, 6], "{order:?}");
    assert_eq!(order["beta"], vec![1, 2, 3, 4, 5, 6], "{order:?}");
    assert!(received.iter().all(|d| signed_with(&secret, d)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all: BTreeSet<u64> = receiver
        .received()
        .iter()
        .map(|d| d.event["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(all.len(), 12, "the refused write sent nothing");
    restarted.terminate().await;
}

/// An in-process server on a PostgreSQL database.
async fn replica(
    database_url: &str,
    tune: impl FnOnce(&mut Settings),
) -> (String, tokio_util::sync::CancellationToken) {
    let mut settings = Settings::for_tests(database_url.to_owned());
    tune(&mut settings);
    let app = App::build(settings).await.expect("app builds");
    let base = format!("http://{}", app.http_addr());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    (base, shutdown)
}

#[tokio::test]
async fn two_postgres_replicas_deliver_each_event_once() {
    let Some(url) = crate::common::postgres::test_database_url().await else {
        return;
    };
    let receiver = Receiver::start().await;
    let tune = |s: &mut Settings| s.webhook_allow = "127.0.0.1".into();
    let (a, stop_a) = replica(&url, tune).await;
    let (b, stop_b) = replica(&url, tune).await;
    let client = reqwest::Client::new();
    let (status, created) = post(
        &client,
        format!("{a}/api/v1/webhooks"),
        json!({"url": receiver.url, "events": ["config."]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    for value in 1..=10 {
        for (base, id) in [(&a, "from-a"), (&b, "from-b")] {
            let (status, body) = put(&client, base, id, value).await;
            assert_eq!(status, 201, "{body}");
        }
    }
    receiver.wait_for(20, WAIT).await;
    // Time for any second delivery to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    let revisions: Vec<u64> = received
        .iter()
        .map(|d| d.event["revision"].as_u64().unwrap())
        .collect();
    let distinct: BTreeSet<u64> = revisions.iter().copied().collect();
    assert_eq!(
        revisions.len(),
        distinct.len(),
        "each event once: {revisions:?}"
    );
    assert_eq!(distinct.len(), 20);
    let events: Vec<Value> = received.iter().map(|d| d.event.clone()).collect();
    let order = first_receipts(&events);
    assert_eq!(order["from-a"], (1..=10).collect::<Vec<_>>());
    assert_eq!(order["from-b"], (1..=10).collect::<Vec<_>>());
    stop_a.cancel();
    stop_b.cancel();
}

#[tokio::test]
async fn every_change_event_reaches_kafka_keyed_by_subject_across_a_restart() {
    let Some(broker) = tansu().await else {
        return;
    };
    let brokers = broker.kafka_broker();
    let tune = {
        let brokers = brokers.clone();
        move |s: &mut Settings| s.kafka_brokers = brokers
    };
    let server = TestServer::spawn_with(tune.clone()).await;
    server
        .put_config(
            "inventory",
            json!({"config": {"v": 1}, "metadata": meta("a", "b")}),
        )
        .await;
    server
        .put_config(
            "inventory",
            json!({"config": {"v": 2}, "metadata": meta("a", "b")}),
        )
        .await;
    server
        .put_flag(
            "new-checkout",
            json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off"}),
        )
        .await;
    let records = consume(&brokers, "config-updates", 3, WAIT).await;
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(records[0].0, "inventory");
    assert_eq!(records[0].1["version"], 1);
    assert_eq!(records[1].1["previousVersion"], 1);
    assert_eq!(records[2].0, "new-checkout");
    assert_eq!(records[2].1["kind"], "flag.updated");

    // After a restart the sink goes on from where it was: nothing lost, nothing resent here.
    let server = server.restart_with(tune).await;
    server
        .put_config(
            "inventory",
            json!({"config": {"v": 3}, "metadata": meta("a", "b")}),
        )
        .await;
    let records = consume(&brokers, "config-updates", 4, WAIT).await;
    let revisions: Vec<u64> = records
        .iter()
        .map(|(_, v)| v["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions.len(), 4, "{revisions:?}");
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    assert_eq!(records[3].1["version"], 3);
}

/// A Kafka broker that takes connections and never answers (a socket held open here: the
/// fault itself, not a stand-in for Kafka) holds back Kafka only: webhooks are delivered on
/// time while each produce call waits out its 20 s limit.
#[tokio::test]
async fn a_kafka_broker_that_never_answers_holds_back_no_webhook_delivery() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = silent.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let receiver = Receiver::start().await;
    let server = TestServer::spawn_with(move |s: &mut Settings| {
        s.kafka_brokers = broker;
        s.webhook_allow = "127.0.0.1".into();
    })
    .await;
    let client = reqwest::Client::new();
    // A change for Kafka to produce: its first call now waits on the silent broker.
    let (status, _) = put(&client, &server.base, "warm-up", 1).await;
    assert_eq!(status, 201);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (status, created) = post(
        &client,
        format!("{}/api/v1/webhooks", server.base),
        json!({"url": receiver.url, "events": ["config.*"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    for value in 1..=3 {
        let (status, _) = put(&client, &server.base, "inventory", value).await;
        assert!(status == 200 || status == 201, "{status}");
    }
    // Well inside one produce call's 20 s limit.
    let received = receiver.wait_for(3, Duration::from_secs(10)).await;
    let versions: Vec<u64> = received
        .iter()
        .map(|r| r.event["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    holder.abort();
}
