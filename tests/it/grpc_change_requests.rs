//! The approval workflow over gRPC (`summit.config.v1.ChangeRequestService`), through the
//! generated client against the real server: production needs two approvals from config-admins
//! other than the requester; refusals are the same as over REST (tests/it/approvals.rs).

use crate::common;

use common::{TestServer, body_of};
use serde_json::{Value, json};
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::change_operation::Operation;
use summit_config::api::grpc::pb::change_request_service_client::ChangeRequestServiceClient;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const ADMIN: &str = "admin-token-for-the-grpc-approval-tests-0123";
const UNKNOWN_ID: &str = "8f14e45f-ceea-4e7a-9a4b-4d0c7f0e2b11";

type Requests = ChangeRequestServiceClient<Channel>;
type Configs = ConfigServiceClient<Channel>;

struct Team {
    server: TestServer,
    requests: Requests,
    configs: Configs,
    alice: String,
    bob: String,
    carol: String,
    reader: String,
}

async fn token(server: &TestServer, name: &str, role: &str, scopes: Value) -> String {
    let response = server
        .client
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": name, "roles": [role], "scopes": scopes}))
        .send()
        .await
        .expect("request");
    let (status, created) = body_of(response).await;
    assert_eq!(status, 201, "{created}");
    created["tokenText"].as_str().unwrap().to_owned()
}

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connects")
}

/// Access control on, `production=2`.
async fn team() -> Team {
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        s.protected_environments = "production=2".into();
    })
    .await;
    let channel = channel(&server).await;
    let alice = token(&server, "alice", "config-admin", json!({})).await;
    let bob = token(&server, "bob", "config-admin", json!({})).await;
    let carol = token(&server, "carol", "config-admin", json!({})).await;
    let reader = token(&server, "reader", "config-reader", json!({})).await;
    Team {
        server,
        requests: ChangeRequestServiceClient::new(channel.clone()),
        configs: ConfigServiceClient::new(channel),
        alice,
        bob,
        carol,
        reader,
    }
}

fn as_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn meta(actor: &str, message: &str) -> Option<pb::Metadata> {
    Some(pb::Metadata {
        actor: actor.into(),
        message: Some(message.into()),
    })
}

/// A new version of `app` whose production override is `timeoutMs: production`.
fn put_app(production: u64) -> pb::PutConfigRequest {
    pb::PutConfigRequest {
        config_id: "app".into(),
        document: Some(pb::ConfigDocument {
            config_json: r#"{"timeoutMs": 1000}"#.into(),
            overrides_json: json!({"staging": {"timeoutMs": 500},
                                   "production": {"timeoutMs": production}})
            .to_string(),
            ..Default::default()
        }),
        metadata: meta("alice", "production change"),
        expected_version: None,
    }
}

fn get(id: &str) -> pb::GetChangeRequestRequest {
    pb::GetChangeRequestRequest {
        change_request_id: id.into(),
    }
}

fn approve(id: &str) -> pb::ApproveChangeRequestRequest {
    pb::ApproveChangeRequestRequest {
        change_request_id: id.into(),
        metadata: None,
    }
}

fn apply(id: &str) -> pb::ApplyChangeRequestRequest {
    pb::ApplyChangeRequestRequest {
        change_request_id: id.into(),
        metadata: None,
    }
}

fn reject(id: &str, reason: &str) -> pb::RejectChangeRequestRequest {
    pb::RejectChangeRequestRequest {
        change_request_id: id.into(),
        metadata: None,
        reason: reason.into(),
    }
}

fn cancel(id: &str, reason: &str) -> pb::CancelChangeRequestRequest {
    pb::CancelChangeRequestRequest {
        change_request_id: id.into(),
        metadata: None,
        reason: reason.into(),
    }
}

fn list(status: &str) -> pb::ListChangeRequestsRequest {
    pb::ListChangeRequestsRequest {
        status: status.into(),
        ..Default::default()
    }
}

fn ids(response: &pb::ListChangeRequestsResponse) -> Vec<&str> {
    response.items.iter().map(|r| r.id.as_str()).collect()
}

fn metadata_entry<'a>(status: &'a Status, key: &str) -> &'a str {
    status
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

impl Team {
    /// Alice's production change: the id of the change request it became.
    async fn request_change(&mut self, production: u64) -> String {
        let created = self
            .configs
            .put_config(as_token(&self.alice, put_app(production)))
            .await
            .expect("PutConfig")
            .into_inner();
        assert_eq!(created.version, 0, "nothing written while pending");
        assert!(!created.change_request_id.is_empty(), "{created:?}");
        created.change_request_id
    }

    /// Version 1 of `app`, through the whole workflow (creating a config touches every
    /// environment, production included).
    async fn seed(&mut self) {
        let id = self.request_change(900).await;
        for approver in [self.bob.clone(), self.carol.clone()] {
            self.requests
                .approve_change_request(as_token(&approver, approve(&id)))
                .await
                .expect("approve");
        }
        let applied = self
            .requests
            .apply_change_request(as_token(&self.alice, apply(&id)))
            .await
            .expect("apply")
            .into_inner();
        assert_eq!(applied.applied_version, Some(1));
    }

    async fn show(&mut self, id: &str) -> pb::ChangeRequest {
        self.requests
            .get_change_request(as_token(&self.reader, get(id)))
            .await
            .expect("GetChangeRequest")
            .into_inner()
    }

    async fn live_version(&mut self) -> u64 {
        let request = pb::GetConfigRequest {
            config_id: "app".into(),
        };
        self.configs
            .get_config(as_token(&self.reader, request))
            .await
            .expect("GetConfig")
            .into_inner()
            .version
    }

    async fn production_timeout(&mut self) -> Value {
        let request = pb::GetEffectiveConfigRequest {
            config_id: "app".into(),
            environment: "production".into(),
            ..Default::default()
        };
        let effective = self
            .configs
            .get_effective_config(as_token(&self.reader, request))
            .await
            .expect("GetEffectiveConfig")
            .into_inner();
        let config: Value = serde_json::from_str(&effective.effective_config_json).unwrap();
        config["timeoutMs"].clone()
    }
}

#[tokio::test]
async fn a_grpc_production_change_waits_for_two_other_approvals_then_applies() {
    let mut team = team().await;
    team.seed().await;
    let id = team.request_change(800).await;

    let pending = team
        .requests
        .list_change_requests(as_token(&team.reader, list("")))
        .await
        .expect("ListChangeRequests")
        .into_inner();
    assert_eq!(ids(&pending), [id.as_str()], "pending by default");
    let request = &pending.items[0];
    assert_eq!(
        (
            request.config_id.as_str(),
            request.status.as_str(),
            request.base_version,
            request.required_approvals,
            request.environments.clone(),
        ),
        ("app", "pending", 1, 2, vec!["production".to_owned()])
    );
    assert_eq!(request.requested_by, "token:alice");
    assert_eq!(request.on_behalf_of.as_deref(), Some("alice"));
    assert_eq!(request.message.as_deref(), Some("production change"));
    assert_eq!(
        (request.reason.clone(), request.applied_version),
        (None, None)
    );
    let Some(Operation::Put(document)) = request.operation.as_ref().unwrap().operation.as_ref()
    else {
        panic!("a put: {request:?}");
    };
    let overrides: Value = serde_json::from_str(&document.overrides_json).unwrap();
    assert_eq!(overrides["production"]["timeoutMs"], 800);

    // The requester may not approve; the refusal is recorded once.
    let status = team
        .requests
        .approve_change_request(as_token(&team.alice, approve(&id)))
        .await
        .expect_err("self-approval");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let response = team
        .server
        .client
        .get(team.server.url("/api/v1/audit/denied"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("request");
    let (code, denied) = body_of(response).await;
    assert_eq!(code, 200, "{denied}");
    let self_approvals: Vec<&Value> = denied["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["actor"] == "token:alice"
                && d["operation"] == "/summit.config.v1.ChangeRequestService/ApproveChangeRequest"
        })
        .collect();
    assert_eq!(self_approvals.len(), 1, "{denied}");
    assert!(
        self_approvals[0]["reason"]
            .as_str()
            .unwrap()
            .contains("requester"),
        "{denied}"
    );

    let first = team
        .requests
        .approve_change_request(as_token(&team.bob, approve(&id)))
        .await
        .expect("bob approves")
        .into_inner();
    assert_eq!(first.status, "pending");
    let status = team
        .requests
        .approve_change_request(as_token(&team.bob, approve(&id)))
        .await
        .expect_err("a second approval by the same identity");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let second = team
        .requests
        .approve_change_request(as_token(&team.carol, approve(&id)))
        .await
        .expect("carol approves")
        .into_inner();
    assert_eq!(second.status, "approved");
    let approvers: Vec<&str> = second.approvals.iter().map(|a| a.actor.as_str()).collect();
    assert_eq!(approvers, ["token:bob", "token:carol"]);
    assert!(second.approvals.iter().all(|a| !a.at.is_empty()));
    assert_eq!(team.live_version().await, 1, "approved is not applied yet");

    let applied = team
        .requests
        .apply_change_request(as_token(&team.alice, apply(&id)))
        .await
        .expect("apply")
        .into_inner();
    assert_eq!(
        (applied.status.as_str(), applied.applied_version),
        ("applied", Some(2))
    );
    assert_eq!(team.live_version().await, 2);
    assert_eq!(team.production_timeout().await, 800);
    assert_eq!(team.show(&id).await.status, "applied");
    let status = team
        .requests
        .apply_change_request(as_token(&team.alice, apply(&id)))
        .await
        .expect_err("applying twice");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(metadata_entry(&status, "summit-code"), "conflict");
    let applied_ones = team
        .requests
        .list_change_requests(as_token(&team.reader, list("applied")))
        .await
        .expect("ListChangeRequests")
        .into_inner();
    assert_eq!(applied_ones.items.len(), 2, "the seed's and this one");
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_only_the_requester_or_an_admin_cancels() {
    let mut team = team().await;
    team.seed().await;
    let rejected = team.request_change(1).await;
    let status = team
        .requests
        .reject_change_request(as_token(&team.bob, reject(&rejected, "  ")))
        .await
        .expect_err("no reason");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(metadata_entry(&status, "summit-field"), "/reason");
    assert_eq!(team.show(&rejected).await.status, "pending");
    let request = team
        .requests
        .reject_change_request(as_token(&team.bob, reject(&rejected, "1 ms is too short")))
        .await
        .expect("reject")
        .into_inner();
    assert_eq!(
        (request.status.as_str(), request.reason.as_deref()),
        ("rejected", Some("1 ms is too short"))
    );
    let status = team
        .requests
        .approve_change_request(as_token(&team.carol, approve(&rejected)))
        .await
        .expect_err("approving a rejected request");
    assert_eq!(status.code(), Code::FailedPrecondition);

    let cancelled = team.request_change(2).await;
    let status = team
        .requests
        .cancel_change_request(as_token(&team.bob, cancel(&cancelled, "not mine")))
        .await
        .expect_err("another config-admin cancels");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(team.show(&cancelled).await.status, "pending");
    let request = team
        .requests
        .cancel_change_request(as_token(&team.alice, cancel(&cancelled, "wrong value")))
        .await
        .expect("the requester cancels")
        .into_inner();
    assert_eq!(
        (request.status.as_str(), request.reason.as_deref()),
        ("cancelled", Some("wrong value"))
    );
    let by_admin = team.request_change(3).await;
    let request = team
        .requests
        .cancel_change_request(as_token(ADMIN, cancel(&by_admin, "")))
        .await
        .expect("an admin cancels")
        .into_inner();
    assert_eq!(
        (request.status.as_str(), request.reason),
        ("cancelled", None)
    );
    assert_eq!(team.live_version().await, 1, "nothing applied");

    let all = team
        .requests
        .list_change_requests(as_token(&team.reader, list("all")))
        .await
        .expect("ListChangeRequests")
        .into_inner();
    assert_eq!(
        ids(&all)[..3],
        [by_admin.as_str(), cancelled.as_str(), rejected.as_str()],
        "newest first"
    );
    assert_eq!(all.items[3].status, "applied", "then the seed's");
    let pending = team
        .requests
        .list_change_requests(as_token(&team.reader, list("")))
        .await
        .expect("ListChangeRequests")
        .into_inner();
    assert!(pending.items.is_empty(), "{pending:?}");
    let status = team
        .requests
        .list_change_requests(as_token(&team.reader, list("done")))
        .await
        .expect_err("unknown status");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(metadata_entry(&status, "summit-field"), "status");
}

#[tokio::test]
async fn unknown_malformed_and_out_of_scope_change_requests_are_refused() {
    let mut team = team().await;
    let id = team.request_change(800).await;
    let status = team
        .requests
        .get_change_request(as_token(&team.reader, get(UNKNOWN_ID)))
        .await
        .expect_err("unknown id");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = team
        .requests
        .get_change_request(as_token(&team.reader, get("not-a-uuid")))
        .await
        .expect_err("malformed id");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(metadata_entry(&status, "summit-field"), "changeRequestId");

    let payments_reader = token(
        &team.server,
        "payments-reader",
        "config-reader",
        json!({"configPrefixes": ["pay."]}),
    )
    .await;
    let payments_admin = token(
        &team.server,
        "payments-admin",
        "config-admin",
        json!({"configPrefixes": ["pay."]}),
    )
    .await;
    let status = team
        .requests
        .get_change_request(as_token(&payments_reader, get(&id)))
        .await
        .expect_err("a request on a config outside the token's prefixes");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = team
        .requests
        .approve_change_request(as_token(&payments_admin, approve(&id)))
        .await
        .expect_err("approving outside the token's prefixes");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let listed = team
        .requests
        .list_change_requests(as_token(&payments_reader, list("all")))
        .await
        .expect("ListChangeRequests")
        .into_inner();
    assert!(listed.items.is_empty(), "left out: {listed:?}");
    let status = team
        .requests
        .approve_change_request(as_token(&team.reader, approve(&id)))
        .await
        .expect_err("a reader approves");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(team.show(&id).await.approvals.is_empty());
    let status = team
        .requests
        .get_change_request(Request::new(get(&id)))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn without_access_control_the_actor_is_named_in_metadata() {
    let server = TestServer::spawn_with(|s| s.protected_environments = "production=1".into()).await;
    let channel = channel(&server).await;
    let mut configs = ConfigServiceClient::new(channel.clone());
    let mut requests = ChangeRequestServiceClient::new(channel);
    let created = configs
        .put_config(put_app(800))
        .await
        .expect("PutConfig")
        .into_inner();
    let id = created.change_request_id;
    assert!(!id.is_empty(), "a change request");

    let status = requests
        .approve_change_request(approve(&id))
        .await
        .expect_err("nobody named");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(metadata_entry(&status, "summit-field"), "metadata");
    let as_actor = |actor: &str| pb::ApproveChangeRequestRequest {
        change_request_id: id.clone(),
        metadata: meta(actor, "looks right"),
    };
    let status = requests
        .approve_change_request(as_actor("alice"))
        .await
        .expect_err("the requester approves");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let approved = requests
        .approve_change_request(as_actor("bob"))
        .await
        .expect("bob approves")
        .into_inner();
    assert_eq!(approved.status, "approved");
    assert_eq!(approved.approvals[0].actor, "bob");
    let applied = requests
        .apply_change_request(pb::ApplyChangeRequestRequest {
            change_request_id: id.clone(),
            metadata: meta("carol", "ship it"),
        })
        .await
        .expect("apply")
        .into_inner();
    assert_eq!(applied.applied_version, Some(1));
    let version = configs
        .get_config(pb::GetConfigRequest {
            config_id: "app".into(),
        })
        .await
        .expect("GetConfig")
        .into_inner();
    assert_eq!(version.version, 1);
    assert_eq!(version.metadata.unwrap().actor, "carol");
}

#[tokio::test]
async fn health_and_reflection_serve_the_change_request_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    const SERVICE: &str = "summit.config.v1.ChangeRequestService";
    let server = TestServer::spawn().await;
    let channel = channel(&server).await;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: SERVICE.into(),
        })
        .await
        .expect("Health.Check")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let response: ServerReflectionResponse = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("ServerReflectionInfo")
        .into_inner()
        .message()
        .await
        .expect("reflection stream")
        .expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list: {response:?}");
    };
    assert!(
        list.service.iter().any(|s| s.name == SERVICE),
        "{:?}",
        list.service
    );
}

#[tokio::test]
async fn a_grpc_flag_write_reaching_production_becomes_a_change_request_and_applies() {
    use summit_config::api::grpc::pb::flag_service_client::FlagServiceClient;
    let mut team = team().await;
    let mut flags = FlagServiceClient::new(channel(&team.server).await);
    let definition = json!({"type": "boolean", "variants": {"on": true, "off": false},
                            "defaultVariant": "off",
                            "environments": {"production": {"defaultVariant": "on"}}});
    let created = flags
        .put_flag(as_token(
            &team.alice,
            pb::PutFlagRequest {
                flag_key: "dark-mode".into(),
                definition_json: definition.to_string(),
                metadata: meta("alice", "new flag"),
                expected_version: None,
            },
        ))
        .await
        .expect("put flag")
        .into_inner();
    assert_eq!(created.version, 0, "{created:?}");
    let id = created.change_request_id;
    assert!(!id.is_empty(), "the write became a change request");

    let listed = team
        .requests
        .list_change_requests(as_token(
            &team.reader,
            pb::ListChangeRequestsRequest {
                flag_key: "dark-mode".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    let [request] = listed.items.as_slice() else {
        panic!("one pending request: {listed:?}");
    };
    assert_eq!(
        (request.flag_key.as_str(), request.config_id.as_str()),
        ("dark-mode", "")
    );
    match request
        .operation
        .as_ref()
        .and_then(|o| o.operation.as_ref())
    {
        Some(Operation::PutFlagDefinitionJson(text)) => {
            let proposed: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                proposed["environments"]["production"]["defaultVariant"],
                "on"
            );
        }
        other => panic!("a flag definition is proposed: {other:?}"),
    }
    for approver in [team.bob.clone(), team.carol.clone()] {
        team.requests
            .approve_change_request(as_token(&approver, approve(&id)))
            .await
            .expect("approve");
    }
    let applied = team
        .requests
        .apply_change_request(as_token(&team.alice, apply(&id)))
        .await
        .expect("apply")
        .into_inner();
    assert_eq!(
        (applied.status.as_str(), applied.applied_version),
        ("applied", Some(1))
    );
    let flag = flags
        .get_flag(as_token(
            &team.reader,
            pb::GetFlagRequest {
                flag_key: "dark-mode".into(),
            },
        ))
        .await
        .expect("the flag exists once applied")
        .into_inner();
    assert_eq!(flag.version, 1);
}
