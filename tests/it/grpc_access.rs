//! Access control over gRPC: UNAUTHENTICATED without a token, PERMISSION_DENIED without the
//! role or scope, success with it; health stays open; revocation applies at once.

use crate::common;

use common::{TestServer, body_of};
use serde_json::json;
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
use summit_config::api::grpc::pb::flag_service_client::FlagServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request};

const ADMIN: &str = "admin-token-for-the-grpc-access-tests-0123";

pub(crate) async fn token(
    server: &TestServer,
    name: &str,
    roles: &[&str],
    scopes: serde_json::Value,
) -> String {
    let response = server
        .client
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": name, "roles": roles, "scopes": scopes}))
        .send()
        .await
        .unwrap();
    let (status, created) = body_of(response).await;
    assert_eq!(status, 201, "{created}");
    created["tokenText"].as_str().unwrap().to_owned()
}

/// Revokes the token named `name` through the API, as the admin.
async fn revoke(server: &TestServer, name: &str) {
    let tokens = server
        .client
        .get(server.url("/api/v1/tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let (_, tokens) = body_of(tokens).await;
    let mut listed = tokens["items"].as_array().unwrap().iter();
    let id = listed.find(|t| t["name"] == name).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = server
        .client
        .delete(server.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200, "revoking {name}");
}

/// A server with access control on (admin token `ADMIN`), tuned by `tune`, and a channel to
/// its gRPC port.
pub(crate) async fn secured(
    tune: impl FnOnce(&mut summit_config::settings::Settings),
) -> (TestServer, Channel) {
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        tune(s);
    })
    .await;
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (server, channel)
}

pub(crate) fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn put(id: &str) -> pb::PutConfigRequest {
    pb::PutConfigRequest {
        config_id: id.into(),
        document: Some(pb::ConfigDocument {
            config_json: r#"{"timeoutMs": 1000, "password": {"$secret": "env:GRPC_IT_PASSWORD"}}"#
                .into(),
            ..Default::default()
        }),
        metadata: Some(pb::Metadata {
            actor: "someone-else".into(),
            message: Some("grpc".into()),
        }),
        expected_version: None,
    }
}

fn effective(id: &str, resolve_secrets: bool) -> pb::GetEffectiveConfigRequest {
    pb::GetEffectiveConfigRequest {
        config_id: id.into(),
        resolve_secrets,
        ..Default::default()
    }
}

#[tokio::test]
async fn grpc_calls_need_a_token_with_the_right_role_and_scope() {
    // GRPC_IT_PASSWORD is set before main (common::env).
    let (server, channel) = secured(|s| s.secret_env_prefix = "GRPC_IT_".into()).await;
    let mut configs = ConfigServiceClient::new(channel.clone());
    let mut flags = FlagServiceClient::new(channel.clone());
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let writer = token(&server, "writer", &["config-admin"], json!({})).await;
    let secrets = token(&server, "secrets", &["secrets-admin"], json!({})).await;
    let scoped = token(
        &server,
        "scoped",
        &["config-admin"],
        json!({"configPrefixes": ["pay."]}),
    )
    .await;

    // No token, a bad token: UNAUTHENTICATED.
    for bad in [None, Some("sc_nope")] {
        let status = configs
            .put_config(with_token(put("app"), bad))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{bad:?}");
        let status = configs
            .get_config(with_token(
                pb::GetConfigRequest {
                    config_id: "app".into(),
                },
                bad,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // Writes: config-admin yes, reader no. The audit names the token.
    let status = configs
        .put_config(with_token(put("app"), Some(&reader)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    configs
        .put_config(with_token(put("app"), Some(&writer)))
        .await
        .unwrap();
    let audit = configs
        .list_audit(with_token(
            pb::ListAuditRequest {
                config_id: "app".into(),
                ..Default::default()
            },
            Some(&reader),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.items[0].actor, "token:writer");
    // Reads: every role; resolved secrets only for secrets-admin.
    let plain = configs
        .get_effective_config(with_token(effective("app", false), Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    assert!(!plain.effective_config_json.contains("grpc-secret-value"));
    let status = configs
        .get_effective_config(with_token(effective("app", true), Some(&reader)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let resolved = configs
        .get_effective_config(with_token(effective("app", true), Some(&secrets)))
        .await
        .unwrap()
        .into_inner();
    assert!(resolved.effective_config_json.contains("grpc-secret-value"));
    // Scopes: ids outside the prefixes are refused, inside allowed.
    let status = configs
        .put_config(with_token(put("app"), Some(&scoped)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    configs
        .put_config(with_token(put("pay.api"), Some(&scoped)))
        .await
        .unwrap();
    let status = configs
        .list_audit(with_token(pb::ListAuditRequest::default(), Some(&scoped)))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "the global audit needs an unscoped token"
    );
    // Flags: writes need config-admin, evaluation any reader.
    let definition =
        json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "on"});
    let put_flag = |token: &str| {
        with_token(
            pb::PutFlagRequest {
                flag_key: "beta".into(),
                definition_json: definition.to_string(),
                metadata: Some(pb::Metadata {
                    actor: "x".into(),
                    message: None,
                }),
                expected_version: None,
            },
            Some(token),
        )
    };
    assert_eq!(
        flags.put_flag(put_flag(&reader)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    flags.put_flag(put_flag(&writer)).await.unwrap();
    let response = server
        .client
        .get(server.url("/api/v1/feature-flags/beta/audit"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let (_, audit) = body_of(response).await;
    assert_eq!(audit["items"][0]["actor"], "token:writer", "{audit}");
    let evaluation = flags
        .evaluate_flag(with_token(
            pb::EvaluateFlagRequest {
                flag_key: "beta".into(),
                ..Default::default()
            },
            Some(&reader),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(evaluation.value_json, "true");
    // Health stays open, like REST's probes.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Every refusal above is on record, the handlers' scope refusals included.
    let response = server
        .client
        .get(server.url("/api/v1/audit/denied?limit=500"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let (_, denied) = body_of(response).await;
    let denied = denied["items"].as_array().unwrap().clone();
    assert!(denied.iter().any(|d| d["actor"] == "token:reader"
        && d["operation"] == "/summit.config.v1.ConfigService/PutConfig"));
    assert!(
        denied.iter().any(|d| d["actor"] == "token:scoped"
            && d["operation"] == "/summit.config.v1.ConfigService/PutConfig"
            && d["reason"].as_str().unwrap().contains("outside")),
        "{denied:?}"
    );

    // Revoking the writer's token refuses its next call at once.
    revoke(&server, "writer").await;
    let status = configs
        .put_config(with_token(put("app"), Some(&writer)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

/// A refusal the core records itself (a write touching an environment outside the token's
/// scope) is recorded once, and the internal marker that says so never reaches the client.
#[tokio::test]
async fn a_core_recorded_refusal_is_recorded_once_and_carries_no_internal_marker() {
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
    })
    .await;
    let staging = token(
        &server,
        "staging-writer",
        &["config-admin"],
        json!({"environments": ["staging"]}),
    )
    .await;
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut configs = ConfigServiceClient::new(channel);
    // A create touches every environment: refused to a staging-scoped writer.
    let status = configs
        .put_config(with_token(put("scoped-create"), Some(&staging)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.metadata().get("summit-denial-recorded").is_none(),
        "internal marker leaked: {:?}",
        status.metadata()
    );
    // A refusal the transport records (a missing permission) names the config like REST's.
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let status = configs
        .put_config(with_token(put("read-only"), Some(&reader)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.metadata().get("summit-denial-resource").is_none(),
        "internal marker leaked: {:?}",
        status.metadata()
    );
    let response = server
        .client
        .get(server.url("/api/v1/audit/denied?limit=500"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let (_, denied) = body_of(response).await;
    let refusals = denied["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["actor"] == "token:staging-writer")
        .count();
    assert_eq!(refusals, 1, "{denied}");
    assert!(
        denied["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["actor"] == "token:reader"
                && d["operation"] == "/summit.config.v1.ConfigService/PutConfig"
                && d["resource"] == "read-only"),
        "{denied}"
    );
}

/// A watch stream ends once the token that opened it is revoked: the next change it would
/// carry is UNAUTHENTICATED instead.
#[tokio::test]
async fn a_watch_stream_ends_once_its_token_is_revoked() {
    let (server, channel) = secured(|_| {}).await;
    let numbered = |n: u64| {
        let mut request = put("app");
        request.document.as_mut().unwrap().config_json = format!(r#"{{"n": {n}}}"#);
        request
    };
    let mut admin = ConfigServiceClient::new(channel.clone());
    admin
        .put_config(with_token(numbered(1), Some(ADMIN)))
        .await
        .unwrap();
    let reader = token(&server, "grpc-watcher", &["config-reader"], json!({})).await;
    let mut watching = ConfigServiceClient::new(channel);
    let request = pb::WatchRequest {
        config_ids: vec!["app".into()],
        ..Default::default()
    };
    let mut stream = watching
        .watch(with_token(request, Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    // The snapshot of `app`, then the next change.
    let mut next = async || loop {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("a watch message in time");
        match event {
            Ok(Some(pb::WatchEvent {
                event: Some(pb::watch_event::Event::Heartbeat(_)),
                ..
            })) => continue,
            other => return other,
        }
    };
    assert!(next().await.unwrap().is_some(), "the snapshot");
    admin
        .put_config(with_token(numbered(2), Some(ADMIN)))
        .await
        .unwrap();
    assert!(
        next().await.unwrap().is_some(),
        "a change while the token is valid"
    );
    revoke(&server, "grpc-watcher").await;
    admin
        .put_config(with_token(numbered(3), Some(ADMIN)))
        .await
        .unwrap();
    let status = next()
        .await
        .expect_err("UNAUTHENTICATED instead of the change");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}
