//! Sessions over HTTP: the sign-in exchange and the cookie, sign-out, revocation, CSRF, what
//! each identity is offered and what the server refuses (and records) regardless.

use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{ADMIN, ConsoleClient, denials, put, server_with_access, token, version};
use crate::approvals::call;
use crate::common::{TestServer, meta};

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
async fn console_signs_in_with_a_jwt_but_not_an_expired_one() {
    const SECRET: &str = "a-jwt-secret-that-is-at-least-32-bytes-long";
    let server = server_with_access(|s| s.jwt_hs256_secret = Some(SECRET.into())).await;
    let jwt_with = |exp: i64, pad: usize| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"sub": "ops-jane", "roles": ["config-reader"], "exp": exp, "pad": "x".repeat(pad)}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let jwt = |exp: i64| jwt_with(exp, 0);
    let now = chrono::Utc::now().timestamp();
    let mut console = ConsoleClient::new(&server);
    let expired = console.sign_in(&jwt(now - 600)).await;
    assert_eq!(expired.status, 401, "{}", expired.body);
    let too_long = console.sign_in(&jwt_with(now + 600, 4000)).await;
    assert_eq!(too_long.status, 400, "{}", too_long.body);
    assert!(
        too_long
            .body
            .contains("too long to keep in a browser cookie"),
        "{}",
        too_long.body
    );
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
    // A WebSocket is refused even with the session: CORS would not stop another origin's page
    // from reading one, while an EventSource across origins needs CORS headers it never gets.
    let mut upgrade = format!("ws://{}/ui/events?configId=app", server.addr)
        .into_client_request()
        .unwrap();
    upgrade
        .headers_mut()
        .insert("cookie", console.cookie.clone().unwrap().parse().unwrap());
    upgrade
        .headers_mut()
        .insert("origin", "https://evil.example.com".parse().unwrap());
    match tokio_tungstenite::connect_async(upgrade).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
        }
        other => panic!("expected the upgrade to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn console_pages_may_not_be_framed_and_run_only_their_own_script() {
    let server = server_with_access(|_| {}).await;
    for path in ["/ui/login", "/ui/configs", "/ui/assets/console.js"] {
        let response = server.get(path).await;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
}

/// A console request past the deadline gets a page saying so (and that a change may have
/// been made), not an empty answer: here a sign-out form whose body stops coming.
#[tokio::test]
async fn a_console_request_past_the_deadline_gets_a_page_saying_so() {
    use tokio::io::AsyncWriteExt;

    let server = server_with_access(|s| s.request_timeout_secs = 1).await;
    let mut console = ConsoleClient::new(&server);
    let signed_in = console.sign_in(ADMIN).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let cookie = console.cookie.clone().expect("session cookie");

    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /ui/logout HTTP/1.1\r\nhost: test\r\ncookie: {cookie}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ncsrf="
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let text = crate::common::raw_http::one_answer(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.contains("content-type: text/html")
            && text.contains("Took too long")
            && text.contains("within 1 s"),
        "{text}"
    );
}
