//! Single flag evaluations (`POST /api/v1/feature-flags/evaluate` and
//! `POST /ofrep/v1/evaluate/flags/{key}`) are answered ahead of the router
//! (`api/http/direct.rs`); the same request with a query string goes through the router to the
//! routed handler (neither route reads a query). Both must decide alike — authentication,
//! scopes, body limit, media type, JSON rules, OFREP's error shapes — so each case is asked
//! both ways and the answers compared; refusals must be recorded once per request either way.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::authorization::{ADMIN, beta_flag, denials, token};
use crate::common::{TestServer, raw_http};
use crate::connections::within;
use crate::effective_direct::decision;

/// The headers that carry a decision.
const COMPARED: [&str; 4] = [
    "content-type",
    "www-authenticate",
    "summit-stale",
    "retry-after",
];

/// A smaller body limit than the default, so the 413 case is cheap.
const BODY_LIMIT: usize = 4096;

struct Case {
    path: &'static str,
    credential: Option<String>,
    content_type: &'static str,
    body: String,
    expected: u16,
}

fn case(
    path: &'static str,
    credential: Option<&str>,
    body: impl Into<String>,
    expected: u16,
) -> Case {
    Case {
        path,
        credential: credential.map(str::to_owned),
        content_type: "application/json",
        body: body.into(),
        expected,
    }
}

async fn ask(
    server: &TestServer,
    path: &str,
    case: &Case,
) -> (u16, BTreeMap<&'static str, String>, Value) {
    let mut request = server
        .client
        .request(Method::POST, server.url(path))
        .header("content-type", case.content_type)
        .body(case.body.clone());
    if let Some(credential) = &case.credential {
        request = request.bearer_auth(credential);
    }
    decision(request.send().await.expect("request"), &COMPARED).await
}

async fn server_with_flag() -> (TestServer, String) {
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        s.max_body_bytes = BODY_LIMIT;
    })
    .await;
    server.put_flag_as(ADMIN, "beta", beta_flag()).await;
    let staging = token(
        &server,
        "staging-reader",
        &["config-reader"],
        json!({"environments": ["staging"]}),
    )
    .await;
    (server, staging)
}

#[tokio::test]
async fn direct_flag_evaluations_decide_as_the_routed_handlers_do() {
    let (server, staging) = server_with_flag().await;
    let staging = Some(staging.as_str());
    let admin = Some(ADMIN);
    let rest = "/api/v1/feature-flags/evaluate";
    let ofrep = "/ofrep/v1/evaluate/flags/beta";
    let oversized = format!(
        r#"{{"flagKey": "beta", "context": {{"targetingKey": "{}"}}}}"#,
        "x".repeat(BODY_LIMIT)
    );
    let mut cases = vec![
        // REST
        case(
            rest,
            admin,
            r#"{"flagKey": "beta", "environment": "staging", "context": {"targetingKey": "u1"}}"#,
            200,
        ),
        case(
            rest,
            admin,
            r#"{"flagKey": "beta", "context": {"targetingKey": "u1"}}"#,
            200,
        ),
        case(rest, None, r#"{"flagKey": "beta"}"#, 401),
        case(rest, Some("not-a-token"), r#"{"flagKey": "beta"}"#, 401),
        case(
            rest,
            staging,
            r#"{"flagKey": "beta", "environment": "staging"}"#,
            200,
        ),
        case(
            rest,
            staging,
            r#"{"flagKey": "beta", "context": {"targetingKey": "u1"}}"#,
            403,
        ),
        case(
            rest,
            staging,
            r#"{"flagKey": "beta", "environment": "production"}"#,
            403,
        ),
        case(
            rest,
            admin,
            r#"{"flagKey": "beta", "flagKey": "beta"}"#,
            400,
        ),
        case(
            rest,
            admin,
            r#"{"flagKey": "beta", "context": {"a": 1, "a": 2}}"#,
            400,
        ),
        case(rest, admin, r#"{"flagKey": "beta", "#, 400),
        case(rest, admin, "", 400),
        case(rest, admin, r#"{"flagKey": "beta", "colour": "red"}"#, 400),
        case(rest, admin, r#"{"flagKey": "Bad!"}"#, 400),
        case(
            rest,
            admin,
            r#"{"flagKey": "beta", "environment": "Nope!"}"#,
            400,
        ),
        case(rest, admin, r#"{"flagKey": "gamma"}"#, 404),
        case(rest, admin, oversized.clone(), 413),
        // OFREP
        case(
            ofrep,
            admin,
            r#"{"context": {"targetingKey": "u1", "environment": "staging"}}"#,
            200,
        ),
        case(ofrep, admin, "", 200),
        case(ofrep, None, "{}", 401),
        case(
            ofrep,
            staging,
            r#"{"context": {"environment": "staging"}}"#,
            200,
        ),
        case(
            ofrep,
            staging,
            r#"{"context": {"targetingKey": "u1"}}"#,
            403,
        ),
        case(ofrep, admin, r#"{"context": "#, 400),
        case(ofrep, admin, r#"{"context": {}, "colour": 1}"#, 400),
        case(ofrep, admin, r#"{"context": {"environment": 3}}"#, 400),
        case("/ofrep/v1/evaluate/flags/gamma", admin, "{}", 404),
        case("/ofrep/v1/evaluate/flags/Bad!", admin, "{}", 404),
        case("/ofrep/v1/evaluate/flags/be%74a", admin, "{}", 200),
        case("/ofrep/v1/evaluate/flags/%FF", admin, "{}", 400),
        case(ofrep, admin, oversized, 413),
    ];
    let mut text = case(rest, admin, r#"{"flagKey": "beta"}"#, 415);
    text.content_type = "text/plain";
    cases.push(text);

    for case in &cases {
        let routed_path = format!("{}?via=router", case.path);
        let (direct, direct_headers, body) = ask(&server, case.path, case).await;
        let (routed, routed_headers, routed_body) = ask(&server, &routed_path, case).await;
        let what = format!(
            "{} {}",
            case.path,
            case.body.chars().take(80).collect::<String>()
        );
        assert_eq!(direct, case.expected, "{what}: {body}");
        assert_eq!(routed, case.expected, "routed {what}: {routed_body}");
        assert_eq!(direct_headers, routed_headers, "{what}");
        assert_eq!(body, routed_body, "{what}");
        if case.expected == 400 && case.path == rest {
            assert!(body["field"].is_string(), "{what}: {body}");
        }
        // The marker that carries a refusal to the recorder never reaches the client.
        assert!(
            body.get("summit-denial-recorded").is_none(),
            "{what}: {body}"
        );
    }

    // Each refusal recorded once per request, under the route's template, either way.
    let refused = denials(&server).await;
    let count = |operation: &str| {
        refused
            .iter()
            .filter(|d| d["operation"] == operation)
            .count()
    };
    let refusals = |path: &str| {
        2 * cases
            .iter()
            .filter(|c| c.path == path && c.expected == 403)
            .count()
    };
    assert_eq!(
        count("POST /api/v1/feature-flags/evaluate"),
        refusals(rest),
        "{refused:?}"
    );
    assert_eq!(
        count("POST /ofrep/v1/evaluate/flags/{key}"),
        refusals(ofrep),
        "{refused:?}"
    );
}

/// A body that stops coming meets the routed handlers' deadline (a 503 problem) on either path: the
/// direct path starts no timer for an answer that is ready at its first poll, so it must still
/// start one for an answer that is not.
#[tokio::test]
async fn a_stalled_body_meets_the_request_deadline_either_way() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;

    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        s.request_timeout_secs = 1;
    })
    .await;
    server.put_flag_as(ADMIN, "beta", beta_flag()).await;
    for path in [
        "/api/v1/feature-flags/evaluate",
        "/api/v1/feature-flags/evaluate?routed",
        "/ofrep/v1/evaluate/flags/beta",
        "/ofrep/v1/evaluate/flags/beta?routed",
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        // Headers whole, the body cut short: 100 bytes promised, 11 sent.
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {ADMIN}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"flagKey\":"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        let started = Instant::now();
        let text = within(path, raw_http::one_answer(&mut stream)).await;
        assert!(text.starts_with("HTTP/1.1 503"), "{path}: {text}");
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{path}: answered before the deadline"
        );
        assert!(
            text.contains("content-type: application/problem+json")
                && text.contains(r#""code":"unavailable""#)
                && text.contains("did not complete within 1 s"),
            "{path}: a problem saying why: {text}"
        );
    }
}
