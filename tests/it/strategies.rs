//! Deployment strategies: the read-only built-ins, stored strategies as versioned documents
//! (validation naming the field, expected versions, history, delete), their audit and change
//! events, and who may write them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::authorization::{ADMIN, call, secured, token};
use crate::common::{TestServer, meta};
use crate::watch_sse::watch;

fn slow_canary() -> Value {
    json!({
        "rollout": {"type": "canary", "steps": [{"percent": 5, "bakeSecs": 600}, {"percent": 25, "bakeSecs": 600}]},
        "finalBakeSecs": 900,
        "gate": {"minAckRatio": 0.9, "maxUnhealthyRatio": 0.05, "maxErrorRate": 0.01, "onNoData": "rollback"},
        "description": "payments: slow and careful"
    })
}

#[tokio::test]
async fn built_ins_are_listed_and_read_only() {
    let server = TestServer::spawn().await;
    let (status, listed) = server.get_json("/api/v1/deployment-strategies").await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "direct",
            "canary",
            "linear",
            "exponential",
            "rolling",
            "blue-green"
        ]
    );
    let (status, canary) = server
        .get_json("/api/v1/deployment-strategies/canary")
        .await;
    assert_eq!(status, 200);
    assert_eq!(canary["builtIn"], true);
    assert_eq!(canary["rollout"]["steps"][0]["percent"], 10);
    assert_eq!(
        canary["gate"]["onNoData"], "pause",
        "no data never passes by default"
    );
    let (status, problem) = server
        .put_json(
            "/api/v1/deployment-strategies/canary",
            &json!({"strategy": slow_canary(), "metadata": meta("ops", "mine")}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = server
        .delete_json("/api/v1/deployment-strategies/direct", &json!({}))
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn stored_strategies_are_versioned_checked_and_deleted() {
    let server = TestServer::spawn().await;
    let mut events = watch(&server, "", None).await;
    let path = "/api/v1/deployment-strategies/payments-slow";
    let (status, created) = server
        .put_json(
            path,
            &json!({"strategy": slow_canary(), "metadata": meta("ops", "v1")}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "payments-slow");
    assert_eq!(created["version"], 1);
    let event = events.next_change().await;
    assert_eq!(event["kind"], "strategy.updated");
    assert_eq!(event["strategy"], "payments-slow");

    let response = server.get(path).await;
    assert_eq!(response.headers()["etag"], "\"1\"");
    let (_, described) = crate::common::body_of(response).await;
    assert_eq!(described["builtIn"], false);
    assert_eq!(described["version"], 1);
    assert_eq!(described["gate"]["maxErrorRate"], 0.01);
    assert_eq!(described["metadata"]["actor"], "ops");

    let mut faster = slow_canary();
    faster["finalBakeSecs"] = json!(60);
    let (status, problem) = server
        .put_json(
            path,
            &json!({"strategy": faster, "metadata": meta("ops", "v2"), "expectedVersion": 0}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "version_conflict");
    let (status, second) = server
        .put_json(
            path,
            &json!({"strategy": faster, "metadata": meta("ops", "v2"), "expectedVersion": 1}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["version"], 2);
    let (_, history) = server.get_json(&format!("{path}/versions")).await;
    let versions: Vec<u64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);

    // A bad strategy names the field and writes nothing.
    let cases = [
        (
            json!({"rollout": {"type": "canary", "steps": [{"percent": 50, "bakeSecs": 1}, {"percent": 20, "bakeSecs": 1}]}}),
            "/strategy/rollout/steps/1/percent",
        ),
        (
            json!({"rollout": {"type": "linear", "stepPercent": 0, "intervalSecs": 1}}),
            "/strategy/rollout/stepPercent",
        ),
        (
            json!({"rollout": {"type": "direct"}, "gate": {"maxUnhealthyRatio": 2}}),
            "/strategy/gate/maxUnhealthyRatio",
        ),
    ];
    for (strategy, field) in cases {
        let (status, problem) = server
            .put_json(
                "/api/v1/deployment-strategies/bad",
                &json!({"strategy": strategy, "metadata": meta("ops", "x")}),
            )
            .await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let (status, problem) = server
        .put_json(
            "/api/v1/deployment-strategies/bad",
            &json!({"strategy": {"rollout": {"type": "sideways"}}, "metadata": meta("ops", "x")}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    let (status, _) = server.get_json("/api/v1/deployment-strategies/bad").await;
    assert_eq!(status, 404);
    let (status, _) = server
        .get_json("/api/v1/deployment-strategies/bad/versions?cursor=5")
        .await;
    assert_eq!(
        status, 404,
        "an unknown strategy has no history, whatever the cursor"
    );
    let (status, _) = server
        .get_json("/api/v1/deployment-strategies/Bad%20Name")
        .await;
    assert_eq!(status, 400);

    let (status, _) = server
        .delete_json(path, &json!({"metadata": meta("ops", "gone")}))
        .await;
    assert_eq!(status, 204);
    let (status, _) = server.get_json(path).await;
    assert_eq!(status, 404);
    let (_, listed) = server.get_json("/api/v1/deployment-strategies").await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        6,
        "only the built-ins: {listed}"
    );
    let (_, audit) = server.get_json("/api/v1/audit?limit=10").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["strategy"] == "payments-slow")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["strategy.deleted", "strategy.updated", "strategy.updated"]
    );
}

#[tokio::test]
async fn strategies_are_written_by_unscoped_config_admins_only() {
    let server = secured("").await;
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let scoped = token(
        &server,
        "scoped",
        &["config-admin"],
        json!({"configPrefixes": ["payments"]}),
    )
    .await;
    let admin = token(&server, "ops", &["config-admin"], json!({})).await;
    let body = json!({"strategy": slow_canary(), "metadata": meta("ops", "v1")});
    let path = "/api/v1/deployment-strategies/payments-slow";
    assert_eq!(
        call(&server, &reader, Method::PUT, path, Some(body.clone()))
            .await
            .0,
        403
    );
    assert_eq!(
        call(&server, &scoped, Method::PUT, path, Some(body.clone()))
            .await
            .0,
        403
    );
    let (status, created) = call(&server, &admin, Method::PUT, path, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["metadata"]["actor"], "token:ops");
    let (status, _) = call(&server, &reader, Method::GET, path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&server, &reader, Method::DELETE, path, None).await.0,
        403
    );
    assert_eq!(
        call(&server, ADMIN, Method::DELETE, path, None).await.0,
        204
    );
}

#[tokio::test]
async fn the_deployment_service_serves_strategies_over_grpc() {
    use summit_config::api::grpc::pb;
    use summit_config::api::grpc::pb::deployment_service_client::DeploymentServiceClient;
    use tonic::Code;

    use crate::grpc_access::with_token;

    let (server, channel) = crate::grpc_access::secured(|_| {}).await;
    let mut deployments = DeploymentServiceClient::new(channel);
    let ops = crate::grpc_access::token(&server, "ops", &["config-admin"], json!({})).await;
    let reader = crate::grpc_access::token(&server, "reader", &["config-reader"], json!({})).await;
    let metadata = Some(pb::Metadata {
        actor: "ops".into(),
        message: Some("grpc".into()),
    });
    let put = |name: &str, strategy: Value| pb::PutStrategyRequest {
        name: name.into(),
        strategy_json: strategy.to_string(),
        metadata: metadata.clone(),
        expected_version: None,
    };
    let created = deployments
        .put_strategy(with_token(put("payments-slow", slow_canary()), Some(&ops)))
        .await
        .expect("a config-admin writes a strategy")
        .into_inner();
    assert_eq!((created.version, created.built_in), (1, false));
    let refused = deployments
        .put_strategy(with_token(
            put("payments-slow", slow_canary()),
            Some(&reader),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let built_in = deployments
        .put_strategy(with_token(put("canary", slow_canary()), Some(&ops)))
        .await
        .unwrap_err();
    assert_eq!(built_in.code(), Code::FailedPrecondition, "{built_in:?}");
    let bad = deployments
        .put_strategy(with_token(
            put(
                "bad",
                json!({"rollout": {"type": "linear", "stepPercent": 0, "intervalSecs": 1}}),
            ),
            Some(&ops),
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        bad.metadata().get("summit-field").unwrap(),
        "/rollout/stepPercent"
    );

    let listed = deployments
        .list_strategies(with_token(pb::ListStrategiesRequest {}, Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.strategies.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "direct",
            "canary",
            "linear",
            "exponential",
            "rolling",
            "blue-green",
            "payments-slow"
        ]
    );
    let got = deployments
        .get_strategy(with_token(
            pb::GetStrategyRequest {
                name: "payments-slow".into(),
            },
            Some(&reader),
        ))
        .await
        .unwrap()
        .into_inner();
    let strategy: Value = serde_json::from_str(&got.strategy_json).unwrap();
    assert_eq!(strategy["gate"]["onNoData"], "rollback");
    deployments
        .delete_strategy(with_token(
            pb::DeleteStrategyRequest {
                name: "payments-slow".into(),
                metadata,
                expected_version: Some(1),
            },
            Some(&ops),
        ))
        .await
        .unwrap();
    let gone = deployments
        .get_strategy(with_token(
            pb::GetStrategyRequest {
                name: "payments-slow".into(),
            },
            Some(&reader),
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}
