//! The OpenFeature Remote Evaluation Protocol against the real server: the `open-feature` SDK
//! with the `open-feature-ofrep` provider evaluating boolean, string, number and object flags
//! with targeting, and the protocol's status codes, error codes and bulk ETag checked directly.

use crate::common;

use common::{TestServer, body_of};
use open_feature::{EvaluationContext, OpenFeature, StructValue, Value as OfValue};
use open_feature_ofrep::{OfrepOptions, OfrepProvider};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

/// Flags of every type, each with targeting in `production`.
async fn seed(server: &TestServer) {
    server
        .put_flag(
            "dark-mode",
            json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                   "environments": {"production": {"rules": [
                       {"id": "pro", "conditions": [{"attribute": "plan", "operator": "eq", "value": "pro"}],
                        "variant": "on"}]}}}),
        )
        .await;
    server
        .put_flag(
            "banner-text",
            json!({"type": "string", "variants": {"plain": "Welcome", "sale": "50% off"},
                   "defaultVariant": "plain",
                   "environments": {"production": {"rules": [
                       {"id": "germany", "conditions": [{"attribute": "country", "operator": "in", "value": ["de", "at"]}],
                        "variant": "sale"}]}}}),
        )
        .await;
    server
        .put_flag(
            "max-items",
            json!({"type": "number", "variants": {"few": 10, "many": 250, "ratio": 0.75}, "defaultVariant": "few",
                   "environments": {"production": {"rules": [
                       {"id": "big", "conditions": [{"attribute": "seats", "operator": "gte", "value": 100}],
                        "variant": "many"},
                       {"id": "partial", "targetKeys": ["ratio-user"], "variant": "ratio"}]}}}),
        )
        .await;
    server
        .put_flag(
            "limits",
            json!({"type": "object", "variants": {"small": {"rps": 5, "burst": 10}, "large": {"rps": 500, "burst": 1000}},
                   "defaultVariant": "small",
                   "environments": {"production": {"rules": [
                       {"id": "new-app", "conditions": [{"attribute": "appVersion", "operator": "semver_gt", "value": "2.0.0"}],
                        "variant": "large"}]}}}),
        )
        .await;
}

/// An OpenFeature client through the OFREP provider, pinned to `environment` by header.
async fn client(server: &TestServer, name: &str, environment: &str) -> open_feature::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        "summit-environment",
        HeaderValue::from_str(environment).unwrap(),
    );
    let provider = OfrepProvider::new(OfrepOptions {
        base_url: server.base.clone(),
        headers,
        ..Default::default()
    })
    .await
    .expect("provider");
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, provider).await;
    api.create_named_client(name)
}

#[tokio::test]
async fn openfeature_sdk_evaluates_every_flag_type_with_targeting() {
    let server = TestServer::spawn().await;
    seed(&server).await;
    let client = client(&server, "every-type", "production").await;
    let user = |key: &str| EvaluationContext::default().with_targeting_key(key);

    let pro = user("u1").with_custom_field("plan", "pro");
    let free = user("u2").with_custom_field("plan", "free");
    assert!(
        client
            .get_bool_value("dark-mode", Some(&pro), None)
            .await
            .unwrap()
    );
    assert!(
        !client
            .get_bool_value("dark-mode", Some(&free), None)
            .await
            .unwrap()
    );

    let german = user("u3").with_custom_field("country", "de");
    assert_eq!(
        client
            .get_string_value("banner-text", Some(&german), None)
            .await
            .unwrap(),
        "50% off"
    );
    assert_eq!(
        client
            .get_string_value("banner-text", Some(&free), None)
            .await
            .unwrap(),
        "Welcome"
    );

    let big = user("u4").with_custom_field("seats", 120);
    assert_eq!(
        client
            .get_int_value("max-items", Some(&big), None)
            .await
            .unwrap(),
        250
    );
    assert_eq!(
        client
            .get_int_value("max-items", Some(&free), None)
            .await
            .unwrap(),
        10
    );
    let ratio = user("ratio-user");
    assert_eq!(
        client
            .get_float_value("max-items", Some(&ratio), None)
            .await
            .unwrap(),
        0.75
    );

    let new_app = user("u5").with_custom_field("appVersion", "2.3.1");
    let limits: StructValue = client
        .get_struct_value("limits", Some(&new_app), None)
        .await
        .unwrap();
    assert_eq!(limits.fields.get("rps"), Some(&OfValue::Int(500)));
    let old_app = user("u6").with_custom_field("appVersion", "1.9.0");
    let limits: StructValue = client
        .get_struct_value("limits", Some(&old_app), None)
        .await
        .unwrap();
    assert_eq!(limits.fields.get("burst"), Some(&OfValue::Int(10)));

    // The variant reported to the SDK is the server's.
    let details = client
        .get_bool_details("dark-mode", Some(&pro), None)
        .await
        .unwrap();
    assert_eq!(details.variant.as_deref(), Some("on"));
}

#[tokio::test]
async fn openfeature_sdk_sees_missing_flags_and_wrong_types_as_errors() {
    let server = TestServer::spawn().await;
    seed(&server).await;
    let client = client(&server, "errors", "production").await;
    let context = EvaluationContext::default().with_targeting_key("u1");
    let missing = client
        .get_bool_value("no-such-flag", Some(&context), None)
        .await;
    assert_eq!(
        missing.unwrap_err().code,
        open_feature::EvaluationErrorCode::FlagNotFound
    );
    // A string flag read as a boolean: the SDK refuses the value rather than guessing.
    assert!(
        client
            .get_bool_value("banner-text", Some(&context), None)
            .await
            .is_err()
    );
    // The targeting of another environment comes through the header.
    let staging = self::client(&server, "staging", "staging").await;
    let pro = context.clone().with_custom_field("plan", "pro");
    assert!(
        !staging
            .get_bool_value("dark-mode", Some(&pro), None)
            .await
            .unwrap()
    );
}

async fn ofrep(server: &TestServer, path: &str, body: &str) -> (u16, Value, HeaderMap) {
    let response = server
        .client
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let headers = response.headers().clone();
    let (status, value) = body_of(response).await;
    (status, value, headers)
}

#[tokio::test]
async fn single_evaluation_follows_the_protocol() {
    let server = TestServer::spawn().await;
    seed(&server).await;
    server
        .put_flag(
            "rollout",
            json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                   "rollout": {"variant": "on", "percentage": 50}}),
        )
        .await;
    let (status, body, _) = ofrep(
        &server,
        "/ofrep/v1/evaluate/flags/dark-mode",
        r#"{"context": {"targetingKey": "u1", "plan": "pro", "environment": "production"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"key": "dark-mode", "value": true, "reason": "TARGETING_MATCH", "variant": "on",
               "metadata": {"flagVersion": 1}})
    );

    let cases = [
        (
            "/ofrep/v1/evaluate/flags/ghost",
            r#"{"context": {}}"#,
            404,
            "FLAG_NOT_FOUND",
        ),
        (
            "/ofrep/v1/evaluate/flags/rollout",
            r#"{"context": {}}"#,
            400,
            "TARGETING_KEY_MISSING",
        ),
        (
            "/ofrep/v1/evaluate/flags/dark-mode",
            r#"{"context": []}"#,
            400,
            "INVALID_CONTEXT",
        ),
        (
            "/ofrep/v1/evaluate/flags/dark-mode",
            r#"{"context": {"targetingKey": 7}}"#,
            400,
            "INVALID_CONTEXT",
        ),
        (
            "/ofrep/v1/evaluate/flags/dark-mode",
            r#"{"context": {"environment": "No Such"}}"#,
            400,
            "INVALID_CONTEXT",
        ),
        (
            "/ofrep/v1/evaluate/flags/dark-mode",
            r#"{"context": {"#,
            400,
            "PARSE_ERROR",
        ),
        (
            "/ofrep/v1/evaluate/flags/dark-mode",
            r#"[1]"#,
            400,
            "PARSE_ERROR",
        ),
        (
            "/ofrep/v1/evaluate/flags/dark-mode",
            r#"{"ctx": {}}"#,
            400,
            "PARSE_ERROR",
        ),
    ];
    for (path, request, status, code) in cases {
        let (actual, body, _) = ofrep(&server, path, request).await;
        assert_eq!(actual, status, "{request}: {body}");
        assert_eq!(body["errorCode"], code, "{request}: {body}");
        assert!(body["errorDetails"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(body["key"], path.rsplit('/').next().unwrap(), "{body}");
    }
    // An empty body is an empty context.
    let (status, body, _) = ofrep(&server, "/ofrep/v1/evaluate/flags/banner-text", "").await;
    assert_eq!((status, body["value"].clone()), (200, json!("Welcome")));
}

#[tokio::test]
async fn bulk_evaluation_carries_an_etag_and_answers_304_when_unchanged() {
    let server = TestServer::spawn().await;
    seed(&server).await;
    let request =
        r#"{"context": {"targetingKey": "u1", "country": "de", "environment": "production"}}"#;
    let (status, body, headers) = ofrep(&server, "/ofrep/v1/evaluate/flags", request).await;
    assert_eq!(status, 200, "{body}");
    let flags = body["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 4);
    let banner = flags.iter().find(|f| f["key"] == "banner-text").unwrap();
    assert_eq!(banner["value"], "50% off");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"'));

    let conditional = |tag: String| {
        let server = &server;
        async move {
            server
                .client
                .post(server.url("/ofrep/v1/evaluate/flags"))
                .header("content-type", "application/json")
                .header("if-none-match", tag)
                .body(request)
                .send()
                .await
                .unwrap()
        }
    };
    let response = conditional(etag.clone()).await;
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);

    // A flag change changes the answer and its tag.
    server
        .put_flag(
            "banner-text",
            json!({"type": "string", "variants": {"plain": "Welcome"}, "defaultVariant": "plain"}),
        )
        .await;
    let response = conditional(etag.clone()).await;
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers()["etag"].to_str().unwrap(), etag);

    let (status, body, _) = ofrep(&server, "/ofrep/v1/evaluate/flags", r#"{"context": 5}"#).await;
    assert_eq!(
        (status, body["errorCode"].clone()),
        (400, json!("INVALID_CONTEXT"))
    );
    // Per-flag failures sit beside the successes.
    server
        .put_flag(
            "needs-key",
            json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                   "rollout": {"variant": "on", "percentage": 10}}),
        )
        .await;
    let (status, body, _) = ofrep(&server, "/ofrep/v1/evaluate/flags", r#"{"context": {}}"#).await;
    assert_eq!(status, 200);
    let failed = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "needs-key")
        .unwrap()
        .clone();
    assert_eq!(failed["errorCode"], "TARGETING_KEY_MISSING");
}

#[tokio::test]
async fn configuration_describes_the_provider_capabilities() {
    let server = TestServer::spawn().await;
    let (status, body) = server.get_json("/ofrep/v1/configuration").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "summit-config");
    assert_eq!(
        body["capabilities"]["cacheInvalidation"]["polling"]["enabled"],
        true
    );
    assert_eq!(
        body["capabilities"]["flagEvaluation"]["supportedTypes"],
        json!(["boolean", "string", "int", "float", "object"])
    );
}
