//! The service registry end to end: register, heartbeat, discover and balanced URLs over HTTP
//! against the real server; real HTTP health endpoints (small servers started here, one
//! answering 500); TTL expiry and re-registration after 404; the protection threshold; events
//! on the watch; applied state joining drift; scope refusals; two replicas on PostgreSQL.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use reqwest::Method;
use serde_json::{Value, json};

use crate::authorization::{ADMIN, call, secured, token};
use crate::common::{TestServer, meta};
use crate::watch_sse::watch;
use crate::webhooks::wait_until;

const DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// A health endpoint on a free loopback port answering `status` at `/health`; stops with the
/// test's runtime.
async fn health_server(status: StatusCode) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/health", get(move || async move { (status, "checked") }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn register(server: &TestServer, body: Value) -> Value {
    let (status, instance) = server.post_json("/api/v1/registry/register", &body).await;
    assert_eq!(status, 201, "{instance}");
    instance
}

async fn heartbeat(server: &TestServer, service: &str, id: &str, body: Value) -> (u16, Value) {
    server
        .put_json(
            &format!("/api/v1/registry/services/{service}/instances/{id}/heartbeat"),
            &body,
        )
        .await
}

async fn discover(server: &TestServer, service: &str) -> Value {
    let (status, found) = server
        .get_json(&format!("/api/v1/registry/discover/{service}"))
        .await;
    assert_eq!(status, 200, "{found}");
    found
}

fn ids(discovery: &Value) -> Vec<String> {
    let mut ids: Vec<String> = discovery["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Polls `discover` until its instance ids are `want`.
async fn until_discovered(server: &TestServer, service: &str, want: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let found = discover(server, service).await;
        if ids(&found) == want {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "discovery of {service} never became {want:?}: {found}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn instance(service: &str, id: &str, port: u16) -> Value {
    json!({"serviceName": service, "instanceId": id, "serviceUrl": format!("http://127.0.0.1:{port}")})
}

#[tokio::test]
async fn register_heartbeat_discover_and_weighted_urls() {
    let server = TestServer::spawn().await;
    let mut heavy = instance("payments", "p-1", 9001);
    heavy["weight"] = json!(300);
    heavy["metadata"] = json!({"zone": "a"});
    let created = register(&server, heavy).await;
    assert_eq!(created["status"], "passing");
    assert_eq!(created["ttlSecs"], 30, "the default TTL");
    assert_eq!(created["deregisterAfterSecs"], 300);
    let mut light = instance("payments", "p-2", 9002);
    light["weight"] = json!(100);
    register(&server, light).await;
    // An id is generated when none is given.
    let mut anonymous = instance("orders", "x", 9003);
    anonymous.as_object_mut().unwrap().remove("instanceId");
    let generated = register(&server, anonymous).await;
    assert_eq!(generated["instanceId"].as_str().unwrap().len(), 36);

    let (status, beat) = heartbeat(&server, "payments", "p-1", json!({})).await;
    assert_eq!(status, 200, "{beat}");
    assert_eq!(beat["healthy"], true);
    let found = discover(&server, "payments").await;
    assert_eq!(ids(&found), ["p-1", "p-2"]);
    assert_eq!(found["protectionActive"], false);
    assert_eq!(found["instances"][0]["metadata"]["zone"], "a");

    let (status, listed) = server.get_json("/api/v1/registry/services").await;
    assert_eq!(status, 200);
    let services = listed["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{listed}");
    assert_eq!(services[1]["serviceName"], "payments");
    assert_eq!(services[1]["instances"], 2);
    assert_eq!(services[1]["passing"], 2);

    // Weights 3:1 give 75 % ± 5 % over 2,000 picks.
    let mut picks: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..2000 {
        let (status, picked) = server
            .get_json("/api/v1/registry/services/payments/url")
            .await;
        assert_eq!(status, 200, "{picked}");
        *picks
            .entry(picked["url"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let heavy_share = f64::from(picks["http://127.0.0.1:9001"]) / 2000.0;
    assert!(
        (0.70..=0.80).contains(&heavy_share),
        "weight 300 of 400 took {heavy_share}: {picks:?}"
    );

    // Re-registering an id updates it.
    let mut moved = instance("payments", "p-2", 9012);
    moved["weight"] = json!(100);
    let updated = register(&server, moved).await;
    assert!(updated["version"].as_u64().unwrap() > 1);
    let (_, detail) = server.get_json("/api/v1/registry/services/payments").await;
    assert_eq!(
        detail["instances"][1]["serviceUrl"],
        "http://127.0.0.1:9012"
    );
    assert!(detail["instances"][0]["lastHeartbeat"].is_string());

    // Deregistered: gone from discovery; a second deregistration is 404.
    let leave = json!({"serviceName": "payments", "instanceId": "p-2"});
    let (status, _) = server
        .post_json("/api/v1/registry/deregister", &leave)
        .await;
    assert_eq!(status, 204);
    assert_eq!(ids(&discover(&server, "payments").await), ["p-1"]);
    let (status, problem) = server
        .post_json("/api/v1/registry/deregister", &leave)
        .await;
    assert_eq!(status, 404, "{problem}");
}

#[tokio::test]
async fn no_healthy_instance_is_503_and_an_unknown_instance_heartbeat_is_404() {
    let server = TestServer::spawn().await;
    let (status, problem) = server
        .get_json("/api/v1/registry/services/nobody/url")
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "unavailable");
    let (status, problem) = heartbeat(&server, "nobody", "i-1", json!({})).await;
    assert_eq!(status, 404, "{problem}");
    // A critical heartbeat takes the instance out of discovery; passing brings it back.
    register(&server, instance("svc", "a", 1)).await;
    let (status, beat) = heartbeat(
        &server,
        "svc",
        "a",
        json!({"status": "critical", "output": "db down"}),
    )
    .await;
    assert_eq!(status, 200, "{beat}");
    assert_eq!(beat["healthy"], false);
    assert_eq!(ids(&discover(&server, "svc").await), Vec::<String>::new());
    let (status, _) = server.get_json("/api/v1/registry/services/svc/url").await;
    assert_eq!(status, 503);
    heartbeat(&server, "svc", "a", json!({"status": "passing"})).await;
    assert_eq!(ids(&discover(&server, "svc").await), ["a"]);
}

#[tokio::test]
async fn bad_registrations_name_the_field_and_change_nothing() {
    let server = TestServer::spawn().await;
    let cases = [
        (
            json!({"serviceName": "Bad Name", "serviceUrl": "http://x"}),
            "/serviceName",
        ),
        (
            json!({"serviceName": "svc", "serviceUrl": "ftp://x"}),
            "/serviceUrl",
        ),
        (
            json!({"serviceName": "svc", "serviceUrl": "http://user:pw@x"}),
            "/serviceUrl",
        ),
        (
            json!({"serviceName": "svc", "serviceUrl": "http://x", "weight": 0}),
            "/weight",
        ),
        (
            json!({"serviceName": "svc", "serviceUrl": "http://x", "weight": 1001}),
            "/weight",
        ),
        (
            json!({"serviceName": "svc", "serviceUrl": "http://x", "ttlSecs": 0}),
            "/ttlSecs",
        ),
        (
            json!({"serviceName": "svc", "serviceUrl": "http://x", "ttlSecs": 60, "deregisterAfterSecs": 30}),
            "/deregisterAfterSecs",
        ),
        (
            json!({"serviceName": "svc", "serviceUrl": "http://x", "instanceId": "/x"}),
            "/instanceId",
        ),
        (
            json!({"serviceName": "svc", "serviceUrl": "http://x", "healthCheckUrl": "nope"}),
            "/healthCheckUrl",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = server.post_json("/api/v1/registry/register", &body).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    let (status, problem) = server
        .post_json(
            "/api/v1/registry/register",
            &json!({"serviceName": "svc", "serviceUrl": "http://x", "colour": 1}),
        )
        .await;
    assert_eq!(status, 400, "unknown fields are refused: {problem}");
    register(&server, instance("svc", "a", 1)).await;
    let (status, problem) = heartbeat(&server, "svc", "a", json!({"status": "sleepy"})).await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) =
        heartbeat(&server, "svc", "a", json!({"applied": {"cfg": "nothex"}})).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "/applied/cfg");
    let (_, listed) = server.get_json("/api/v1/registry/services").await;
    assert_eq!(listed["services"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn an_instance_without_heartbeats_expires_gets_404_registers_again_and_is_removed_later() {
    let server = TestServer::spawn_with(|s| s.registry_expiry_check_ms = 20).await;
    let mut short = instance("svc", "a", 1);
    short["ttlSecs"] = json!(1);
    short["deregisterAfterSecs"] = json!(2);
    register(&server, short.clone()).await;
    register(&server, instance("svc", "b", 2)).await;
    let mut events = watch(&server, "?service=svc", None).await;
    until_discovered(&server, "svc", &["b"]).await;
    let expired = events.next_change().await;
    assert_eq!(expired["kind"], "instance.expired");
    assert_eq!(expired["serviceName"], "svc");
    assert_eq!(expired["instanceId"], "a");
    assert_eq!(expired["actor"], "summit-config");
    // Expired: the heartbeat says register again.
    let (status, problem) = heartbeat(&server, "svc", "a", json!({})).await;
    assert_eq!(status, 404, "{problem}");
    register(&server, short).await;
    assert_eq!(events.next_change().await["kind"], "instance.registered");
    until_discovered(&server, "svc", &["a", "b"]).await;
    // Silent again: expired, then removed after deregisterAfterSecs.
    assert_eq!(events.next_change().await["kind"], "instance.expired");
    let removed = events.next_change().await;
    assert_eq!(removed["kind"], "instance.deregistered");
    assert!(
        removed["message"].as_str().unwrap().starts_with("removed"),
        "{removed}"
    );
    let (_, detail) = server.get_json("/api/v1/registry/services/svc").await;
    assert_eq!(detail["instances"].as_array().unwrap().len(), 1, "{detail}");
}

#[tokio::test]
async fn health_checks_call_real_endpoints_on_demand_and_periodically() {
    let good = health_server(StatusCode::OK).await;
    let bad = health_server(StatusCode::INTERNAL_SERVER_ERROR).await;
    let server = TestServer::spawn().await;
    for (id, addr) in [("good", good), ("bad", bad)] {
        let mut body = instance("web", id, addr.port());
        body["healthCheckUrl"] = json!(format!("http://{addr}/health"));
        register(&server, body).await;
    }
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let mut gone = instance("web", "gone", closed_addr.port());
    gone["healthCheckUrl"] = json!(format!("http://{closed_addr}/health"));
    register(&server, gone).await;
    register(&server, instance("web", "unchecked", 4)).await;
    assert_eq!(ids(&discover(&server, "web").await).len(), 4);

    let (status, checked) = server
        .post_json("/api/v1/registry/services/web/health", &json!({}))
        .await;
    assert_eq!(status, 200, "{checked}");
    let results: BTreeMap<String, Value> = checked["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["instanceId"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    assert_eq!(results["good"]["status"], "passing");
    assert_eq!(results["bad"]["status"], "critical");
    assert!(
        results["bad"]["output"].as_str().unwrap().contains("500"),
        "{checked}"
    );
    assert_eq!(results["gone"]["status"], "critical");
    assert_eq!(results["unchecked"]["checked"], false);
    assert_eq!(ids(&discover(&server, "web").await), ["good", "unchecked"]);

    // Periodic checks use the same path: a server that checks every second finds a new
    // failing instance by itself.
    let mut server = server
        .restart_with(|s| {
            s.registry_health_check_interval_secs = 1;
            s.registry_expiry_check_ms = 50;
        })
        .await;
    let mut late = instance("web", "late", bad.port());
    late["healthCheckUrl"] = json!(format!("http://{bad}/health"));
    register(&server, late).await;
    until_discovered(&server, "web", &["good", "unchecked"]).await;
    server.stop().await;
}

#[tokio::test]
async fn the_protection_threshold_returns_every_instance_and_says_so() {
    let server = TestServer::spawn_with(|s| s.registry_protection_threshold = 0.5).await;
    for id in ["a", "b", "c"] {
        register(&server, instance("svc", id, 1)).await;
    }
    heartbeat(&server, "svc", "a", json!({"status": "critical"})).await;
    let found = discover(&server, "svc").await;
    assert_eq!(
        found["protectionActive"], false,
        "2 of 3 healthy is above half"
    );
    assert_eq!(ids(&found), ["b", "c"]);
    heartbeat(&server, "svc", "b", json!({"status": "critical"})).await;
    let found = discover(&server, "svc").await;
    assert_eq!(found["protectionActive"], true, "{found}");
    assert_eq!(found["healthy"], 1);
    assert_eq!(ids(&found), ["a", "b", "c"]);
    // The balanced URL still picks only among the healthy.
    for _ in 0..20 {
        let (_, picked) = server.get_json("/api/v1/registry/services/svc/url").await;
        assert_eq!(picked["instanceId"], "c");
    }
}

#[tokio::test]
async fn maintenance_takes_an_instance_out_until_an_operator_puts_it_back() {
    let server = TestServer::spawn().await;
    register(&server, instance("svc", "a", 1)).await;
    register(&server, instance("svc", "b", 2)).await;
    let path = "/api/v1/registry/services/svc/instances/a/maintenance";
    let (status, marked) = server.put_json(path, &json!({"reason": "disk swap"})).await;
    assert_eq!(status, 200, "{marked}");
    assert_eq!(marked["maintenance"]["reason"], "disk swap");
    assert_eq!(ids(&discover(&server, "svc").await), ["b"]);
    // Heartbeats and re-registration do not undo an operator's mark.
    heartbeat(&server, "svc", "a", json!({"status": "passing"})).await;
    register(&server, instance("svc", "a", 1)).await;
    assert_eq!(ids(&discover(&server, "svc").await), ["b"]);
    let (status, _) = server.delete_json(path, &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&discover(&server, "svc").await), ["a", "b"]);
}

#[tokio::test]
async fn registry_events_reach_watchers_of_the_service_only() {
    let server = TestServer::spawn().await;
    let mut of_svc = watch(&server, "?service=svc", None).await;
    let mut of_all = watch(&server, "?registry=true", None).await;
    let mut of_configs = watch(&server, "", None).await;
    register(&server, instance("svc", "a", 1)).await;
    register(&server, instance("other", "x", 1)).await;
    // Heartbeats without a change record nothing.
    for _ in 0..3 {
        heartbeat(&server, "svc", "a", json!({"status": "passing"})).await;
    }
    heartbeat(&server, "svc", "a", json!({"status": "warning"})).await;
    let (status, _) = server
        .post_json(
            "/api/v1/registry/deregister",
            &json!({"serviceName": "svc", "instanceId": "a"}),
        )
        .await;
    assert_eq!(status, 204);
    let kinds: Vec<Value> = vec![
        of_svc.next_change().await,
        of_svc.next_change().await,
        of_svc.next_change().await,
    ];
    assert_eq!(
        kinds
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "instance.registered",
            "instance.status_changed",
            "instance.deregistered"
        ]
    );
    assert_eq!(kinds[1]["message"], "passing → warning");
    assert_eq!(of_all.next_change().await["instanceId"], "a");
    assert_eq!(of_all.next_change().await["serviceName"], "other");
    // A config watcher hears no registry change.
    server
        .put_config(
            "cfg",
            json!({"config": {"a": 1}, "metadata": meta("a", "v1")}),
        )
        .await;
    assert_eq!(of_configs.next_change().await["kind"], "config.updated");
}

#[tokio::test]
async fn a_heartbeats_applied_map_joins_the_drift_report() {
    let server = TestServer::spawn().await;
    server
        .put_config(
            "checkout",
            json!({"config": {"a": 1}, "metadata": meta("a", "v1")}),
        )
        .await;
    let (_, effective) = server
        .get_json("/api/v1/configs/checkout/effective?environment=production")
        .await;
    let checksum = effective["checksum"].as_str().unwrap().to_owned();
    let mut body = instance("checkout-api", "c-1", 1);
    body["environment"] = json!("production");
    register(&server, body).await;
    let mut behind = instance("checkout-api", "c-2", 2);
    behind["environment"] = json!("production");
    register(&server, behind).await;
    let (status, beat) = heartbeat(
        &server,
        "checkout-api",
        "c-1",
        json!({"applied": {"checkout": checksum}}),
    )
    .await;
    assert_eq!(status, 200, "{beat}");
    heartbeat(
        &server,
        "checkout-api",
        "c-2",
        json!({"applied": {"checkout": "0".repeat(64)}}),
    )
    .await;
    let (status, drift) = server
        .get_json("/api/v1/configs/checkout/drift?environment=production")
        .await;
    assert_eq!(status, 200, "{drift}");
    let by_instance: BTreeMap<String, Value> = drift["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["instanceId"].as_str().unwrap().to_owned(), i.clone()))
        .collect();
    // Reports name `service/instance`: instances of two services may share an id.
    assert_eq!(
        by_instance["checkout-api/c-1"]["status"], "in_sync",
        "{drift}"
    );
    assert_eq!(by_instance["checkout-api/c-1"]["version"], 1);
    assert_eq!(
        by_instance["checkout-api/c-2"]["status"], "drifted",
        "{drift}"
    );
    let (_, detail) = server
        .get_json("/api/v1/registry/services/checkout-api")
        .await;
    assert_eq!(
        detail["instances"][0]["applied"]["checkout"],
        checksum.as_str()
    );
    // A config that does not exist is refused, naming it.
    let (status, problem) = heartbeat(
        &server,
        "checkout-api",
        "c-1",
        json!({"applied": {"nope": checksum}}),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "/applied/nope");
    let (_, detail) = server
        .get_json("/api/v1/registry/services/checkout-api")
        .await;
    assert_eq!(
        detail["instances"][0]["applied"],
        json!({"checkout": checksum}),
        "a refused report changes nothing"
    );
    // Without an environment there is nothing to compare with.
    register(&server, instance("checkout-api", "c-3", 3)).await;
    let (status, problem) = heartbeat(
        &server,
        "checkout-api",
        "c-3",
        json!({"applied": {"checkout": checksum}}),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "/applied");
}

#[tokio::test]
async fn a_service_token_registers_only_its_own_service() {
    let server = secured("").await;
    let payments = token(
        &server,
        "payments",
        &["service-instance"],
        json!({"services": ["payments"]}),
    )
    .await;
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let register_as = |token: &str, service: &str, id: &str| {
        let (token, body) = (token.to_owned(), instance(service, id, 1));
        let server = &server;
        async move {
            call(
                server,
                &token,
                Method::POST,
                "/api/v1/registry/register",
                Some(body),
            )
            .await
        }
    };
    let (status, created) = register_as(&payments, "payments", "p-1").await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        call(
            &server,
            ADMIN,
            Method::POST,
            "/api/v1/registry/register",
            Some(instance("orders", "o-1", 1))
        )
        .await
        .0,
        201
    );

    let (status, problem) = register_as(&payments, "orders", "o-2").await;
    assert_eq!(status, 403, "{problem}");
    // Impersonating another service's instance: its heartbeat and its deregistration.
    let beat = "/api/v1/registry/services/orders/instances/o-1/heartbeat";
    assert_eq!(
        call(
            &server,
            &payments,
            Method::PUT,
            beat,
            Some(json!({"status": "critical"}))
        )
        .await
        .0,
        403
    );
    let leave = json!({"serviceName": "orders", "instanceId": "o-1"});
    assert_eq!(
        call(
            &server,
            &payments,
            Method::POST,
            "/api/v1/registry/deregister",
            Some(leave)
        )
        .await
        .0,
        403
    );
    // Its own instance: yes.
    let own = "/api/v1/registry/services/payments/instances/p-1/heartbeat";
    assert_eq!(
        call(&server, &payments, Method::PUT, own, Some(json!({})))
            .await
            .0,
        200
    );
    // Taking an instance out of service is an operator's act.
    let maintenance = "/api/v1/registry/services/payments/instances/p-1/maintenance";
    assert_eq!(
        call(
            &server,
            &payments,
            Method::PUT,
            maintenance,
            Some(json!({}))
        )
        .await
        .0,
        403
    );
    // A reader reads the registry but registers nothing.
    let (status, found) = call(
        &server,
        &reader,
        Method::GET,
        "/api/v1/registry/discover/orders",
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(ids(&found), ["o-1"]);
    assert_eq!(register_as(&reader, "orders", "o-3").await.0, 403);
    // The service token does not read configs or the registry.
    assert_eq!(
        call(
            &server,
            &payments,
            Method::GET,
            "/api/v1/registry/services",
            None
        )
        .await
        .0,
        403
    );
    // Each refusal was recorded.
    let (_, denied) = call(
        &server,
        ADMIN,
        Method::GET,
        "/api/v1/audit/denied?limit=100",
        None,
    )
    .await;
    assert!(denied["items"].as_array().unwrap().len() >= 6, "{denied}");
    // An environment-scoped token stays in its environments.
    let staging = token(
        &server,
        "payments-staging",
        &["service-instance", "config-reader"],
        json!({"services": ["payments"], "environments": ["staging"]}),
    )
    .await;
    let mut production = instance("payments", "p-prod", 1);
    production["environment"] = json!("production");
    let (status, _) = call(
        &server,
        ADMIN,
        Method::POST,
        "/api/v1/registry/register",
        Some(production.clone()),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        call(
            &server,
            &staging,
            Method::POST,
            "/api/v1/registry/register",
            Some(production)
        )
        .await
        .0,
        403
    );
    let leave = json!({"serviceName": "payments", "instanceId": "p-prod"});
    assert_eq!(
        call(
            &server,
            &staging,
            Method::POST,
            "/api/v1/registry/deregister",
            Some(leave)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            &staging,
            Method::GET,
            "/api/v1/registry/discover/payments",
            None
        )
        .await
        .0,
        403
    );
    let (status, found) = call(
        &server,
        &staging,
        Method::GET,
        "/api/v1/registry/discover/payments?environment=staging",
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let (_, detail) = call(
        &server,
        &staging,
        Method::GET,
        "/api/v1/registry/services/payments",
        None,
    )
    .await;
    assert_eq!(
        detail["status"], 404,
        "no payments instance in staging: {detail}"
    );
    // Nothing of orders changed.
    let (_, found) = call(
        &server,
        ADMIN,
        Method::GET,
        "/api/v1/registry/discover/orders",
        None,
    )
    .await;
    assert_eq!(ids(&found), ["o-1"]);
}

#[tokio::test]
async fn two_replicas_on_postgresql_agree_on_discovery_and_expire_once() {
    let Some(url) = crate::common::postgres::test_database_url().await else {
        return;
    };
    let replica = |url: String| {
        TestServer::spawn_with(move |s| {
            s.database_url = url;
            s.registry_expiry_check_ms = 20;
        })
    };
    let first = replica(url.clone()).await;
    let second = replica(url).await;
    let mut short = instance("shared", "a", 1);
    short["ttlSecs"] = json!(1);
    register(&first, short).await;
    register(&second, instance("shared", "b", 2)).await;
    until_discovered(&first, "shared", &["a", "b"]).await;
    until_discovered(&second, "shared", &["a", "b"]).await;
    // Either replica takes heartbeats; a status change reaches the other.
    let (status, _) = heartbeat(&second, "shared", "b", json!({"status": "critical"})).await;
    assert_eq!(status, 200);
    until_discovered(&first, "shared", &["a"]).await;
    // `a` stops: it expires once, and both stop serving it.
    let mut events = watch(&first, "?service=shared", None).await;
    until_discovered(&first, "shared", &[]).await;
    until_discovered(&second, "shared", &[]).await;
    let expired = events.next_change().await;
    assert_eq!(expired["kind"], "instance.expired", "{expired}");
    let (_, audit) = first.get_json("/api/v1/audit?limit=500").await;
    let expiries = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "instance.expired")
        .count();
    assert_eq!(expiries, 1, "one expiry across replicas: {audit}");
    heartbeat(&second, "shared", "b", json!({"status": "passing"})).await;
    until_discovered(&first, "shared", &["b"]).await;
}

/// The applied map an instance reports last is the one stored, whichever replica took which
/// heartbeat: a replica that recorded the same map a moment ago still stores it again (another
/// replica may have stored a different one since), so a deployment's gate reads what the
/// instance runs now.
#[tokio::test]
async fn the_applied_map_stored_is_the_last_one_reported_through_any_replica() {
    let Some(url) = crate::common::postgres::test_database_url().await else {
        return;
    };
    let replica = |url: String| TestServer::spawn_with(move |s| s.database_url = url);
    let first = replica(url.clone()).await;
    let second = replica(url).await;
    first
        .put_config(
            "app",
            json!({"config": {"a": 1}, "metadata": meta("a", "v1")}),
        )
        .await;
    let mut body = instance("app-api", "i-1", 1);
    body["environment"] = json!("production");
    register(&first, body).await;
    let (old, new) = ("1".repeat(64), "2".repeat(64));
    for (replica, checksum) in [(&first, &old), (&second, &new), (&first, &old)] {
        let (status, beat) = heartbeat(
            replica,
            "app-api",
            "i-1",
            json!({"applied": {"app": checksum}}),
        )
        .await;
        assert_eq!(status, 200, "{beat}");
    }
    for replica in [&first, &second] {
        let stored = wait_until(|| async {
            let (_, service) = replica.get_json("/api/v1/registry/services/app-api").await;
            let applied = service.pointer("/instances/0/applied/app").cloned();
            (applied == Some(json!(old))).then_some(service)
        })
        .await;
        assert_eq!(stored["instances"][0]["applied"]["app"], json!(old));
    }
}

/// An environment-scoped token reaches only instances of its environments: it registers none
/// without an environment (every environment's discovery would see it), and its health check
/// of a service checks (and answers about) only those.
#[tokio::test]
async fn an_environment_scoped_token_checks_and_registers_only_in_its_environments() {
    let good = health_server(StatusCode::OK).await;
    let server = secured("").await;
    for (id, environment) in [("stg-1", "staging"), ("prod-1", "production")] {
        let mut body = instance("web", id, good.port());
        body["environment"] = json!(environment);
        body["healthCheckUrl"] = json!(format!("http://{good}/health"));
        let (status, created) = call(
            &server,
            ADMIN,
            Method::POST,
            "/api/v1/registry/register",
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{created}");
    }
    let staging = token(
        &server,
        "staging-ops",
        &["config-admin", "service-instance"],
        json!({"environments": ["staging"]}),
    )
    .await;
    let (status, checked) = call(
        &server,
        &staging,
        Method::POST,
        "/api/v1/registry/services/web/health",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{checked}");
    let checked_ids: Vec<&str> = checked["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["instanceId"].as_str().unwrap())
        .collect();
    assert_eq!(checked_ids, ["stg-1"], "{checked}");
    let (status, problem) = call(
        &server,
        &staging,
        Method::POST,
        "/api/v1/registry/register",
        Some(instance("web", "anywhere-1", good.port())),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    let mut in_staging = instance("web", "stg-2", good.port());
    in_staging["environment"] = json!("staging");
    let (status, created) = call(
        &server,
        &staging,
        Method::POST,
        "/api/v1/registry/register",
        Some(in_staging),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // A service with no instance in its environments is one it does not know, as when read.
    let mut elsewhere = instance("billing", "prod-9", good.port());
    elsewhere["environment"] = json!("production");
    let (status, _) = call(
        &server,
        ADMIN,
        Method::POST,
        "/api/v1/registry/register",
        Some(elsewhere),
    )
    .await;
    assert_eq!(status, 201);
    for (method, path) in [
        (Method::POST, "/api/v1/registry/services/billing/health"),
        (Method::GET, "/api/v1/registry/services/billing"),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let (status, problem) = call(&server, &staging, method, path, body).await;
        assert_eq!(status, 404, "{path}: {problem}");
    }
}

#[tokio::test]
async fn a_heartbeat_output_with_terminal_escapes_is_refused_and_changes_nothing() {
    let server = TestServer::spawn().await;
    register(
        &server,
        json!({"serviceName": "payments", "instanceId": "p-1",
               "serviceUrl": "http://127.0.0.1:9001", "environment": "production"}),
    )
    .await;
    let fine = json!({"status": "warning", "output": "slow disk\n\tsda: 92%"});
    let (status, body) = heartbeat(&server, "payments", "p-1", fine).await;
    assert_eq!(status, 200, "{body}");
    // An ANSI escape would clear the screen of whoever reads the instance in a terminal.
    let escape = json!({"status": "critical", "output": "\u{1b}[2Jall good"});
    let (status, problem) = heartbeat(&server, "payments", "p-1", escape).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "/output");
    let (_, service) = server.get_json("/api/v1/registry/services/payments").await;
    assert!(service.to_string().contains("slow disk"), "{service}");
    assert!(!service.to_string().contains("critical"), "{service}");
}
