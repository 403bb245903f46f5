//! The pages over HTTP: real data and empty states, errors as sentences with REST's status
//! codes, flags and secrets, the approvals queue's decisions, deployment actions.

use reqwest::Method;
use serde_json::json;

use super::{ADMIN, ConsoleClient, checkout_flag, put, server_with_access, token, version};
use crate::approvals::call;
use crate::common::{TestServer, meta};

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
    let flag = json!({
        "type": "string",
        "variants": {"old": "old", "new": "new"},
        "defaultVariant": "old",
        "environments": {"production": {"defaultVariant": "new"}},
        "metadata": meta("alice", "flag please")
    });
    let (status, body) = call(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/feature-flags/checkout",
        Some(flag),
    )
    .await;
    assert_eq!(status, 202, "{body}");

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
    // Each request links to its own kind of document.
    assert!(
        queue.body.contains(r#"href="/ui/flags/checkout""#),
        "{}",
        queue.body
    );
    assert!(
        queue.body.contains(r#"href="/ui/configs/app""#),
        "{}",
        queue.body
    );
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
