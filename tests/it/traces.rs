//! Traces exported over OTLP/gRPC to a real collector (Rotel, started by the test): one config
//! write shows the REST span (continuing the caller's `traceparent`), the core operation, the
//! validation and the commit; a gRPC call continues its caller's trace too; the JSON log lines
//! of a request carry its trace id; nothing is traced when no endpoint is set.

use std::time::Duration;

use serde_json::{Value, json};
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;

use crate::common::binary::start_binary_with;
use crate::common::otlp::{Span, rotel, trace};

const REST_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REST_PARENT: &str = "00f067aa0ba902b7";
const GRPC_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

/// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
fn descends_from(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let mut parent = span.parent_id.clone();
    while !parent.is_empty() {
        if parent == ancestor.id {
            return true;
        }
        parent = spans
            .iter()
            .find(|s| s.id == parent)
            .map(|s| s.parent_id.clone())
            .unwrap_or_default();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_write_is_traced_from_the_request_to_the_commit() {
    let Some(receiver) = rotel().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let endpoint = receiver.base.clone();
    let server = start_binary_with(
        &dir.path().join("db.sqlite"),
        &[
            ("SUMMIT_NO_AUTH", "true"),
            ("SUMMIT_OTLP_ENDPOINT", &endpoint),
            ("SUMMIT_OTLP_SERVICE_NAME", "summit-under-test"),
            (
                "SUMMIT_OTLP_RESOURCE_ATTRIBUTES",
                "deployment.environment=test",
            ),
            // The request's debug line is written inside its span.
            ("SUMMIT_LOG", "info,summit_config::api=debug"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let answer = client
        .put(format!("{}/api/v1/configs/payments.api", server.base))
        .header("traceparent", format!("00-{REST_TRACE}-{REST_PARENT}-01"))
        .json(&json!({"config": {"timeout": 5}, "metadata": {"actor": "ci", "message": "traced"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());

    let mut grpc = ConfigServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::GetConfigRequest {
        config_id: "payments.api".into(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{GRPC_TRACE}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    grpc.get_config(request).await.unwrap();
    drop(grpc);

    let logs = server.logs.clone();
    // The exporter flushes what it holds when the server stops.
    server.terminate().await;

    let wanted = [
        "PUT /api/v1/configs/{id}",
        "config.write",
        "config.validate",
        "store.commit",
        "store.transaction",
    ];
    let spans = trace(&receiver, REST_TRACE, &wanted, Duration::from_secs(10)).await;
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
    for name in wanted {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let request = named(&spans, "PUT /api/v1/configs/{id}");
    assert_eq!(request.kind, "SPAN_KIND_SERVER");
    assert_eq!(
        request.parent_id, REST_PARENT,
        "the caller's span is the parent"
    );
    assert_eq!(
        request.attributes.get("http.route").map(String::as_str),
        Some("Str(/api/v1/configs/{id})")
    );
    assert_eq!(
        request
            .attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("Int(201)")
    );
    let write = named(&spans, "config.write");
    assert!(descends_from(&spans, write, request), "{spans:#?}");
    for inner in ["config.validate", "store.commit"] {
        assert!(
            descends_from(&spans, named(&spans, inner), write),
            "{inner} under config.write: {spans:#?}"
        );
    }
    let transaction = named(&spans, "store.transaction");
    assert!(
        descends_from(&spans, transaction, named(&spans, "store.commit")),
        "{spans:#?}"
    );
    assert_eq!(
        transaction.attributes.get("db.system").map(String::as_str),
        Some("Str(sqlite)")
    );

    let grpc_spans = trace(
        &receiver,
        GRPC_TRACE,
        &["/summit.config.v1.ConfigService/GetConfig"],
        Duration::from_secs(10),
    )
    .await;
    let call = named(&grpc_spans, "/summit.config.v1.ConfigService/GetConfig");
    assert_eq!(call.kind, "SPAN_KIND_SERVER");
    assert_eq!(call.parent_id, "b7ad6b7169203331");
    assert_eq!(
        call.attributes
            .get("rpc.grpc.status_code")
            .map(String::as_str),
        Some("Int(0)")
    );

    // Traces start at the edges: the cache's loading queries at start-up are not exported.
    let all = crate::common::otlp::spans(&receiver);
    assert!(
        all.iter()
            .all(|span| !span.parent_id.is_empty() || span.kind != "SPAN_KIND_INTERNAL"),
        "an internal span was exported as a root: {all:#?}"
    );
    let log = std::fs::read_to_string(receiver.dir.path().join("server.log")).unwrap();
    assert!(log.contains("summit-under-test"), "service.name");
    assert!(log.contains("deployment.environment"), "resource attribute");

    // The JSON log line written in the request carries its trace id.
    let lines = logs.lock().unwrap().clone();
    let traced = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|record| record["message"] == "request" && record["method"] == "PUT")
        .unwrap_or_else(|| panic!("no request line in {lines:#?}"));
    assert_eq!(traced["span"]["trace_id"], REST_TRACE, "{traced}");
}

#[tokio::test]
async fn without_an_endpoint_no_span_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary_with(
        &dir.path().join("db.sqlite"),
        &[
            ("SUMMIT_NO_AUTH", "true"),
            ("SUMMIT_LOG", "info,summit_config::api=debug"),
        ],
    )
    .await;
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/configs", server.base))
        .header("traceparent", format!("00-{REST_TRACE}-{REST_PARENT}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let logs = server.logs.clone();
    server.terminate().await;
    let lines = logs.lock().unwrap().clone();
    let request = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|record| record["message"] == "request")
        .unwrap_or_else(|| panic!("no request line in {lines:#?}"));
    assert!(request.get("span").is_none(), "{request}");
    assert!(!lines.iter().any(|line| line.contains("exporting traces")));
}
