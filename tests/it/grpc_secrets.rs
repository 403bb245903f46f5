//! `summit.config.v1.SecretService`: the REST secret operations over gRPC, under the same
//! access rules (manage-secrets on the name), never showing a value outside GetSecretValue.

use serde_json::{Value, json};
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::secret_service_client::SecretServiceClient;
use tonic::Code;

use crate::grpc_access::{secured, token, with_token};

const FIRST: &str = "grpc-FIRST-secret-3e1f";
const NEXT: &str = "grpc-NEXT-secret-8a2c";

fn metadata() -> Option<pb::Metadata> {
    Some(pb::Metadata {
        actor: "sam".into(),
        message: Some("grpc".into()),
    })
}

fn put(name: &str, value: &Value, rotation: &Value) -> pb::PutSecretRequest {
    pb::PutSecretRequest {
        name: name.into(),
        value_json: value.to_string(),
        metadata: metadata(),
        rotation_json: if rotation.is_null() {
            String::new()
        } else {
            rotation.to_string()
        },
        ..Default::default()
    }
}

/// The field a refusal names (metadata `summit-field`).
fn field(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("summit-field")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn value_of(name: &str, stage: &str) -> pb::GetSecretValueRequest {
    pb::GetSecretValueRequest {
        name: name.into(),
        stage: stage.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_secret_service_mirrors_rest_under_the_same_access_rules() {
    let (server, channel) = secured(|_| {}).await;
    let mut secrets = SecretServiceClient::new(channel);
    let sam = token(&server, "sam", &["secrets-admin"], json!({})).await;
    let carol = token(&server, "carol", &["config-admin"], json!({})).await;
    let pay = token(
        &server,
        "pay",
        &["secrets-admin"],
        json!({"configPrefixes": ["pay."]}),
    )
    .await;
    let sam = Some(sam.as_str());
    let rotation = json!({"intervalSecs": 3600, "gracePeriodSecs": 60,
                          "generator": {"type": "string", "length": 20}});

    let written = secrets
        .put_secret(with_token(put("db", &json!(FIRST), &rotation), sam))
        .await
        .expect("put")
        .into_inner();
    assert_eq!((written.version, written.format.as_str()), (1, "string"));
    for (who, name) in [(Some(carol.as_str()), "db"), (Some(pay.as_str()), "db")] {
        let status = secrets
            .put_secret(with_token(put(name, &json!("x"), &Value::Null), who))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let status = secrets
        .put_secret(with_token(put("db", &json!("x"), &Value::Null), None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    secrets
        .put_secret(with_token(
            put("pay.key", &json!("p"), &Value::Null),
            Some(&pay),
        ))
        .await
        .expect("a scoped secrets-admin manages secrets under its prefix");
    let status = secrets
        .put_secret(with_token(put("db", &json!(42), &Value::Null), sam))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field(&status), "/value");
    let bad_policy = put(
        "db",
        &json!("x"),
        &json!({"intervalSecs": 0, "gracePeriodSecs": 0,
                                                     "generator": {"type": "supplied"}}),
    );
    let status = secrets
        .put_secret(with_token(bad_policy, sam))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field(&status), "/rotation/intervalSecs");

    // Rotate to a pending value, promote it; the stages follow.
    let pending = secrets
        .rotate_secret(with_token(
            pb::RotateSecretRequest {
                name: "db".into(),
                value_json: json!(NEXT).to_string(),
                pending: true,
                ..Default::default()
            },
            sam,
        ))
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(pending.version, 2);
    let promoted = secrets
        .promote_secret(with_token(
            pb::PromoteSecretRequest {
                name: "db".into(),
                version: Some(2),
                metadata: None,
            },
            sam,
        ))
        .await
        .expect("promote")
        .into_inner();
    assert_eq!(promoted.version, 3);
    let info = secrets
        .describe_secret(with_token(
            pb::DescribeSecretRequest { name: "db".into() },
            sam,
        ))
        .await
        .expect("describe")
        .into_inner();
    let stages: Vec<(u64, Vec<String>)> = info
        .versions
        .iter()
        .map(|v| (v.version, v.stages.clone()))
        .collect();
    assert_eq!(
        stages,
        vec![
            (3, vec!["current".to_owned()]),
            (2, vec![]),
            (1, vec!["previous".to_owned()])
        ]
    );
    let policy: Value = serde_json::from_str(&info.rotation_json).unwrap();
    assert_eq!(policy["intervalSecs"], 3600);
    assert!(!info.next_rotation_at.is_empty());
    assert!(
        !format!("{info:?}").contains(FIRST) && !format!("{info:?}").contains(NEXT),
        "{info:?}"
    );
    let listed = secrets
        .list_secrets(with_token(pb::ListSecretsRequest {}, sam))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.items.len(), 2);

    // Values only through GetSecretValue, to secrets admins.
    for (stage, expected) in [("", NEXT), ("previous", FIRST)] {
        let value = secrets
            .get_secret_value(with_token(value_of("db", stage), sam))
            .await
            .expect("value")
            .into_inner();
        assert_eq!(value.value_json, json!(expected).to_string());
    }
    let status = secrets
        .get_secret_value(with_token(value_of("db", ""), Some(&carol)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = secrets
        .get_secret_value(with_token(value_of("db", "someday"), sam))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // A generated rotation, a re-wrap, a delete.
    let rotated = secrets
        .rotate_secret(with_token(
            pb::RotateSecretRequest {
                name: "db".into(),
                ..Default::default()
            },
            sam,
        ))
        .await
        .expect("generated rotation")
        .into_inner();
    assert_eq!(rotated.version, 4);
    let generated = secrets
        .get_secret_value(with_token(value_of("db", ""), sam))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serde_json::from_str::<String>(&generated.value_json)
            .unwrap()
            .len(),
        20
    );
    let report = secrets
        .rewrap_secrets(with_token(pb::RewrapSecretsRequest { metadata: None }, sam))
        .await
        .expect("rewrap")
        .into_inner();
    assert_eq!((report.rewrapped, report.unchanged), (0, 5));
    let deleted = secrets
        .delete_secret(with_token(
            pb::DeleteSecretRequest {
                name: "db".into(),
                metadata: metadata(),
                expected_version: Some(4),
            },
            sam,
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.version, 4);
    let status = secrets
        .describe_secret(with_token(
            pb::DescribeSecretRequest { name: "db".into() },
            sam,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}
