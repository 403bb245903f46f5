//! Authorization decided in the core: the holes found when the access rules were tried from
//! outside stay closed, and every refusal is recorded once.

use crate::common;

use common::{TestServer, body_of, meta};
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) const ADMIN: &str = "admin-token-for-the-authorization-tests-0123";

pub(crate) async fn secured(protected: &str) -> TestServer {
    let protected = protected.to_owned();
    TestServer::spawn_with(move |s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        s.protected_environments = protected;
    })
    .await
}

pub(crate) async fn call(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    body_of(request.send().await.expect("request")).await
}

pub(crate) async fn token(
    server: &TestServer,
    name: &str,
    roles: &[&str],
    scopes: Value,
) -> String {
    let (status, created) = call(
        server,
        ADMIN,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": name, "roles": roles, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["tokenText"].as_str().unwrap().to_owned()
}

pub(crate) async fn denials(server: &TestServer) -> Vec<Value> {
    let (status, denied) = call(
        server,
        ADMIN,
        Method::GET,
        "/api/v1/audit/denied?limit=500",
        None,
    )
    .await;
    assert_eq!(status, 200);
    denied["items"].as_array().unwrap().clone()
}

pub(crate) fn beta_flag() -> Value {
    json!({
        "type": "boolean",
        "description": "the beta checkout",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "environments": {"staging": {"enabled": true, "defaultVariant": "on"}}
    })
}

#[tokio::test]
async fn an_environment_scoped_token_must_name_its_environment_to_evaluate_flags() {
    let server = secured("").await;
    server.put_flag_as(ADMIN, "beta", beta_flag()).await;
    let staging = token(
        &server,
        "staging-reader",
        &["config-reader"],
        json!({"environments": ["staging"]}),
    )
    .await;
    let context = json!({"targetingKey": "user-1"});

    let unnamed = [
        (
            "/api/v1/feature-flags/evaluate",
            json!({"flagKey": "beta", "context": context}),
        ),
        (
            "/api/v1/feature-flags/evaluate/batch",
            json!({"context": context}),
        ),
        ("/ofrep/v1/evaluate/flags/beta", json!({"context": context})),
        ("/ofrep/v1/evaluate/flags", json!({"context": context})),
    ];
    for (path, body) in unnamed {
        let (status, answer) = call(&server, &staging, Method::POST, path, Some(body)).await;
        assert_eq!(status, 403, "{path}: {answer}");
    }

    let (status, answer) = call(
        &server,
        &staging,
        Method::POST,
        "/api/v1/feature-flags/evaluate",
        Some(json!({"flagKey": "beta", "environment": "staging", "context": context})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["value"], true, "staging's own targeting: {answer}");
    let (status, answer) = call(
        &server,
        &staging,
        Method::POST,
        "/ofrep/v1/evaluate/flags/beta",
        Some(json!({"context": {"targetingKey": "user-1", "environment": "staging"}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["value"], true, "{answer}");
    let (status, _) = call(
        &server,
        &staging,
        Method::POST,
        "/api/v1/feature-flags/evaluate",
        Some(json!({"flagKey": "beta", "environment": "production", "context": context})),
    )
    .await;
    assert_eq!(status, 403);

    let refused = denials(&server).await;
    assert!(
        refused.iter().any(|d| d["actor"] == "token:staging-reader"
            && d["operation"] == "POST /ofrep/v1/evaluate/flags"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_environment_scoped_token_cannot_change_a_flag_wide_field() {
    let server = secured("").await;
    server.put_flag_as(ADMIN, "beta", beta_flag()).await;
    let staging = token(
        &server,
        "staging-writer",
        &["config-admin"],
        json!({"environments": ["staging"]}),
    )
    .await;

    let mut described = beta_flag();
    described["description"] = json!("rewritten by a staging token");
    described["metadata"] = meta("staging-writer", "new description");
    let (status, answer) = call(
        &server,
        &staging,
        Method::PUT,
        "/api/v1/feature-flags/beta",
        Some(described),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let (_, flag) = call(
        &server,
        ADMIN,
        Method::GET,
        "/api/v1/feature-flags/beta",
        None,
    )
    .await;
    assert_eq!(flag["version"], 1, "nothing written: {flag}");
    assert_eq!(
        flag["definition"]["description"]
            .as_str()
            .or(flag["description"].as_str()),
        Some("the beta checkout")
    );

    let mut retargeted = beta_flag();
    retargeted["environments"]["staging"]["defaultVariant"] = json!("off");
    retargeted["metadata"] = meta("staging-writer", "staging off");
    let (status, answer) = call(
        &server,
        &staging,
        Method::PUT,
        "/api/v1/feature-flags/beta",
        Some(retargeted),
    )
    .await;
    assert_eq!(status, 201, "its own environment's targeting: {answer}");
}

#[tokio::test]
async fn a_production_scoped_approver_cannot_approve_a_create_but_an_unscoped_one_can() {
    let server = secured("production=1").await;
    let alice = token(&server, "alice", &["config-admin"], json!({})).await;
    let bob = token(&server, "bob", &["config-admin"], json!({})).await;
    let prod = token(
        &server,
        "prod-approver",
        &["config-admin"],
        json!({"environments": ["production"]}),
    )
    .await;

    let (status, request) = call(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/configs/payments",
        Some(json!({"config": {"limit": 10}, "metadata": meta("alice", "create")})),
    )
    .await;
    assert_eq!(status, 202, "a create touches production: {request}");
    let id = request["id"].as_str().unwrap().to_owned();

    let (status, answer) = call(
        &server,
        &prod,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, 403, "a create touches every environment: {answer}");
    let (_, pending) = call(
        &server,
        ADMIN,
        Method::GET,
        &format!("/api/v1/change-requests/{id}"),
        None,
    )
    .await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["approvals"], json!([]));
    assert!(
        denials(&server)
            .await
            .iter()
            .any(|d| d["actor"] == "token:prod-approver"
                && d["operation"] == "POST /api/v1/change-requests/{id}/approve"
                && d["resource"] == "payments")
    );

    let (status, answer) = call(
        &server,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "approved");
}

#[tokio::test]
async fn self_approval_and_cancelling_anothers_request_are_recorded_refusals() {
    let server = secured("production=1").await;
    let alice = token(&server, "alice", &["config-admin"], json!({})).await;
    let bob = token(&server, "bob", &["config-admin"], json!({})).await;
    let (status, request) = call(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/configs/ledger",
        Some(json!({"config": {"limit": 1}, "metadata": meta("alice", "create")})),
    )
    .await;
    assert_eq!(status, 202);
    let id = request["id"].as_str().unwrap().to_owned();

    let (status, _) = call(
        &server,
        &alice,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &server,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/cancel"),
        Some(json!({"reason": "not mine"})),
    )
    .await;
    assert_eq!(status, 403);

    let refused = denials(&server).await;
    let count = |actor: &str, route: &str| {
        refused
            .iter()
            .filter(|d| d["actor"] == actor && d["operation"] == route)
            .count()
    };
    assert_eq!(
        count("token:alice", "POST /api/v1/change-requests/{id}/approve"),
        1,
        "{refused:?}"
    );
    assert_eq!(
        count("token:bob", "POST /api/v1/change-requests/{id}/cancel"),
        1,
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_scoped_token_gets_400_for_a_malformed_id_and_reaches_a_percent_encoded_id_in_scope() {
    let server = secured("").await;
    let (status, _) = call(
        &server,
        ADMIN,
        Method::PUT,
        "/api/v1/configs/app-x",
        Some(json!({"config": {"a": 1}, "metadata": meta("admin", "create")})),
    )
    .await;
    assert_eq!(status, 201);
    let scoped = token(
        &server,
        "app-reader",
        &["config-reader"],
        json!({"configPrefixes": ["app"]}),
    )
    .await;

    let (status, problem) = call(&server, &scoped, Method::GET, "/api/v1/configs/App!", None).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "invalid_input");

    let (status, config) = call(
        &server,
        &scoped,
        Method::GET,
        "/api/v1/configs/app%2Dx",
        None,
    )
    .await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["configId"], "app-x");

    let (status, _) = call(&server, &scoped, Method::GET, "/api/v1/configs/other", None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn access_control_off_is_an_unrestricted_identity_not_a_missing_one() {
    let server = TestServer::spawn().await;
    // Every operation runs for the unrestricted identity; token management needs access control.
    assert_eq!(
        server
            .put_config(
                "open",
                json!({"config": {"a": 1}, "metadata": meta("alice", "x")})
            )
            .await,
        1
    );
    let (status, audit) = server.get_json("/api/v1/configs/open/audit").await;
    assert_eq!(status, 200);
    assert_eq!(
        audit["items"][0]["actor"], "alice",
        "the client's actor is kept: {audit}"
    );
    let (status, problem) = server.get_json("/api/v1/tokens").await;
    assert_eq!(status, 403, "{problem}");
}
