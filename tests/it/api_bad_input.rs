//! Bad input gets a clear 4xx problem+json naming the field, and changes nothing.

use crate::common;

use common::{TestServer, meta};
use serde_json::{Value, json};

fn valid_body() -> Value {
    json!({"config": {"timeout": 30}, "metadata": meta("alice", "ok")})
}

/// Everything a bad request could have changed: versions, audit, revision.
async fn snapshot(server: &TestServer) -> (Value, Value, Value) {
    let (_, versions) = server.get_json("/api/v1/configs/svc/versions").await;
    let (_, audit) = server.get_json("/api/v1/audit").await;
    let (_, health) = server.get_json("/health").await;
    (versions, audit, health["revision"].clone())
}

async fn assert_problem(response: reqwest::Response, status: u16, field: Option<&str>) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status);
    assert!(problem["code"].is_string());
    assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    if let Some(field) = field {
        assert_eq!(problem["field"], field, "{problem}");
    }
    problem
}

#[tokio::test]
async fn malformed_wrong_typed_and_unknown_fields_are_refused_naming_the_field() {
    let server = TestServer::spawn().await;
    server.put_config("svc", valid_body()).await;
    let before = snapshot(&server).await;

    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("malformed", r#"{"config": {"timeout": 30},"#.into(), Some("/")),
        ("not json", "timeout=30".into(), Some("/")),
        ("empty", String::new(), Some("/")),
        ("trailing garbage", r#"{"config": {}, "metadata": {"actor": "a"}} x"#.into(), Some("/")),
        ("wrong type", r#"{"config": {}, "metadata": {"actor": 5}}"#.into(), Some("/metadata/actor")),
        ("unknown field", r#"{"config": {}, "metadata": {"actor": "a"}, "colour": 1}"#.into(), Some("/colour")),
        ("unknown nested field", r#"{"config": {}, "metadata": {"actor": "a", "who": 1}}"#.into(), Some("/metadata/who")),
        ("missing config", r#"{"metadata": {"actor": "a"}}"#.into(), Some("/config")),
        ("missing metadata", r#"{"config": {}}"#.into(), Some("/metadata")),
        ("config not an object", r#"{"config": [1], "metadata": {"actor": "a"}}"#.into(), Some("/config")),
        ("empty actor", r#"{"config": {}, "metadata": {"actor": " "}}"#.into(), Some("/metadata/actor")),
        ("bad environment name", r#"{"config": {}, "overrides": {"Prod": {}}, "metadata": {"actor": "a"}}"#.into(), Some("/overrides/Prod")),
        ("negative expectedVersion", r#"{"config": {}, "metadata": {"actor": "a"}, "expectedVersion": -1}"#.into(), Some("/expectedVersion")),
        ("canary percent", r#"{"config": {}, "canary": {"environment": "p", "trafficPercent": 10.123, "config": {}, "startAt": "2026-01-01T00:00:00Z"}, "metadata": {"actor": "a"}}"#.into(), Some("/canary/trafficPercent")),
        ("canary date", r#"{"config": {}, "canary": {"environment": "p", "trafficPercent": 10, "config": {}, "startAt": "yesterday"}, "metadata": {"actor": "a"}}"#.into(), Some("/canary/startAt")),
        ("variant weight", r#"{"config": {}, "abTest": {"name": "t", "variants": [{"name": "a", "weight": 1.5, "config": {}}]}, "metadata": {"actor": "a"}}"#.into(), Some("/abTest/variants/0/weight")),
        ("bad secret ref", r#"{"config": {"p": {"$secret": "nope"}}, "metadata": {"actor": "a"}}"#.into(), Some("/config/p")),
        ("unknown secret provider", r#"{"config": {"p": {"$secret": "vault:x"}}, "metadata": {"actor": "a"}}"#.into(), Some("/config/p")),
    ];
    for (name, body, field) in cases {
        let response = server
            .client
            .put(server.url("/api/v1/configs/svc"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400, field).await;
        assert_eq!(problem["code"], "invalid_input", "{name}: {problem}");
    }
    assert_eq!(snapshot(&server).await, before, "bad input changed nothing");
}

#[tokio::test]
async fn invalid_ids_are_refused_before_the_body_is_read() {
    let server = TestServer::spawn().await;
    for id in ["Upper", "-lead", "a%20b", &"x".repeat(129)] {
        let response = server
            .client
            .put(server.url(&format!("/api/v1/configs/{id}")))
            .body("{")
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, Some("configId")).await;
        let response = server.get(&format!("/api/v1/configs/{id}/effective")).await;
        assert_problem(response, 400, Some("configId")).await;
    }
    let response = server.get("/api/v1/configs/svc/versions/zero").await;
    assert_problem(response, 400, Some("version")).await;
    let response = server
        .get("/api/v1/configs/svc/effective?environment=Prod")
        .await;
    assert_problem(response, 400, Some("environment")).await;
    // Ids the core checks itself: a segment that is not even UTF-8 is a problem document too.
    for path in [
        "/api/v1/deployments/%FF",
        "/api/v1/webhooks/%FF",
        "/api/v1/webhooks/%FF/deliveries",
    ] {
        assert_problem(server.get(path).await, 400, Some("path")).await;
    }
}

#[tokio::test]
async fn bad_query_parameters_name_the_parameter() {
    let server = TestServer::spawn().await;
    server.put_config("svc", valid_body()).await;
    let cases = [
        ("/api/v1/configs/svc/versions?limit=abc", "limit"),
        ("/api/v1/configs/svc/versions?limit=0", "limit"),
        ("/api/v1/configs/svc/versions?limit=501", "limit"),
        (
            "/api/v1/configs/svc/effective?assignmentValue=1.5",
            "assignmentValue",
        ),
        (
            "/api/v1/configs/svc/effective?assignmentValue=x",
            "assignmentValue",
        ),
        (
            "/api/v1/configs/svc/effective?assignmentKey=a&assignmentValue=0.1",
            "assignmentValue",
        ),
        (
            "/api/v1/configs/svc/effective?resolveSecrets=maybe",
            "resolveSecrets",
        ),
        ("/api/v1/configs/svc/effective?bogus=1", "bogus"),
        ("/api/v1/configs/svc/diff?from=x", "from"),
        ("/api/v1/configs?prefix=a&x=1", "x"),
    ];
    for (path, field) in cases {
        let response = server.get(path).await;
        let problem = assert_problem(response, 400, None).await;
        assert!(
            problem["field"].as_str().unwrap().contains(field),
            "{path}: {problem}"
        );
    }
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_change_nothing() {
    let server = TestServer::spawn_with(|s| s.max_body_bytes = 64 * 1024).await;
    server.put_config("svc", valid_body()).await;
    let before = snapshot(&server).await;
    let big = json!({"config": {"blob": "x".repeat(70 * 1024)}, "metadata": meta("a", "")});
    let response = server
        .client
        .put(server.url("/api/v1/configs/svc"))
        .json(&big)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 413, None).await;
    assert_eq!(problem["code"], "payload_too_large");
    assert!(problem["detail"].as_str().unwrap().contains("65536"));

    // Chunked, without a Content-Length: refused the same way.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let stream = futures::stream::iter(chunks);
    let response = server
        .client
        .put(server.url("/api/v1/configs/svc"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, None).await;
    assert_eq!(snapshot(&server).await, before);
}

#[tokio::test]
async fn default_body_limit_is_one_mebibyte() {
    let server = TestServer::spawn().await;
    let big = json!({"config": {"blob": "x".repeat(1024 * 1024)}, "metadata": meta("a", "")});
    let response = server
        .client
        .put(server.url("/api/v1/configs/svc"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, None).await;
    let fits = json!({"config": {"blob": "x".repeat(1000 * 1000)}, "metadata": meta("a", "")});
    let response = server
        .client
        .put(server.url("/api/v1/configs/svc"))
        .json(&fits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn json_nested_deeper_than_64_is_refused() {
    let server = TestServer::spawn().await;
    let nest = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    // The body object is level 1 and "config" level 2: 62 more arrays reach exactly 64.
    let ok = format!(
        r#"{{"config": {{"a": {}}}, "metadata": {{"actor": "a"}}}}"#,
        nest(62)
    );
    let (status, body) = server.put_raw("/api/v1/configs/svc", ok).await;
    assert_eq!(status, 201, "{body}");
    let deep = format!(
        r#"{{"config": {{"a": {}}}, "metadata": {{"actor": "a"}}}}"#,
        nest(63)
    );
    let (status, problem) = server.put_raw("/api/v1/configs/svc", deep).await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().contains("64"));
    let very_deep = nest(100_000);
    let (status, _) = server.put_raw("/api/v1/configs/svc", very_deep).await;
    assert_eq!(
        status, 400,
        "deep input is refused without exhausting the stack"
    );
    let (_, versions) = server.get_json("/api/v1/configs/svc/versions").await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn schema_violations_and_invalid_schemas_are_422_with_pointers() {
    let server = TestServer::spawn().await;
    let (status, problem) = server
        .put_json(
            "/api/v1/configs/svc/schema",
            &json!({"schema": {"type": "bogus"}, "metadata": meta("a", "")}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["code"], "invalid_schema");
    let (status, problem) = server
        .put_json(
            "/api/v1/configs/svc/schema",
            &json!({"schema": "not a schema", "metadata": meta("a", "")}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    server
        .put_json(
            "/api/v1/configs/svc/schema",
            &json!({"schema": {"type": "object", "properties": {"timeout": {"type": "integer"}}, "additionalProperties": false}, "metadata": meta("a", "")}),
        )
        .await;
    let (status, problem) = server
        .put_json(
            "/api/v1/configs/svc",
            &json!({"config": {"timeout": "30", "extra": 1}, "metadata": meta("a", "")}),
        )
        .await;
    assert_eq!(status, 422);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert!(pointers.contains(&"/timeout"), "{problem}");
    assert!(
        pointers.contains(&"/"),
        "additionalProperties is reported at the root: {problem}"
    );
    assert_eq!(server.get_json("/api/v1/configs/svc").await.0, 404);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problems() {
    let server = TestServer::spawn().await;
    let response = server.get("/api/v1/nothing-here").await;
    assert_problem(response, 404, None).await;
    let response = server
        .client
        .patch(server.url("/api/v1/configs/svc"))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 405, None).await;
    assert_eq!(problem["code"], "method_not_allowed");
}

#[tokio::test]
async fn conflicting_expected_version_and_if_match_are_refused() {
    let server = TestServer::spawn().await;
    server.put_config("svc", valid_body()).await;
    let mut body = valid_body();
    body["expectedVersion"] = json!(1);
    let response = server
        .client
        .put(server.url("/api/v1/configs/svc"))
        .header("if-match", "\"2\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, Some("/expectedVersion")).await;
    let response = server
        .client
        .put(server.url("/api/v1/configs/svc"))
        .header("if-match", "soon")
        .json(&valid_body())
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, Some("If-Match")).await;
}

/// PUTs `body` as JSON text to `path`, with `content_type` when given.
async fn put_text(
    server: &TestServer,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> reqwest::Response {
    send_text(server, reqwest::Method::PUT, path, content_type, body).await
}

/// Sends `body` as text to `path` with `method`, with `content_type` when given.
async fn send_text(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = server
        .client
        .request(method, server.url(path))
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

/// POSTs `body` as JSON text to `path`.
async fn post_text(server: &TestServer, path: &str, body: &str) -> reqwest::Response {
    send_text(
        server,
        reqwest::Method::POST,
        path,
        Some("application/json"),
        body,
    )
    .await
}

#[tokio::test]
async fn duplicate_member_names_are_refused_naming_the_pointer_and_change_nothing() {
    let server = TestServer::spawn().await;
    server.put_config("svc", valid_body()).await;
    let before = snapshot(&server).await;

    let cases = [
        (
            "top level",
            r#"{"config": {"timeout": 1}, "config": {"timeout": 2}, "metadata": {"actor": "a"}}"#,
            "/config",
        ),
        (
            "nested in config",
            r#"{"config": {"db": {"host": "a", "port": 1, "host": "b"}}, "metadata": {"actor": "a"}}"#,
            "/config/db/host",
        ),
        (
            "inside overrides",
            r#"{"config": {}, "overrides": {"prod": {"timeout": 1, "timeout": 2}}, "metadata": {"actor": "a"}}"#,
            "/overrides/prod/timeout",
        ),
        (
            "inside an array element",
            r#"{"config": {"servers": [{"port": 1}, {"port": 1, "port": 2}]}, "metadata": {"actor": "a"}}"#,
            "/config/servers/1/port",
        ),
        (
            "the same name once escaped",
            r#"{"config": {"a": 1, "\u0061": 2}, "metadata": {"actor": "a"}}"#,
            "/config/a",
        ),
        (
            "names that need pointer escapes",
            r#"{"config": {"a/b": {"~": 1, "~": 2}}, "metadata": {"actor": "a"}}"#,
            "/config/a~1b/~0",
        ),
    ];
    for (name, body, pointer) in cases {
        let response = put_text(
            &server,
            "/api/v1/configs/svc",
            Some("application/json"),
            body,
        )
        .await;
        let problem = assert_problem(response, 400, Some(pointer)).await;
        assert_eq!(problem["code"], "invalid_input", "{name}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("duplicate"),
            "{name}: {problem}"
        );
    }
    assert_eq!(snapshot(&server).await, before, "no duplicate was stored");

    // Flag definitions are free-form JSON too.
    let response = put_text(
        &server,
        "/api/v1/feature-flags/beta",
        Some("application/json"),
        r#"{"type": "boolean", "variants": {"on": true, "on": false}, "defaultVariant": "on", "metadata": {"actor": "a"}}"#,
    )
    .await;
    assert_problem(response, 400, Some("/variants/on")).await;
    assert_eq!(server.get_json("/api/v1/feature-flags/beta").await.0, 404);
}

#[tokio::test]
async fn an_evaluation_context_with_a_repeated_member_is_refused_naming_it() {
    let server = TestServer::spawn().await;
    let cases = [
        (
            "/api/v1/feature-flags/evaluate",
            r#"{"flagKey": "beta", "context": {"country": "de", "tier": 1, "country": "fr"}}"#,
            "/context/country",
        ),
        (
            "/api/v1/feature-flags/evaluate/batch",
            r#"{"context": {"targetingKey": "u1", "targetingKey": "u2"}}"#,
            "/context/targetingKey",
        ),
        (
            "/api/v1/feature-flags/evaluate",
            r#"{"flagKey": "beta", "context": {"a": {"b": 1, "b": 2}}}"#,
            "/context/a/b",
        ),
    ];
    for (path, body, pointer) in cases {
        let response = post_text(&server, path, body).await;
        let problem = assert_problem(response, 400, Some(pointer)).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("duplicate"),
            "{body}: {problem}"
        );
    }
    // OFREP answers a body it cannot read in its own shape.
    let response = post_text(
        &server,
        "/ofrep/v1/evaluate/flags/beta",
        r#"{"context": {"country": "de", "country": "fr"}}"#,
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "PARSE_ERROR", "{body}");
    assert!(
        body["errorDetails"].as_str().unwrap().contains("duplicate"),
        "{body}"
    );
}

#[tokio::test]
async fn the_same_member_name_in_different_objects_is_not_a_duplicate() {
    let server = TestServer::spawn().await;
    let body = r#"{"config": {"a": {"x": 1}, "b": {"x": 2}, "x": [{"x": 3}, {"x": 4}]},
        "overrides": {"prod": {"x": 5}}, "metadata": {"actor": "a"}}"#;
    let response = put_text(
        &server,
        "/api/v1/configs/svc",
        Some("application/json"),
        body,
    )
    .await;
    assert_eq!(response.status(), 201);
    // An object with many members (checked with a set rather than a scan) still finds its one
    // duplicate.
    let members: Vec<String> = (0..100).map(|n| format!(r#""k{n}": {n}"#)).collect();
    let many = format!(
        r#"{{"config": {{{}, "k7": 0}}, "metadata": {{"actor": "a"}}}}"#,
        members.join(", ")
    );
    let response = put_text(
        &server,
        "/api/v1/configs/svc",
        Some("application/json"),
        &many,
    )
    .await;
    assert_problem(response, 400, Some("/config/k7")).await;
}

#[tokio::test]
async fn a_body_declared_as_another_media_type_is_415_and_changes_nothing() {
    let server = TestServer::spawn().await;
    server.put_config("svc", valid_body()).await;
    let before = snapshot(&server).await;
    let body = valid_body().to_string();
    for content_type in [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "application/xml",
        "text/json",
    ] {
        let response = put_text(&server, "/api/v1/configs/svc", Some(content_type), &body).await;
        let problem = assert_problem(response, 415, None).await;
        assert_eq!(
            problem["code"], "unsupported_media_type",
            "{content_type}: {problem}"
        );
    }
    let response = server
        .client
        .delete(server.url("/api/v1/configs/svc"))
        .header("content-type", "text/plain")
        .body(json!({"metadata": meta("a", "retire")}).to_string())
        .send()
        .await
        .unwrap();
    assert_problem(response, 415, None).await;
    assert_eq!(
        snapshot(&server).await,
        before,
        "a refused body changed nothing"
    );
}

#[tokio::test]
async fn json_media_types_with_parameters_and_a_missing_content_type_are_accepted() {
    let server = TestServer::spawn().await;
    let body = valid_body().to_string();
    for content_type in [
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        Some("application/vnd.summit-config+json"),
        None,
    ] {
        let response = put_text(&server, "/api/v1/configs/svc", content_type, &body).await;
        assert_eq!(response.status(), 201, "{content_type:?}");
    }
    let (_, versions) = server.get_json("/api/v1/configs/svc/versions").await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 4);
}

/// A body that ends before its `Content-Length` (the client shut its side down) is a 400 that
/// says the body could not be read, and changes nothing: on a routed write and on an
/// evaluation answered ahead of the router, which read bodies alike.
#[tokio::test]
async fn a_body_cut_short_is_a_400_and_changes_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::spawn().await;
    server.put_config("svc", valid_body()).await;
    let before = snapshot(&server).await;
    for (method, path) in [
        ("PUT", "/api/v1/configs/svc"),
        ("POST", "/ofrep/v1/evaluate/flags/some-flag"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 200\r\n\r\n{{\"config\": {{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(
            answer.contains("Failed to buffer the request body"),
            "{path}: {answer}"
        );
    }
    assert_eq!(snapshot(&server).await, before);
}

/// PostgreSQL's text refuses NUL, and writes commit in batches: one such value reaching the
/// store would fail every write of its batch. The core refuses it first, on every backend;
/// with access control on, what the client called itself is kept as "on behalf of" and is
/// checked as an actor is.
#[tokio::test]
async fn nul_characters_in_free_text_are_refused_naming_the_field_on_every_backend() {
    const ADMIN: &str = "admin-token-for-the-nul-tests-0123456789";
    let mut urls = vec![None];
    if let Some(url) = common::postgres::test_database_url().await {
        urls.push(Some(url));
    }
    for url in urls {
        let postgres = url.is_some();
        let server = TestServer::spawn_with(|s| {
            s.no_auth = false;
            s.admin_token = Some(ADMIN.into());
            if let Some(url) = url {
                s.database_url = url;
            }
        })
        .await;
        let send = |method: reqwest::Method, path: &str, body: Value| {
            server
                .client
                .request(method, server.url(path))
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
        };
        let versions = || async {
            let response = send(
                reqwest::Method::GET,
                "/api/v1/configs/svc/versions",
                json!({}),
            );
            response.await.unwrap().json::<Value>().await.unwrap()
        };
        let created = send(reqwest::Method::PUT, "/api/v1/configs/svc", valid_body());
        assert_eq!(created.await.unwrap().status(), 201);
        let registered = send(
            reqwest::Method::POST,
            "/api/v1/registry/register",
            json!({"serviceName": "payments", "instanceId": "p-1",
                    "serviceUrl": "http://127.0.0.1:9001"}),
        );
        assert_eq!(registered.await.unwrap().status(), 201);
        let before = versions().await;

        let named = json!({"config": {"a": 1}, "metadata": {"actor": "alice\u{0}"}});
        let response = send(reqwest::Method::PUT, "/api/v1/configs/svc", named);
        assert_problem(response.await.unwrap(), 400, Some("/metadata/actor")).await;
        let heartbeat = "/api/v1/registry/services/payments/instances/p-1/heartbeat";
        let beat = send(
            reqwest::Method::PUT,
            heartbeat,
            json!({"status": "warning", "output": "disk\u{0}full"}),
        );
        assert_problem(beat.await.unwrap(), 400, Some("/output")).await;
        let gone = send(reqwest::Method::DELETE, "/api/v1/webhooks/%00", json!({}));
        assert_problem(gone.await.unwrap(), 404, None).await;
        assert_eq!(versions().await, before, "postgres: {postgres}");

        let beat = send(
            reqwest::Method::PUT,
            heartbeat,
            json!({"status": "warning", "output": "disk full"}),
        );
        assert_eq!(beat.await.unwrap().status(), 200, "postgres: {postgres}");
    }
}

/// Every view is rendered and kept: the budget counts what a view can grow to with its
/// patches, not the base config alone (a tiny base with large variant patches rendered about
/// 130 MB of views from a 640 KB body).
#[tokio::test]
async fn a_version_whose_views_would_exceed_the_rendering_budget_is_refused() {
    let server = TestServer::spawn().await;
    let overrides: serde_json::Map<String, Value> =
        (0..64).map(|n| (format!("e{n}"), json!({}))).collect();
    let variants: Vec<Value> = (0..32)
        .map(|n| json!({"name": format!("v{n}"), "weight": 1, "config": {"blob": "x".repeat(20_000)}}))
        .collect();
    let body = json!({
        "config": {},
        "overrides": overrides,
        "abTest": {"name": "big", "variants": variants},
        "metadata": meta("alice", "too much"),
    });
    let response = server
        .client
        .put(server.url("/api/v1/configs/wide"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 400, Some("/config")).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("rendering budget"),
        "{problem}"
    );
    let (status, _) = server.get_json("/api/v1/configs/wide").await;
    assert_eq!(status, 404, "nothing was written");
}
