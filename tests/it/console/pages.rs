//! The console over HTTP: the sign-in exchange, the cookie, CSRF, what each identity is shown
//! and what the server refuses regardless, and errors as sentences with REST's status codes.

use reqwest::Method;
use serde_json::{Value, json};

use super::ConsoleClient;
use crate::approvals::call;
use crate::common::{TestServer, meta};

pub(crate) const ADMIN: &str = "admin-token-for-the-console-tests-0123456789";

pub(crate) async fn server_with_access(
    tune: impl FnOnce(&mut summit_config::settings::Settings),
) -> TestServer {
    TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        tune(s);
    })
    .await
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

pub(crate) async fn put(server: &TestServer, id: &str, value: u64) -> (u16, Value) {
    call(
        server,
        ADMIN,
        Method::PUT,
        &format!("/api/v1/configs/{id}"),
        Some(json!({"config": {"value": value}, "metadata": meta("admin", "set value")})),
    )
    .await
}

async fn version(server: &TestServer, id: &str) -> Value {
    call(
        server,
        ADMIN,
        Method::GET,
        &format!("/api/v1/configs/{id}"),
        None,
    )
    .await
    .1["version"]
        .clone()
}

async fn denials(server: &TestServer) -> Vec<Value> {
    let (status, denied) = call(
        server,
        ADMIN,
        Method::GET,
        "/api/v1/audit/denied?limit=500",
        None,
    )
    .await;
    assert_eq!(status, 200, "{denied}");
    denied["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn console_sign_in_exchanges_the_token_for_a_sealed_http_only_cookie() {
    let server = server_with_access(|_| {}).await;
    let mut console = ConsoleClient::new(&server);

    let first = console.get("/ui/configs?prefix=a").await;
    assert_eq!(first.status, 303);
    assert_eq!(
        first.location.as_deref(),
        Some("/ui/login?next=%2Fui%2Fconfigs%3Fprefix%3Da")
    );

    let refused = console.sign_in("not-a-token").await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("That token was not accepted"),
        "{}",
        refused.body
    );
    assert!(
        !refused.body.contains("not-a-token"),
        "the page never repeats a credential"
    );

    let signed_in = console.sign_in(ADMIN).await;
    assert_eq!(
        (signed_in.status, signed_in.location.as_deref()),
        (303, Some("/ui/configs"))
    );
    let cookie = signed_in.set_cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing from {cookie}"
        );
    }
    assert!(
        !cookie.contains("Secure"),
        "no TLS here, so not Secure: {cookie}"
    );
    assert!(
        !cookie.contains(ADMIN),
        "the cookie is sealed, not the token"
    );
    let decoded = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        cookie.split(';').next().unwrap().split_once('=').unwrap().1,
    )
    .unwrap();
    assert!(
        !String::from_utf8_lossy(&decoded).contains(ADMIN),
        "sealed, not encoded"
    );

    let page = console.get("/ui/configs").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Signed in as <strong>admin</strong>"),
        "{}",
        page.body
    );

    let csrf = page.csrf();
    let out = console.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (out.status, out.location.as_deref()),
        (303, Some("/ui/login"))
    );
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(console.get("/ui/configs").await.status, 303, "signed out");
}

#[tokio::test]
async fn console_session_ends_when_its_token_is_revoked() {
    let server = server_with_access(|_| {}).await;
    let alice = token(&server, "alice", &["config-admin"], json!({})).await;
    let mut console = ConsoleClient::new(&server);
    assert_eq!(console.sign_in(&alice).await.status, 303);
    assert_eq!(console.get("/ui/configs").await.status, 200);

    let (status, tokens) = call(&server, ADMIN, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(status, 200);
    let id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "alice")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &server,
        ADMIN,
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");

    let after = console.get("/ui/configs").await;
    assert_eq!(
        (after.status, after.location.as_deref()),
        (303, Some("/ui/login?expired=1"))
    );
}

#[tokio::test]
async fn console_form_without_the_csrf_token_is_refused_and_changes_nothing() {
    let server = server_with_access(|_| {}).await;
    put(&server, "app", 1).await;
    put(&server, "app", 2).await;
    let mut console = ConsoleClient::new(&server);
    console.sign_in(ADMIN).await;
    let confirm = console.get("/ui/configs/app/rollback?to=1").await;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.body.contains("Roll back to version 1"),
        "{}",
        confirm.body
    );
    let fields = [
        ("target", "1"),
        ("expected", "2"),
        ("message", "undo"),
        ("confirm", "yes"),
    ];

    let forged = console.post("/ui/configs/app/rollback", &fields).await;
    assert_eq!(forged.status, 403);
    assert!(
        forged.body.contains("anti-forgery token"),
        "{}",
        forged.body
    );
    let wrong = [&fields[..], &[("csrf", "0123456789abcdef0123456789abcdef")]].concat();
    assert_eq!(
        console
            .post("/ui/configs/app/rollback", &wrong)
            .await
            .status,
        403
    );
    assert_eq!(
        version(&server, "app").await,
        json!(2),
        "nothing was written"
    );

    let csrf = confirm.csrf();
    let done = console
        .post(
            "/ui/configs/app/rollback",
            &[&fields[..], &[("csrf", &csrf)]].concat(),
        )
        .await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert!(
        done.body.contains("Version 3 of app now equals version 1"),
        "{}",
        done.body
    );
    let (_, latest) = call(&server, ADMIN, Method::GET, "/api/v1/configs/app", None).await;
    assert_eq!(
        (latest["version"].clone(), latest["rollbackOf"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(
        latest["metadata"]["actor"], "admin",
        "recorded as the signed-in identity"
    );
}

#[tokio::test]
async fn console_reader_is_offered_no_write_and_its_forced_post_is_refused_and_recorded() {
    let server = server_with_access(|_| {}).await;
    put(&server, "app", 1).await;
    put(&server, "app", 2).await;
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let mut console = ConsoleClient::new(&server);
    console.sign_in(&reader).await;

    let history = console.get("/ui/configs/app/history").await;
    assert_eq!(history.status, 200);
    assert!(history.body.contains("Version 2"), "{}", history.body);
    assert!(
        !history.body.contains("Roll back"),
        "a reader is offered no rollback"
    );
    let config = console.get("/ui/configs/app").await;
    assert!(!config.body.contains("/rollback"), "{}", config.body);

    // The server decides regardless of what the page offered.
    let csrf = history.csrf();
    let refused = console
        .post(
            "/ui/configs/app/rollback",
            &[
                ("target", "1"),
                ("message", "m"),
                ("confirm", "yes"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("lacks the write permission"),
        "{}",
        refused.body
    );
    assert_eq!(version(&server, "app").await, json!(2));
    let recorded = denials(&server).await;
    assert!(
        recorded
            .iter()
            .any(|d| d["actor"] == "token:reader"
                && d["operation"] == "POST /ui/configs/{id}/rollback"),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn console_scoped_identity_sees_only_its_configs() {
    let server = server_with_access(|_| {}).await;
    put(&server, "app", 1).await;
    put(&server, "payments", 1).await;
    let payments = token(
        &server,
        "pay",
        &["config-admin"],
        json!({"configPrefixes": ["pay"]}),
    )
    .await;
    let mut console = ConsoleClient::new(&server);
    console.sign_in(&payments).await;

    let list = console.get("/ui/configs").await;
    assert!(list.body.contains("/ui/configs/payments"), "{}", list.body);
    assert!(!list.body.contains("/ui/configs/app"), "{}", list.body);
    let other = console.get("/ui/configs/app").await;
    assert_eq!(other.status, 403);
    assert!(other.body.contains("Not allowed"), "{}", other.body);
    assert!(
        denials(&server)
            .await
            .iter()
            .any(|d| d["operation"] == "GET /ui/configs/{id}" && d["resource"] == "app")
    );
}

#[tokio::test]
async fn console_bad_input_is_a_sentence_with_the_rest_status() {
    let server = server_with_access(|_| {}).await;
    put(&server, "app", 1).await;
    let mut console = ConsoleClient::new(&server);
    console.sign_in(ADMIN).await;
    for (path, status, sentence) in [
        ("/ui/configs/Not_An_Id", 400, "Config id must match"),
        ("/ui/configs/missing", 404, "not found"),
        (
            "/ui/configs/app/diff?from=x",
            400,
            "From must be a version number.",
        ),
        ("/ui/configs/app/diff?from=1&to=9", 404, "not found"),
        (
            "/ui/effective?configId=app&environment=Bad%20Env",
            400,
            "nvironment",
        ),
        ("/ui/approvals?status=maybe", 400, "Status is pending"),
        ("/ui/deployments/not-a-uuid", 400, ""),
    ] {
        let page = console.get(path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert!(page.body.contains(sentence), "{path}: {}", page.body);
        assert!(
            page.body.contains("<main"),
            "{path}: an HTML page, not a problem document"
        );
    }
}

#[tokio::test]
async fn console_without_access_control_needs_no_sign_in_but_still_checks_forms() {
    let server = TestServer::spawn().await;
    server
        .put_config(
            "app",
            json!({"config": {"a": 1}, "metadata": meta("dev", "one")}),
        )
        .await;
    server
        .put_config(
            "app",
            json!({"config": {"a": 2}, "metadata": meta("dev", "two")}),
        )
        .await;
    let mut console = ConsoleClient::new(&server);
    let page = console.get("/ui/configs").await;
    assert_eq!(page.status, 200);
    assert!(
        page.set_cookie.is_some(),
        "an anonymous session carries the CSRF token"
    );
    assert!(
        console.get("/ui/login").await.status == 303,
        "nothing to sign in to"
    );

    let confirm = console.get("/ui/configs/app/rollback?to=1").await;
    assert!(
        confirm.body.contains(r#"name="actor""#),
        "without access control the form asks for a name"
    );
    let fields = [
        ("target", "1"),
        ("message", "undo"),
        ("confirm", "yes"),
        ("actor", "dana"),
    ];
    assert_eq!(
        console
            .post("/ui/configs/app/rollback", &fields)
            .await
            .status,
        403
    );
    let csrf = confirm.csrf();
    let done = console
        .post(
            "/ui/configs/app/rollback",
            &[&fields[..], &[("csrf", &csrf)]].concat(),
        )
        .await;
    assert_eq!(done.status, 201, "{}", done.body);
    let (_, latest) = server.get_json("/api/v1/configs/app").await;
    assert_eq!(
        (
            latest["version"].clone(),
            latest["metadata"]["actor"].clone()
        ),
        (json!(3), json!("dana"))
    );
}

#[tokio::test]
async fn console_pages_show_real_data_and_empty_states() {
    let server = TestServer::spawn().await;
    let mut console = ConsoleClient::new(&server);
    for (path, sentence) in [
        ("/ui/configs", "No configs match"),
        ("/ui/approvals", "No change requests here"),
        ("/ui/deployments", "No deployments match"),
        ("/ui/flags", "No feature flags yet"),
        ("/ui/secrets", "No secrets in the built-in store"),
        ("/ui/registry", "No service has registered an instance"),
        ("/ui/drift", "No instance has reported"),
    ] {
        let page = console.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(page.body.contains(sentence), "{path}: {}", page.body);
    }
    server
        .put_config(
            "app",
            json!({"config": {"limit": 1}, "overrides": {"prod": {"limit": 5}},
                   "canary": {"environment": "prod", "trafficPercent": 100, "config": {"limit": 9},
                              "startAt": "2020-01-01T00:00:00Z"},
                   "metadata": meta("dev", "first")}),
        )
        .await;
    let effective = console
        .get("/ui/effective?configId=app&environment=prod&assignmentKey=user-1")
        .await;
    assert_eq!(effective.status, 200, "{}", effective.body);
    assert!(
        effective
            .body
            .contains("Override for <strong>prod</strong>"),
        "{}",
        effective.body
    );
    assert!(
        effective.body.contains("Canary patch"),
        "{}",
        effective.body
    );
    assert!(
        effective.body.contains("&quot;limit&quot;: 9"),
        "{}",
        effective.body
    );
    let (status, _) = server
        .post_json(
            "/api/v1/configs/app/applied",
            &json!({"environment": "prod", "instanceId": "web-1", "version": 1, "checksum": "0".repeat(64)}),
        )
        .await;
    assert!(status < 300, "{status}");
    let drift = console.get("/ui/configs/app/drift").await;
    assert!(
        drift.body.contains("web-1") && drift.body.contains("drifted"),
        "{}",
        drift.body
    );
    let audit = console.get("/ui/audit?actor=dev").await;
    assert!(audit.body.contains("first"), "{}", audit.body);
    assert!(
        console
            .get("/ui/audit?actor=nobody")
            .await
            .body
            .contains("No audit records match")
    );
}

pub(crate) fn checkout_flag() -> Value {
    json!({
        "description": "New checkout flow",
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "environments": {
            "production": {"enabled": true, "rules": [
                {"id": "staff", "conditions": [{"attribute": "email", "operator": "ends_with", "value": "@acme.com"}], "variant": "on"},
                {"id": "beta", "targetKeys": ["user-7", "user-8"], "variant": "on"}
            ]},
            "dev": {"enabled": false}
        }
    })
}

#[tokio::test]
async fn console_flags_read_in_words_and_evaluate_and_secrets_never_show_a_value() {
    let server = TestServer::spawn().await;
    server.put_flag("new-checkout", checkout_flag()).await;
    let (status, body) = server
        .put_json(
            "/api/v1/secrets/db-password",
            &json!({"value": "hunter2-do-not-show", "metadata": meta("sam", "set")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut console = ConsoleClient::new(&server);

    assert!(
        console
            .get("/ui/flags")
            .await
            .body
            .contains("/ui/flags/new-checkout")
    );
    let flag = console.get("/ui/flags/new-checkout").await;
    assert_eq!(flag.status, 200, "{}", flag.body);
    for words in [
        "Rule <code>staff</code>: when email ends with",
        "the targeting key is one of user-7, user-8, serve on.",
        "Disabled: everyone gets <strong>off</strong>.",
    ] {
        assert!(flag.body.contains(words), "{words}: {}", flag.body);
    }
    let tried = console
        .get("/ui/flags/new-checkout?environment=production&targetingKey=user-7&attributes=")
        .await;
    assert!(
        tried.body.contains("Serves <strong>on</strong>") && tried.body.contains("TARGETING_MATCH"),
        "{}",
        tried.body
    );
    let staff = console
        .get("/ui/flags/new-checkout?environment=production&targetingKey=u&attributes=%7B%22email%22%3A%22a%40acme.com%22%7D")
        .await;
    assert!(
        staff.body.contains("Serves <strong>on</strong>"),
        "{}",
        staff.body
    );
    let bad = console
        .get("/ui/flags/new-checkout?environment=production&attributes=nope")
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("not a JSON object"), "{}", bad.body);

    let secrets = console.get("/ui/secrets").await;
    assert!(
        secrets.body.contains("/ui/secrets/db-password"),
        "{}",
        secrets.body
    );
    let secret = console.get("/ui/secrets/db-password").await;
    assert_eq!(secret.status, 200, "{}", secret.body);
    assert!(
        secret.body.contains("current") && secret.body.contains("manual only"),
        "{}",
        secret.body
    );
    for page in [&secrets, &secret] {
        assert!(
            !page.body.contains("hunter2"),
            "a secret's value never reaches a page"
        );
    }
}

#[tokio::test]
async fn console_signs_in_with_a_jwt_but_not_an_expired_one() {
    const SECRET: &str = "a-jwt-secret-that-is-at-least-32-bytes-long";
    let server = server_with_access(|s| s.jwt_hs256_secret = Some(SECRET.into())).await;
    let jwt = |exp: i64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"sub": "ops-jane", "roles": ["config-reader"], "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let mut console = ConsoleClient::new(&server);
    let expired = console.sign_in(&jwt(now - 600)).await;
    assert_eq!(expired.status, 401, "{}", expired.body);
    assert_eq!(console.sign_in(&jwt(now + 600)).await.status, 303);
    let page = console.get("/ui/configs").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Signed in as <strong>jwt:ops-jane</strong>"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn console_approvals_reject_with_a_reason_and_cancel_by_the_requester_only() {
    let server = server_with_access(|_| {}).await;
    put(&server, "app", 1).await;
    let server = server
        .restart_with(|s| {
            s.no_auth = false;
            s.admin_token = Some(ADMIN.into());
            s.protected_environments = "production=1".into();
        })
        .await;
    let alice = token(&server, "alice", &["config-admin"], json!({})).await;
    let bob = token(&server, "bob", &["config-admin"], json!({})).await;
    let request = |value: u64| {
        let server = &server;
        let alice = &alice;
        async move {
            let (status, body) = call(
                server,
                alice,
                Method::PUT,
                "/api/v1/configs/app",
                Some(json!({"config": {"value": value}, "metadata": meta("alice", "please")})),
            )
            .await;
            assert_eq!(status, 202, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let (first, second) = (request(2).await, request(3).await);

    let mut as_alice = ConsoleClient::new(&server);
    as_alice.sign_in(&alice).await;
    let queue = as_alice.get("/ui/approvals").await;
    assert!(
        !queue
            .body
            .contains(&format!("/ui/approvals/{first}/approve")),
        "no approving one's own change"
    );
    assert!(
        queue
            .body
            .contains(&format!("/ui/approvals/{first}/cancel")),
        "{}",
        queue.body
    );

    let mut as_bob = ConsoleClient::new(&server);
    as_bob.sign_in(&bob).await;
    let queue = as_bob.get("/ui/approvals").await;
    assert!(
        queue
            .body
            .contains(&format!("/ui/approvals/{first}/approve")),
        "{}",
        queue.body
    );
    assert!(
        !queue
            .body
            .contains(&format!("/ui/approvals/{first}/cancel")),
        "only the requester cancels"
    );
    let csrf = queue.csrf();
    let rejected = as_bob
        .post(
            &format!("/ui/approvals/{first}/reject"),
            &[("reason", "too big a jump"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    assert!(
        rejected.body.contains("is now <strong>rejected</strong>"),
        "{}",
        rejected.body
    );
    let refused = as_bob
        .post(
            &format!("/ui/approvals/{second}/cancel"),
            &[("reason", "mine now"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("Only the requester"),
        "{}",
        refused.body
    );

    let csrf = as_alice.get("/ui/approvals").await.csrf();
    let cancelled = as_alice
        .post(
            &format!("/ui/approvals/{second}/cancel"),
            &[("reason", "not needed"), ("csrf", &csrf)],
        )
        .await;
    assert!(
        cancelled.body.contains("is now <strong>cancelled</strong>"),
        "{}",
        cancelled.body
    );

    let (_, first) = call(
        &server,
        ADMIN,
        Method::GET,
        &format!("/api/v1/change-requests/{first}"),
        None,
    )
    .await;
    assert_eq!(
        (first["status"].clone(), first["reason"].clone()),
        (json!("rejected"), json!("too big a jump"))
    );
    let (_, second) = call(
        &server,
        ADMIN,
        Method::GET,
        &format!("/api/v1/change-requests/{second}"),
        None,
    )
    .await;
    assert_eq!(second["status"], "cancelled");
    assert_eq!(
        version(&server, "app").await,
        json!(1),
        "nothing was applied"
    );
}

#[tokio::test]
async fn console_event_stream_needs_a_session() {
    let server = server_with_access(|_| {}).await;
    put(&server, "app", 1).await;
    let mut console = ConsoleClient::new(&server);
    let anonymous = console.get("/ui/events?configId=app").await;
    assert_eq!(anonymous.status, 303, "no stream without a session");
    console.sign_in(ADMIN).await;
    let response = reqwest::Client::new()
        .get(server.url("/ui/events?configId=app"))
        .header(reqwest::header::COOKIE, console.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
}

#[tokio::test]
async fn console_deployment_actions_go_through_the_core() {
    let server = server_with_access(|s| {
        s.deployment_environments = "staging".into();
        s.deployment_tick_ms = 50;
    })
    .await;
    put(&server, "app", 1).await;
    put(&server, "app", 2).await;
    let (status, body) = call(
        &server,
        ADMIN,
        Method::POST,
        "/api/v1/registry/register",
        Some(
            json!({"serviceName": "web", "instanceId": "web-1", "environment": "staging",
                    "serviceUrl": "http://127.0.0.1:10000"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, deployment) = call(
        &server,
        ADMIN,
        Method::POST,
        "/api/v1/deployments",
        Some(json!({"configId": "app", "environment": "staging", "version": 2, "instances": ["web-1"],
                    "strategy": {"rollout": {"type": "canary", "steps": [{"percent": 50, "bakeSecs": 3600}]},
                                 "gate": {"applyTimeoutSecs": 3600}},
                    "metadata": meta("admin", "ship")})),
    )
    .await;
    assert_eq!(status, 201, "{deployment}");
    let id = deployment["id"].as_str().unwrap();

    let mut console = ConsoleClient::new(&server);
    console.sign_in(ADMIN).await;
    let list = console.get("/ui/deployments?configId=app&active=1").await;
    assert!(
        list.body.contains(&format!("/ui/deployments/{id}")),
        "{}",
        list.body
    );
    let page = console.get(&format!("/ui/deployments/{id}")).await;
    assert!(
        page.body.contains("Deploying app v2 to staging"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let unknown = console
        .post(&format!("/ui/deployments/{id}/explode"), &[("csrf", &csrf)])
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let aborted = console
        .post(
            &format!("/ui/deployments/{id}/abort"),
            &[("message", "bad version"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(aborted.status, 200, "{}", aborted.body);
    assert!(
        aborted.body.contains("now <strong>aborted</strong>"),
        "{}",
        aborted.body
    );
    let (_, now) = call(
        &server,
        ADMIN,
        Method::GET,
        &format!("/api/v1/deployments/{id}"),
        None,
    )
    .await;
    assert_eq!(now["state"], "aborted");
    let (_, log) = call(
        &server,
        ADMIN,
        Method::GET,
        &format!("/api/v1/deployments/{id}/log"),
        None,
    )
    .await;
    let last = log["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["actor"].clone(), last["reason"].clone()),
        (json!("admin"), json!("bad version")),
        "{log}"
    );
    let again = console
        .post(&format!("/ui/deployments/{id}/pause"), &[("csrf", &csrf)])
        .await;
    assert_eq!(
        again.status, 409,
        "an aborted deployment cannot be paused: {}",
        again.body
    );
}
