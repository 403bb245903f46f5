//! `GET /api/v1/configs/{id}/effective` is answered ahead of the router
//! (`api/http/effective.rs`, `direct`), `HEAD` on the same path by the routed handler. Both
//! must decide alike: each case is asked both ways and the answers compared, and the direct
//! path must record a refusal once, as the routed one does. (That it is counted under its route
//! template is checked against the real binary in `metrics.rs`: the metrics registry is one per
//! process, shared by the tests running beside this one.)

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::authorization::{ADMIN, call, denials, secured, token};
use crate::common::{TestServer, meta};

/// The headers that carry a decision.
const COMPARED: [&str; 5] = [
    "etag",
    "content-type",
    "www-authenticate",
    "cache-control",
    "summit-stale",
];

async fn ask(
    server: &TestServer,
    method: Method,
    path: &str,
    credential: Option<&str>,
    if_none_match: Option<&str>,
) -> (u16, BTreeMap<&'static str, String>, Value) {
    let mut request = server.client.request(method, server.url(path));
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    decision(request.send().await.expect("request"), &COMPARED).await
}

/// What an answer decided: its status, the `compared` headers it carries and its JSON body
/// (`null` when it has none), for comparing a direct answer with the routed one.
pub(crate) async fn decision(
    response: reqwest::Response,
    compared: &[&'static str],
) -> (u16, BTreeMap<&'static str, String>, Value) {
    let status = response.status().as_u16();
    let headers = compared
        .iter()
        .filter_map(|name| {
            let value = response.headers().get(*name)?.to_str().ok()?.to_owned();
            Some((*name, value))
        })
        .collect();
    let body = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, body)
}

async fn denied_count(server: &TestServer, operation: &str) -> usize {
    denials(server)
        .await
        .iter()
        .filter(|d| d["operation"] == operation)
        .count()
}

#[tokio::test]
async fn the_direct_effective_read_decides_as_the_routed_handler_does() {
    let server = secured("").await;
    for id in ["payments.api", "checkout"] {
        let (status, body) = call(
            &server,
            ADMIN,
            Method::PUT,
            &format!("/api/v1/configs/{id}"),
            Some(json!({
                "config": {"timeoutMs": 100},
                "overrides": {"production": {"timeoutMs": 250}},
                "metadata": meta("admin", "create")
            })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let scoped = token(
        &server,
        "payments-production-reader",
        &["config-reader"],
        json!({"configPrefixes": ["payments."], "environments": ["production"]}),
    )
    .await;
    let (_, admin_read, _) = ask(
        &server,
        Method::GET,
        "/api/v1/configs/payments.api/effective?environment=production",
        Some(ADMIN),
        None,
    )
    .await;
    let etag = admin_read["etag"].clone();

    let cases: Vec<(&str, Option<&str>, Option<&str>, u16)> = vec![
        (
            "/api/v1/configs/payments.api/effective?environment=production",
            Some(ADMIN),
            None,
            200,
        ),
        (
            "/api/v1/configs/payments.api/effective?environment=production",
            Some(ADMIN),
            Some(&etag),
            304,
        ),
        ("/api/v1/configs/payments.api/effective", None, None, 401),
        (
            "/api/v1/configs/payments.api/effective",
            Some("not-a-token"),
            None,
            401,
        ),
        // Scopes: the id, the environment, and a percent-encoded id inside the prefix.
        (
            "/api/v1/configs/payments.api/effective?environment=production",
            Some(&scoped),
            None,
            200,
        ),
        (
            "/api/v1/configs/checkout/effective?environment=production",
            Some(&scoped),
            None,
            403,
        ),
        (
            "/api/v1/configs/payments.api/effective?environment=staging",
            Some(&scoped),
            None,
            403,
        ),
        (
            "/api/v1/configs/payments.api/effective",
            Some(&scoped),
            None,
            403,
        ),
        (
            "/api/v1/configs/payments%2Eapi/effective?environment=production",
            Some(&scoped),
            None,
            200,
        ),
        // Bad input, before any scope: 400 naming the field.
        ("/api/v1/configs/Bad!/effective", Some(&scoped), None, 400),
        ("/api/v1/configs/%FF/effective", Some(ADMIN), None, 400),
        (
            "/api/v1/configs/payments.api/effective?environment=production&colour=red",
            Some(ADMIN),
            None,
            400,
        ),
        (
            "/api/v1/configs/payments.api/effective?assignmentKey=a&assignmentValue=0.5",
            Some(ADMIN),
            None,
            400,
        ),
        (
            "/api/v1/configs/payments.api/effective?resolveSecrets=true",
            Some(&scoped),
            None,
            403,
        ),
        (
            "/api/v1/configs/payments.nope/effective",
            Some(ADMIN),
            None,
            404,
        ),
        // Not the direct path's shape: the router answers either way.
        (
            "/api/v1/configs/payments.api/effective/",
            Some(ADMIN),
            None,
            404,
        ),
        ("/api/v1/configs//effective", Some(ADMIN), None, 400),
    ];
    for (path, credential, if_none_match, expected) in cases {
        let (direct, direct_headers, body) =
            ask(&server, Method::GET, path, credential, if_none_match).await;
        let (routed, routed_headers, _) =
            ask(&server, Method::HEAD, path, credential, if_none_match).await;
        assert_eq!(direct, expected, "GET {path}: {body}");
        assert_eq!(routed, expected, "HEAD {path}");
        assert_eq!(direct_headers, routed_headers, "{path}");
        if expected == 400 {
            assert!(body["field"].is_string(), "GET {path}: {body}");
        }
        if expected == 200 {
            assert_eq!(body["configId"], "payments.api", "{path}");
            assert_eq!(body["effectiveConfig"]["timeoutMs"], 250, "{path}");
        }
    }
}

#[tokio::test]
async fn the_direct_effective_read_records_each_refusal_once() {
    let server = secured("").await;
    let (status, body) = call(
        &server,
        ADMIN,
        Method::PUT,
        "/api/v1/configs/checkout",
        Some(json!({"config": {"retries": 3}, "metadata": meta("admin", "create")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let outsider = token(
        &server,
        "payments-reader",
        &["config-reader"],
        json!({"configPrefixes": ["payments."]}),
    )
    .await;
    let operation = "GET /api/v1/configs/{id}/effective";
    assert_eq!(denied_count(&server, operation).await, 0);

    let (status, _, body) = ask(
        &server,
        Method::GET,
        "/api/v1/configs/checkout/effective",
        Some(&outsider),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // The marker that carries the refusal to the recorder never reaches the client.
    assert!(body.get("summit-denial-recorded").is_none(), "{body}");
    let (status, _, _) = ask(
        &server,
        Method::GET,
        "/api/v1/configs/checkout/effective",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200);

    assert_eq!(denied_count(&server, operation).await, 1);
}
