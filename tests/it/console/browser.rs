//! The console in headless Chromium (chromedriver on a free loopback port): sign in, find a
//! config, open a diff, approve a change request as a second user, watch a deployment page
//! update live, a reader sees no write controls, and a form stripped of its CSRF token is
//! refused. With `SUMMIT_CONSOLE_SCREENSHOTS=docs/console` it saves the pages' screenshots.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::webdriver::{Browser, tools};
use super::{ADMIN, checkout_flag, server_with_access, token};
use crate::approvals::call;
use crate::common::{self, TestServer, meta};

fn skip_or_fail(reason: &str) {
    if common::ci_is_set() {
        panic!("Chromium and chromedriver are required when CI is set: {reason}");
    }
    // Straight to stderr: libtest captures eprintln! and shows it only for failures.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED console browser test: {reason} ***\n"
    );
}

async fn sign_in(browser: &Browser, server: &TestServer, token: &str) {
    browser.goto(&server.url("/ui/configs")).await;
    assert!(
        browser.url().await.contains("/ui/login?next="),
        "signed out first"
    );
    browser.find("#token").await.type_text(token).await;
    browser
        .find("form[action='/ui/login'] button")
        .await
        .click()
        .await;
    browser
        .wait_for_text("the configs page", |t| t.contains("Signed in as"))
        .await;
}

async fn sign_out(browser: &Browser, server: &TestServer) {
    browser.goto(&server.url("/ui/configs")).await;
    browser
        .find("form[action='/ui/logout'] button")
        .await
        .click()
        .await;
    browser
        .wait_for_text("the sign-in page", |t| t.contains("API token or JWT"))
        .await;
}

/// Two versions of `app`, written before production is protected (creating a config touches
/// every environment, production included).
async fn seed(server: &TestServer) {
    for (staging, message) in [(100, "first cut"), (200, "raise the staging limit")] {
        let (status, body) = call(
            server,
            ADMIN,
            Method::PUT,
            "/api/v1/configs/app",
            Some(json!({"config": {"limit": 10, "mode": "safe"}, "overrides": {"staging": {"limit": staging}},
                        "metadata": meta("admin", message)})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
}

fn settings(s: &mut summit_config::settings::Settings) {
    s.deployment_environments = "staging".into();
    s.deployment_tick_ms = 50;
}

#[tokio::test]
async fn console_in_chromium_signs_in_diffs_approves_follows_a_deployment_and_hides_writes() {
    let (driver, binary) = match tools() {
        Ok(found) => found,
        Err(reason) => return skip_or_fail(&reason),
    };
    let shots: Option<PathBuf> = std::env::var_os("SUMMIT_CONSOLE_SCREENSHOTS").map(|dir| {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            dir
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)
        }
    });
    let shots = shots.as_deref();
    let server = server_with_access(settings).await;
    seed(&server).await;
    let alice = token(&server, "alice", &["config-admin"], json!({})).await;
    let bob = token(&server, "bob", &["config-admin"], json!({})).await;
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let mut flag = checkout_flag();
    flag["metadata"] = meta("admin", "new checkout");
    let (status, body) = call(
        &server,
        ADMIN,
        Method::PUT,
        "/api/v1/feature-flags/new-checkout",
        Some(flag),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // From here on, production changes wait for one approval.
    let server = server
        .restart_with(|s| {
            s.no_auth = false;
            s.admin_token = Some(ADMIN.into());
            s.protected_environments = "production=1".into();
            settings(s);
        })
        .await;
    let browser = Browser::start(&driver, binary.as_deref()).await;

    // Sign in, find the config, open a diff.
    browser.goto(&server.url("/ui/configs")).await;
    browser.screenshot(shots, "sign-in").await;
    sign_in(&browser, &server, ADMIN).await;
    browser
        .find("input[name=prefix]")
        .await
        .type_text("ap")
        .await;
    browser.find("form[role=search] button").await.click().await;
    // The list before the search already says "1 configs" (`app` is the only one): wait for
    // the search's own page, or the link below may belong to the page being replaced.
    browser.wait_for_url("prefix=ap").await;
    browser
        .wait_for_text("the search result", |t| t.contains("1 configs"))
        .await;
    browser.screenshot(shots, "configs").await;
    browser
        .find("th a[href='/ui/configs/app']")
        .await
        .click()
        .await;
    browser.wait_for_url("/ui/configs/app").await;
    browser
        .wait_for_text("the config page", |t| {
            t.contains("Config app") && t.contains("staging")
        })
        .await;
    browser.screenshot(shots, "config").await;
    browser
        .find("nav.tabs a[href='/ui/configs/app/history']")
        .await
        .click()
        .await;
    browser.wait_for_url("/ui/configs/app/history").await;
    browser
        .wait_for_text("the timeline", |t| t.contains("raise the staging limit"))
        .await;
    browser.screenshot(shots, "history").await;
    browser
        .find("a[href='/ui/configs/app/diff?from=1&to=2']")
        .await
        .click()
        .await;
    browser.wait_for_url("/diff").await;
    browser
        .wait_for_text("the diff", |t| t.contains("Comparing the whole document"))
        .await;
    let removed = browser.find("table.diff td.removed").await.text().await;
    let added = browser.find("table.diff td.added").await.text().await;
    assert!(
        removed.contains("100") && added.contains("200"),
        "{removed} | {added}"
    );
    browser.screenshot(shots, "diff").await;
    browser
        .goto(&server.url("/ui/effective?configId=app&environment=staging&assignmentKey=user-7"))
        .await;
    browser
        .wait_for_text("the effective preview", |t| {
            t.contains("Override for staging")
        })
        .await;
    browser.screenshot(shots, "effective").await;

    // A form stripped of its CSRF token is refused, and nothing is written.
    browser
        .goto(&server.url("/ui/configs/app/rollback?to=1"))
        .await;
    browser
        .script("document.querySelector('form.card input[name=csrf]').remove()")
        .await;
    browser.find("#message").await.type_text("forged").await;
    browser
        .find("form.card input[name=confirm]")
        .await
        .click()
        .await;
    browser.find("form.card button").await.click().await;
    browser
        .wait_for_text("the refusal", |t| {
            t.contains("Form refused") && t.contains("nothing was changed")
        })
        .await;
    let (_, latest) = call(&server, ADMIN, Method::GET, "/api/v1/configs/app", None).await;
    assert_eq!(latest["version"], 2, "the forged rollback wrote nothing");
    sign_out(&browser, &server).await;

    // Alice asks to change production; Bob approves it in the console.
    let (status, request) = call(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/configs/app",
        Some(json!({"config": {"limit": 10, "mode": "safe"},
                    "overrides": {"staging": {"limit": 200}, "production": {"limit": 50}},
                    "metadata": meta("alice", "open production")})),
    )
    .await;
    assert_eq!(status, 202, "{request}");
    let request_id = request["id"].as_str().unwrap().to_owned();
    sign_in(&browser, &server, &bob).await;
    browser.find("a[href='/ui/approvals']").await.click().await;
    browser.wait_for_url("/ui/approvals").await;
    browser
        .wait_for_text("the queue", |t| t.contains("open production"))
        .await;
    browser.screenshot(shots, "approvals").await;
    browser
        .find(&format!(
            "form[action='/ui/approvals/{request_id}/approve'] button"
        ))
        .await
        .click()
        .await;
    browser
        .wait_for_text("the approval", |t| t.contains("is now approved"))
        .await;
    let (_, decided) = call(
        &server,
        ADMIN,
        Method::GET,
        &format!("/api/v1/change-requests/{request_id}"),
        None,
    )
    .await;
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["approvals"][0]["actor"], "token:bob");

    // A deployment page follows the engine live (the SSE stream, no reload).
    for (n, instance) in ["web-1", "web-2"].iter().enumerate() {
        let (status, body) = call(
            &server,
            ADMIN,
            Method::POST,
            "/api/v1/registry/register",
            Some(
                json!({"serviceName": "web", "instanceId": instance, "environment": "staging",
                        "serviceUrl": format!("http://127.0.0.1:{}", 10_000 + n)}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, deployment) = call(
        &server,
        ADMIN,
        Method::POST,
        "/api/v1/deployments",
        Some(json!({"configId": "app", "environment": "staging", "version": 2, "instances": ["web-1", "web-2"],
                    "strategy": {"rollout": {"type": "canary", "steps": [{"percent": 50, "bakeSecs": 3600}]},
                                 "gate": {"applyTimeoutSecs": 3600}},
                    "metadata": meta("admin", "ship the staging limit")})),
    )
    .await;
    assert_eq!(status, 201, "{deployment}");
    let deployment_id = deployment["id"].as_str().unwrap().to_owned();
    browser
        .goto(&server.url(&format!("/ui/deployments/{deployment_id}")))
        .await;
    browser
        .wait_for_text("the deployment page", |t| {
            t.contains("Deploying app v2 to staging")
        })
        .await;
    browser.script("window.notReloaded = true").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, paused) = call(
        &server,
        ADMIN,
        Method::POST,
        &format!("/api/v1/deployments/{deployment_id}/pause"),
        Some(json!({"metadata": meta("admin", "hold on")})),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    browser
        .wait_for_text("the live update", |t| t.contains("State paused"))
        .await;
    assert_eq!(
        browser.script("return window.notReloaded === true").await,
        json!(true),
        "updated in place"
    );
    browser.screenshot(shots, "deployment").await;
    sign_out(&browser, &server).await;

    // A reader is shown no write control anywhere.
    sign_in(&browser, &server, &reader).await;
    for path in [
        "/ui/configs/app".to_owned(),
        "/ui/configs/app/history".to_owned(),
        "/ui/approvals?status=all".to_owned(),
        format!("/ui/deployments/{deployment_id}"),
    ] {
        browser.goto(&server.url(&path)).await;
        let forms = browser.find_all("main form[method=post]").await;
        assert!(
            forms.is_empty(),
            "{path} offers a reader {} forms",
            forms.len()
        );
        let text = browser.text().await;
        assert!(
            !text.contains("Roll back") && !text.contains("Approve"),
            "{path}: {text}"
        );
    }
    for (path, name) in [
        ("/ui/audit", "audit"),
        ("/ui/drift", "drift"),
        ("/ui/registry", "registry"),
        ("/ui/flags", "flags"),
        (
            "/ui/flags/new-checkout?environment=production&targetingKey=user-7",
            "flag",
        ),
    ] {
        browser.goto(&server.url(path)).await;
        browser.screenshot(shots, name).await;
    }
    browser.resize(390, 844).await;
    browser.goto(&server.url("/ui/configs/app/history")).await;
    browser.screenshot(shots, "history-phone").await;
    browser.quit().await;
}
