//! `summit.config.v1.FlagService` and flag changes on `ConfigService.Watch`, through the
//! generated clients against the real server; answers compared with REST's.

use crate::common;

use std::time::Duration;

use common::{TestServer, meta};
use serde_json::{Value, json};
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
use summit_config::api::grpc::pb::flag_service_client::FlagServiceClient;
use summit_config::api::grpc::pb::watch_event::Event;
use tonic::Code;
use tonic::transport::Channel;

const STEP: Duration = Duration::from_secs(10);

async fn flags_client(server: &TestServer) -> FlagServiceClient<Channel> {
    FlagServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .expect("connect")
}

fn metadata(actor: &str) -> Option<pb::Metadata> {
    Some(pb::Metadata {
        actor: actor.into(),
        message: Some("grpc".into()),
    })
}

fn definition() -> Value {
    json!({"type": "string", "variants": {"a": "alpha", "b": "beta"}, "defaultVariant": "a",
           "rules": [{"id": "vip", "conditions": [{"attribute": "tier", "operator": "eq", "value": "vip"}],
                      "variant": "b"}]})
}

fn put(key: &str, definition: &Value, expected: Option<u64>) -> pb::PutFlagRequest {
    pb::PutFlagRequest {
        flag_key: key.into(),
        definition_json: definition.to_string(),
        metadata: metadata("grpc-user"),
        expected_version: expected,
    }
}

#[tokio::test]
async fn flag_rpcs_write_read_evaluate_and_match_rest() {
    let server = TestServer::spawn().await;
    let mut client = flags_client(&server).await;
    let created = client
        .put_flag(put("greeting", &definition(), Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (created.flag_key.as_str(), created.version),
        ("greeting", 1)
    );

    let flag = client
        .get_flag(pb::GetFlagRequest {
            flag_key: "greeting".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, rest) = server.get_json("/api/v1/feature-flags/greeting").await;
    assert_eq!(flag.checksum, rest["checksum"].as_str().unwrap());
    let stored: Value = serde_json::from_str(&flag.definition_json).unwrap();
    assert_eq!(stored["variants"], definition()["variants"]);

    let evaluation = client
        .evaluate_flag(pb::EvaluateFlagRequest {
            flag_key: "greeting".into(),
            context_json: json!({"targetingKey": "k", "tier": "vip"}).to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(evaluation.value_json, "\"beta\"");
    assert_eq!(
        (evaluation.variant.as_str(), evaluation.reason.as_str()),
        ("b", "TARGETING_MATCH")
    );
    let rest = server
        .evaluate(
            "greeting",
            None,
            json!({"targetingKey": "k", "tier": "vip"}),
        )
        .await;
    assert_eq!(rest["value"], "beta");

    let batch = client
        .evaluate_flags(pb::EvaluateFlagsRequest {
            flag_keys: vec!["greeting".into(), "ghost".into()],
            context_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results[0].reason, "DEFAULT");
    assert_eq!(batch.results[1].error_code, "FLAG_NOT_FOUND");

    let mut changed = definition();
    changed["defaultVariant"] = json!("b");
    client
        .put_flag(put("greeting", &changed, None))
        .await
        .unwrap();
    let rolled = client
        .rollback_flag(pb::RollbackFlagRequest {
            flag_key: "greeting".into(),
            target_version: 1,
            metadata: metadata("grpc-user"),
            expected_version: Some(2),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rolled.version, rolled.rollback_of), (3, Some(1)));
    let list = client
        .list_flags(pb::ListFlagsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.flags.len(), 1);
    client
        // No metadata, as a REST DELETE without a body: the caller is the actor.
        .delete_flag(pb::DeleteFlagRequest {
            flag_key: "greeting".into(),
            metadata: None,
            expected_version: Some(3),
        })
        .await
        .unwrap();
    let gone = client
        .get_flag(pb::GetFlagRequest {
            flag_key: "greeting".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn flag_rpc_refusals_carry_the_code_and_field() {
    let server = TestServer::spawn().await;
    let mut client = flags_client(&server).await;
    client
        .put_flag(put("base", &definition(), None))
        .await
        .unwrap();
    let dependent = json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
        "rules": [{"id": "r", "prerequisites": [{"flagKey": "base", "variants": ["b"]}], "variant": "on"}]});
    client
        .put_flag(put("dependent", &dependent, None))
        .await
        .unwrap();

    let mut bad_regex = definition();
    bad_regex["rules"][0]["conditions"][0] =
        json!({"attribute": "x", "operator": "regex", "value": "("});
    let cases = [
        (
            put("base", &bad_regex, None),
            Code::InvalidArgument,
            "/rules/0/conditions/0/value",
        ),
        (
            put("bad key", &definition(), None),
            Code::InvalidArgument,
            "flagKey",
        ),
        (
            put("evaluate", &definition(), None),
            Code::InvalidArgument,
            "flagKey",
        ),
        (
            pb::PutFlagRequest {
                definition_json: "{\"type\":".into(),
                ..put("base", &definition(), None)
            },
            Code::InvalidArgument,
            "definitionJson",
        ),
        (put("base", &definition(), Some(5)), Code::Aborted, ""),
    ];
    for (request, code, field) in cases {
        let status = client.put_flag(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        if !field.is_empty() {
            let named = status
                .metadata()
                .get("summit-field")
                .unwrap()
                .to_str()
                .unwrap();
            // Malformed JSON text is named down to where parsing stopped.
            assert!(named.starts_with(field), "{named} is not under {field}");
        }
    }
    let status = client
        .delete_flag(pb::DeleteFlagRequest {
            flag_key: "base".into(),
            metadata: metadata("ops"),
            expected_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = client
        .evaluate_flag(pb::EvaluateFlagRequest {
            flag_key: "base".into(),
            context_json: "[]".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .evaluate_flag(pb::EvaluateFlagRequest {
            flag_key: "ghost".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn flag_changes_stream_to_watchers_in_revision_order() {
    let server = TestServer::spawn().await;
    let mut watch_client = ConfigServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let mut flags_only = watch_client
        .watch(pb::WatchRequest {
            all_flags: true,
            from_revision: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut one_config = watch_client
        .watch(pb::WatchRequest {
            config_ids: vec!["checkout".into()],
            from_revision: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // A config and a flag with the same id: each watcher sees only what it named.
    server
        .put_config(
            "checkout",
            json!({"config": {"a": 1}, "metadata": meta("a", "c")}),
        )
        .await;
    server.put_flag("checkout", definition()).await;
    let (status, _) = server
        .delete_json(
            "/api/v1/feature-flags/checkout",
            &json!({"metadata": meta("a", "d")}),
        )
        .await;
    assert_eq!(status, 200);

    let next = async |stream: &mut tonic::Streaming<pb::WatchEvent>| loop {
        let event = tokio::time::timeout(STEP, stream.message())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        if let Some(Event::Change(change)) = event.event {
            return change;
        }
    };
    let updated = next(&mut flags_only).await;
    assert_eq!(
        (
            updated.kind.as_str(),
            updated.flag_key.as_str(),
            updated.config_id.as_str(),
            updated.revision
        ),
        ("flag.updated", "checkout", "", 2)
    );
    let deleted = next(&mut flags_only).await;
    assert_eq!(
        (deleted.kind.as_str(), deleted.revision),
        ("flag.deleted", 3)
    );
    let config = next(&mut one_config).await;
    assert_eq!(
        (config.kind.as_str(), config.revision),
        ("config.updated", 1)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), one_config.message())
            .await
            .is_err(),
        "the config watcher saw a flag change"
    );

    // SSE: `flags=true` streams flag changes with `flagKey`.
    let response = server
        .client
        .get(server.url("/api/v1/watch?flags=true&fromRevision=0"))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("flag.deleted") {
        use futures::StreamExt;
        let chunk = tokio::time::timeout(STEP, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("\"flagKey\":\"checkout\""), "{text}");
    assert!(!text.contains("config.updated"), "{text}");
}
