//! Webhooks end to end against a real HTTP receiver started by the test: signed deliveries in
//! order per config with the richer event, retries until the receiver recovers, dead letters
//! and redelivery, secret rotation, disabling, refusals of bad and internal targets, and who
//! may manage webhooks.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::authorization::{ADMIN, call, secured, token};
use crate::common::receiver::{Receiver, signed_with};
use crate::common::{TestServer, meta};
use summit_config::settings::Settings;

const WAIT: Duration = Duration::from_secs(20);

/// A server that may deliver to loopback receivers, retrying quickly.
async fn server(schedule: &str) -> TestServer {
    let schedule = schedule.to_owned();
    TestServer::spawn_with(move |s| webhook_settings(s, &schedule)).await
}

/// Webhooks to the loopback receiver, retried on `schedule`.
fn webhook_settings(settings: &mut Settings, schedule: &str) {
    settings.webhook_allow = "127.0.0.1".into();
    settings.webhook_retry_schedule = schedule.to_owned();
    settings.webhook_timeout_ms = 2000;
}

/// Creates a webhook; returns its id and secret.
async fn subscribe(server: &TestServer, body: Value) -> (String, String) {
    let (status, created) = server.post_json("/api/v1/webhooks", &body).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (created["id"].as_str().unwrap().to_owned(), secret)
}

async fn put(server: &TestServer, id: &str, value: i64) -> u64 {
    server
        .put_config(
            id,
            json!({"config": {"value": value}, "overrides": {"production": {"replicas": value}},
                   "metadata": meta("alice", "tune")}),
        )
        .await
}

/// Versions received per config, in order of receipt.
fn versions_by_config(
    received: &[crate::common::receiver::Received],
) -> BTreeMap<String, Vec<u64>> {
    let mut by_config: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for delivery in received {
        let config = delivery.event["configId"].as_str().unwrap().to_owned();
        by_config
            .entry(config)
            .or_default()
            .push(delivery.event["version"].as_u64().unwrap());
    }
    by_config
}

async fn deliveries(server: &TestServer, webhook: &str) -> Vec<Value> {
    let (status, page) = server
        .get_json(&format!("/api/v1/webhooks/{webhook}/deliveries?limit=100"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn deliveries_are_signed_in_order_per_config_and_carry_what_changed() {
    let receiver = Receiver::start().await;
    let server = server("200ms").await;
    let (webhook, secret) = subscribe(
        &server,
        json!({"url": receiver.url, "events": ["config.*"], "description": "ops channel",
               "filter": {"configPrefix": "payments."}}),
    )
    .await;
    for value in 1..=5 {
        put(&server, "payments.api", value).await;
        put(&server, "payments.db", value * 10).await;
        put(&server, "search.api", value).await; // outside the prefix
    }
    let received = receiver.wait_for(10, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received_now = receiver.received();
    assert_eq!(
        received_now.len(),
        10,
        "nothing outside the filter, nothing twice"
    );
    for delivery in &received {
        assert!(
            signed_with(&secret, delivery),
            "signature of {}",
            delivery.id
        );
        assert!(!signed_with(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            delivery
        ));
        let revision = delivery.event["revision"].as_u64().unwrap();
        assert_eq!(delivery.id, format!("evt_{revision}"));
        assert!((delivery.timestamp - chrono::Utc::now().timestamp()).abs() < 60);
    }
    let by_config = versions_by_config(&received);
    assert_eq!(by_config["payments.api"], vec![1, 2, 3, 4, 5]);
    assert_eq!(by_config["payments.db"], vec![1, 2, 3, 4, 5]);

    // The event says what changed, from what.
    let second = received
        .iter()
        .find(|d| d.event["configId"] == "payments.api" && d.event["version"] == 2)
        .unwrap();
    let event = &second.event;
    assert_eq!(event["kind"], "config.updated");
    assert_eq!(event["previousVersion"], 1);
    assert_eq!(event["environments"], json!(["*"]));
    let changes = event["changes"].as_array().expect("an RFC 6902 patch");
    assert!(changes.contains(&json!({"op": "replace", "path": "/config/value", "value": 2})));
    assert!(
        changes.contains(
            &json!({"op": "replace", "path": "/overrides/production/replicas", "value": 2})
        )
    );
    let first = received
        .iter()
        .find(|d| d.event["configId"] == "payments.api" && d.event["version"] == 1)
        .unwrap();
    assert!(
        first.event.get("previousVersion").is_none(),
        "{}",
        first.event
    );

    // The audit keeps the same patch.
    let (_, audit) = server.get_json("/api/v1/configs/payments.api/audit").await;
    let record = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == 2)
        .unwrap()
        .clone();
    assert_eq!(record["changes"], event["changes"]);
    assert_eq!(record["previousVersion"], 1);

    // The delivery log (outcomes are recorded in batches after the answers).
    let log = wait_until(|| async {
        let log = deliveries(&server, &webhook).await;
        log.iter()
            .all(|entry| entry["status"] == "delivered")
            .then_some(log)
    })
    .await;
    assert_eq!(log.len(), 10);
    for entry in &log {
        assert_eq!(entry["status"], "delivered", "{entry}");
        assert_eq!(entry["attempts"], 1);
        assert_eq!(entry["lastStatus"], 204);
        assert!(
            entry["latencyMs"].is_u64() && entry["deliveredAt"].is_string(),
            "{entry}"
        );
    }
    // The webhook as listed: no secret.
    let (_, listed) = server.get_json("/api/v1/webhooks").await;
    let text = listed.to_string();
    assert!(!text.contains(&secret) && !text.contains("sealed") && !text.contains("secrets"));
    assert_eq!(listed["items"][0]["description"], "ops channel");
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_recovers_without_breaking_order() {
    let receiver = Receiver::start().await;
    let server = server("100ms,200ms,300ms,300ms").await;
    let (webhook, secret) = subscribe(
        &server,
        json!({"url": receiver.url, "events": ["config.updated"]}),
    )
    .await;
    receiver.fail_next(3);
    for value in 1..=4 {
        put(&server, "orders", value).await;
    }
    let received = receiver.wait_for(4, WAIT).await;
    assert_eq!(receiver.refused(), 3, "three failures were retried");
    assert_eq!(versions_by_config(&received)["orders"], vec![1, 2, 3, 4]);
    assert!(received.iter().all(|d| signed_with(&secret, d)));
    // Outcomes are recorded in batches after the answer: the log may lag the receiver.
    let first = wait_until(|| async {
        deliveries(&server, &webhook)
            .await
            .into_iter()
            .find(|d| d["revision"] == received[0].event["revision"])
            .filter(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(first["attempts"], 4, "{first}");
    let (_, hook) = server
        .get_json(&format!("/api/v1/webhooks/{webhook}"))
        .await;
    assert!(
        hook.get("failingSince").is_none(),
        "a success clears the failure: {hook}"
    );
}

#[tokio::test]
async fn a_delivery_failing_every_attempt_is_dead_lettered_and_can_be_redelivered() {
    let receiver = Receiver::start().await;
    let server = server("100ms").await;
    let (webhook, secret) =
        subscribe(&server, json!({"url": receiver.url, "events": ["config."]})).await;
    receiver.set_failing(true);
    put(&server, "billing", 1).await;
    let dead = wait_until(|| async {
        let log = deliveries(&server, &webhook).await;
        (log.len() == 1 && log[0]["status"] == "failed").then(|| log[0].clone())
    })
    .await;
    assert_eq!(dead["attempts"], 2, "{dead}");
    assert_eq!(dead["lastError"], "answered 503");
    let (_, hook) = server
        .get_json(&format!("/api/v1/webhooks/{webhook}"))
        .await;
    assert!(hook["failingSince"].is_string(), "{hook}");

    receiver.set_failing(false);
    let id = dead["id"].as_u64().unwrap();
    let (status, again) = server
        .post_json(
            &format!("/api/v1/webhooks/{webhook}/deliveries/{id}/redeliver"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{again}");
    let received = receiver.wait_for(1, WAIT).await;
    assert!(signed_with(&secret, &received[0]));
    assert_eq!(received[0].event["configId"], "billing");
    let (status, _) = server
        .post_json(
            &format!("/api/v1/webhooks/{webhook}/deliveries/999/redeliver"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_webhook_failing_too_long_is_disabled_and_says_so() {
    let receiver = Receiver::start().await;
    let schedule = "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms".to_owned();
    let server = TestServer::spawn_with(move |s| {
        s.webhook_allow = "127.0.0.1".into();
        s.webhook_retry_schedule = schedule;
        s.webhook_disable_after_secs = 0;
    })
    .await;
    let (webhook, _) = subscribe(&server, json!({"url": receiver.url, "events": ["*"]})).await;
    receiver.set_failing(true);
    put(&server, "billing", 1).await;
    let hook = wait_until(|| async {
        let (_, hook) = server
            .get_json(&format!("/api/v1/webhooks/{webhook}"))
            .await;
        (hook["enabled"] == false).then_some(hook)
    })
    .await;
    assert!(
        hook["disabledReason"]
            .as_str()
            .unwrap()
            .contains("failed since"),
        "{hook}"
    );
    // Enabling it again clears the failure; new events flow.
    receiver.set_failing(false);
    let (status, hook) = server
        .client
        .patch(server.url(&format!("/api/v1/webhooks/{webhook}")))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200, "{:?}", hook.text().await);
    put(&server, "billing", 2).await;
    // Version 1 may still be pending (its retries outlast the disabling under load): it goes
    // first, in order, then version 2.
    let version_2 = wait_until(|| async {
        receiver
            .received()
            .into_iter()
            .find(|d| d.event["version"] == 2)
    })
    .await;
    assert_eq!(version_2.event["configId"], "billing");
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_during_the_overlap() {
    let receiver = Receiver::start().await;
    let server = server("100ms").await;
    let (webhook, old) = subscribe(
        &server,
        json!({"url": receiver.url, "events": ["config.updated"]}),
    )
    .await;
    put(&server, "rotating", 1).await;
    let first = receiver.wait_for(1, WAIT).await;
    assert_eq!(first[0].signature.split(' ').count(), 1);

    let (status, rotated) = server
        .post_json(
            &format!("/api/v1/webhooks/{webhook}/rotate-secret"),
            &json!({"overlapSecs": 3600}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previousSecretExpiresAt"].is_string(), "{rotated}");
    put(&server, "rotating", 2).await;
    let received = receiver.wait_for(2, WAIT).await;
    let second = &received[1];
    assert_eq!(
        second.signature.split(' ').count(),
        2,
        "{}",
        second.signature
    );
    assert!(signed_with(&new, second) && signed_with(&old, second));

    // A second rotation within the overlap keeps the first old secret signing as promised.
    let (_, rotated) = server
        .post_json(
            &format!("/api/v1/webhooks/{webhook}/rotate-secret"),
            &json!({"overlapSecs": 3600}),
        )
        .await;
    let newer = rotated["secret"].as_str().unwrap().to_owned();
    put(&server, "rotating", 3).await;
    let received = receiver.wait_for(3, WAIT).await;
    let during = &received[2];
    assert_eq!(
        during.signature.split(' ').count(),
        3,
        "{}",
        during.signature
    );
    assert!(signed_with(&newer, during) && signed_with(&new, during) && signed_with(&old, during));

    // Without an overlap the old secrets stop at once.
    let (_, rotated) = server
        .post_json(
            &format!("/api/v1/webhooks/{webhook}/rotate-secret"),
            &json!({"overlapSecs": 0}),
        )
        .await;
    let newest = rotated["secret"].as_str().unwrap().to_owned();
    put(&server, "rotating", 4).await;
    let received = receiver.wait_for(4, WAIT).await;
    let fourth = &received[3];
    assert!(signed_with(&newest, fourth));
    assert!(
        !signed_with(&newer, fourth) && !signed_with(&new, fourth) && !signed_with(&old, fourth)
    );
}

#[tokio::test]
async fn bad_and_internal_targets_are_refused_and_nothing_is_created() {
    // No allow-list: loopback, private and link-local targets are refused.
    let server = TestServer::spawn().await;
    let cases = [
        (
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
            "/url",
        ),
        (
            json!({"url": "http://localhost:9/hook", "events": ["*"]}),
            "/url",
        ),
        (json!({"url": "http://[::1]/hook", "events": ["*"]}), "/url"),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data", "events": ["*"]}),
            "/url",
        ),
        (
            json!({"url": "http://10.0.0.8/hook", "events": ["*"]}),
            "/url",
        ),
        (
            json!({"url": "http://192.168.1.1/hook", "events": ["*"]}),
            "/url",
        ),
        (
            json!({"url": "ftp://example.com/hook", "events": ["*"]}),
            "/url",
        ),
        (
            json!({"url": "http://user:pw@93.184.216.34/", "events": ["*"]}),
            "/url",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": []}),
            "/events",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": ["Config"]}),
            "/events/0",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": ["*"], "filter": {"environments": ["Prod!"]}}),
            "/filter/environments/0",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": ["*"], "secret": "mine"}),
            "secret",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = server.post_json("/api/v1/webhooks", &body).await;
        assert_eq!(status, 400, "{body}: {problem}");
        let text = problem.to_string();
        assert!(text.contains(field), "{body}: {problem} names {field}");
    }
    let (_, listed) = server.get_json("/api/v1/webhooks").await;
    assert_eq!(listed["items"], json!([]));
    // A public address is fine.
    let (status, _) = server
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": "https://93.184.216.34/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn only_callers_with_manage_webhooks_may_touch_webhooks() {
    let server = secured("").await;
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let writer = token(&server, "writer", &["config-admin"], json!({})).await;
    let body = json!({"url": "https://93.184.216.34/hook", "events": ["*"]});
    for who in [&reader, &writer] {
        let (status, problem) = call(
            &server,
            who,
            Method::POST,
            "/api/v1/webhooks",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 403, "{problem}");
        assert!(problem.to_string().contains("manage-webhooks"), "{problem}");
        let (status, _) = call(&server, who, Method::GET, "/api/v1/webhooks", None).await;
        assert_eq!(status, 403);
    }
    // An admin limited to some configs or environments would hear of every change: refused.
    let scoped = token(
        &server,
        "scoped",
        &["admin"],
        json!({"configPrefixes": ["pay."]}),
    )
    .await;
    let local = token(
        &server,
        "local",
        &["admin"],
        json!({"environments": ["staging"]}),
    )
    .await;
    for who in [&scoped, &local] {
        let (status, problem) = call(
            &server,
            who,
            Method::POST,
            "/api/v1/webhooks",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 403, "{problem}");
    }
    let (status, _) = call(&server, "", Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(status, 401);
    let (status, created) =
        call(&server, ADMIN, Method::POST, "/api/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, _) = call(
        &server,
        &reader,
        Method::DELETE,
        &format!("/api/v1/webhooks/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &server,
        ADMIN,
        Method::DELETE,
        &format!("/api/v1/webhooks/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    // The audit records who did it, and never the secret.
    let (_, audit) = call(&server, ADMIN, Method::GET, "/api/v1/audit", None).await;
    let text = audit.to_string();
    assert!(
        text.contains("webhook.create") && text.contains("webhook.delete"),
        "{text}"
    );
    assert!(!text.contains(created["secret"].as_str().unwrap()));
}

/// Polls `probe` until it answers `Some` (panics after `WAIT`).
pub(crate) async fn wait_until<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_and_audit_name_the_registered_instances_a_change_reaches() {
    let receiver = Receiver::start().await;
    let server = server("100ms").await;
    subscribe(
        &server,
        json!({"url": receiver.url, "events": ["config.updated"]}),
    )
    .await;
    put(&server, "checkout", 1).await;
    let (_, head) = server.get_json("/api/v1/configs/checkout").await;
    let checksum = head["checksum"].as_str().unwrap().to_owned();
    for (id, environment) in [
        ("p-1", "production"),
        ("p-2", "production"),
        ("s-1", "staging"),
    ] {
        let body = json!({"serviceName": "shop", "serviceUrl": "http://10.0.0.1:8080",
                          "instanceId": id, "environment": environment});
        let (status, registered) = server.post_json("/api/v1/registry/register", &body).await;
        assert_eq!(status, 201, "{registered}");
        let path = format!("/api/v1/registry/services/shop/instances/{id}/heartbeat");
        let (status, beat) = server
            .put_json(&path, &json!({"applied": {"checkout": checksum}}))
            .await;
        assert_eq!(status, 200, "{beat}");
    }
    // An unrelated instance does not count.
    let other = json!({"serviceName": "shop", "serviceUrl": "http://10.0.0.2:8080",
                       "instanceId": "p-9", "environment": "production"});
    server.post_json("/api/v1/registry/register", &other).await;
    wait_until(|| async {
        let (_, service) = server.get_json("/api/v1/registry/services/shop").await;
        let text = service.to_string();
        (text.matches(&checksum).count() >= 3).then_some(())
    })
    .await;

    // Only production's override changes: the production instances applying it are reached.
    let body = json!({"config": {"value": 1}, "overrides": {"production": {"replicas": 9}},
                      "metadata": meta("alice", "scale production")});
    let (status, written) = server.put_json("/api/v1/configs/checkout", &body).await;
    assert_eq!(status, 201, "{written}");
    let received = receiver.wait_for(2, WAIT).await;
    let event = &received[1].event;
    assert_eq!(event["environments"], json!(["production"]));
    assert_eq!(
        event["affectedInstances"],
        json!({"count": 2, "instances": ["shop/p-1", "shop/p-2"]})
    );
    let (_, audit) = server.get_json("/api/v1/configs/checkout/audit").await;
    assert_eq!(
        audit["items"][0]["affectedInstances"],
        event["affectedInstances"]
    );
    assert_eq!(audit["items"][0]["previousVersion"], 1);
}

#[tokio::test]
async fn a_webhook_gets_only_the_changes_after_it_although_none_existed_before() {
    let receiver = Receiver::start().await;
    let server = server("200ms").await;
    // While no webhook exists the dispatcher reads no change: it moves its cursor past them
    // at its next look at the webhooks (once a second).
    for value in 1..=30 {
        put(&server, "early.api", value).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (first, _) = subscribe(
        &server,
        json!({"url": receiver.url, "events": ["config.*"]}),
    )
    .await;
    put(&server, "early.api", 31).await;
    put(&server, "late.api", 1).await;
    receiver.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let by_config = versions_by_config(&receiver.received());
    assert_eq!(by_config["early.api"], vec![31], "{by_config:?}");
    assert_eq!(by_config["late.api"], vec![1], "{by_config:?}");

    // None again: what changes now reaches no one, and a webhook created right after the
    // changes (before the dispatcher looked again) still gets only what follows it.
    let (status, body) = server
        .delete_json(&format!("/api/v1/webhooks/{first}"), &json!({}))
        .await;
    assert_eq!(status, 204, "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for value in 2..=10 {
        put(&server, "late.api", value).await;
    }
    let second_receiver = Receiver::start().await;
    subscribe(
        &server,
        json!({"url": second_receiver.url, "events": ["config.*"]}),
    )
    .await;
    put(&server, "late.api", 11).await;
    second_receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let by_config = versions_by_config(&second_receiver.received());
    assert_eq!(by_config.len(), 1, "{by_config:?}");
    assert_eq!(by_config["late.api"], vec![11], "{by_config:?}");
    assert_eq!(
        receiver.received().len(),
        2,
        "the deleted webhook got nothing more"
    );
}

#[tokio::test]
async fn the_secret_keys_rewrap_seals_webhook_secrets_again_so_the_old_key_can_go() {
    let receiver = Receiver::start().await;
    let server = server("100ms").await;
    let (webhook, first) = subscribe(
        &server,
        json!({"url": receiver.url, "events": ["config.updated"]}),
    )
    .await;
    let (status, rotated) = server
        .post_json(
            &format!("/api/v1/webhooks/{webhook}/rotate-secret"),
            &json!({"overlapSecs": 3600}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["secret"].as_str().unwrap().to_owned();

    // The operator moves the key aside and starts with a new one, the old one still readable.
    let data = server.db_path.parent().unwrap().to_owned();
    let (old, new) = (data.join("old-key"), data.join("new-key"));
    let mut server = server;
    server.stop().await;
    std::fs::rename(data.join("secret-key"), &old).unwrap();
    let (new_file, old_file) = (new.clone(), old.clone());
    let server = server
        .restart_with(move |s| {
            webhook_settings(s, "100ms");
            s.secret_key_file = Some(new_file);
            s.secret_previous_key_files = vec![old_file];
        })
        .await;
    let (status, report) = server
        .post_json("/api/v1/secret-keys/rewrap", &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            &report["webhookSecretsRewrapped"],
            &report["webhookSecretsUnchanged"]
        ),
        (&json!(2), &json!(0)),
        "both the current secret and the one in its overlap: {report}"
    );
    let (_, again) = server
        .post_json("/api/v1/secret-keys/rewrap", &json!({}))
        .await;
    assert_eq!(
        (
            &again["webhookSecretsRewrapped"],
            &again["webhookSecretsUnchanged"]
        ),
        (&json!(0), &json!(2)),
        "{again}"
    );

    // Without the old key file both secrets still sign, unchanged.
    let server = server
        .restart_with(move |s| {
            webhook_settings(s, "100ms");
            s.secret_key_file = Some(new);
        })
        .await;
    put(&server, "after-rewrap", 1).await;
    let received = receiver.wait_for(1, WAIT).await;
    assert!(
        signed_with(&second, &received[0]) && signed_with(&first, &received[0]),
        "{}",
        received[0].signature
    );
    let (_, audit) = server.get_json("/api/v1/audit?limit=100").await;
    let rewraps: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "webhook.rewrap")
        .collect();
    assert_eq!(rewraps.len(), 1, "{audit}");
    assert!(!audit.to_string().contains(&second[6..]), "{audit}");
}

/// A webhook re-pointed while a group of its deliveries is being sent: the rest of the group
/// goes to the new URL, as the webhook is now, and in order.
#[tokio::test]
async fn re_pointing_a_webhook_moves_the_rest_of_a_group_being_sent() {
    let old = Receiver::start().await;
    let new = Receiver::start().await;
    old.set_delay(Duration::from_millis(400));
    let server = server("200ms").await;
    let (webhook, secret) = subscribe(
        &server,
        json!({"url": old.url, "events": ["config.updated"]}),
    )
    .await;
    for value in 1..=6 {
        put(&server, "orders", value).await;
    }
    old.wait_for(1, WAIT).await;
    let response = server
        .client
        .patch(server.url(&format!("/api/v1/webhooks/{webhook}")))
        .json(&json!({"url": new.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let to_old = old.received().len();
    let moved = new.wait_for(1, WAIT).await;
    let total = wait_until(|| async {
        let (old, new) = (old.received(), new.received());
        (old.len() + new.len() >= 6).then(|| [old, new].concat())
    })
    .await;
    let to_old = old.received().len().max(to_old);
    assert!(to_old <= 3, "{to_old} deliveries still went to the old URL");
    assert_eq!(versions_by_config(&total)["orders"], vec![1, 2, 3, 4, 5, 6]);
    assert!(moved.iter().all(|d| signed_with(&secret, d)));
}
