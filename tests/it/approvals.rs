//! The approval workflow over REST with access control on: production needs two approvals
//! from config-admins other than the requester; staging is applied at once.

use crate::common;

use common::{TestServer, body_of, meta};
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) const ADMIN: &str = "admin-token-for-the-approval-tests-0123456789";

pub(crate) struct Team {
    pub(crate) server: TestServer,
    pub(crate) alice: String,
    pub(crate) bob: String,
    pub(crate) carol: String,
    pub(crate) reader: String,
}

pub(crate) async fn team() -> Team {
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        s.protected_environments = "production=2".into();
    })
    .await;
    let mut tokens = Vec::new();
    for (name, role) in [
        ("alice", "config-admin"),
        ("bob", "config-admin"),
        ("carol", "config-admin"),
        ("reader", "config-reader"),
    ] {
        let (status, created) = call(
            &server,
            ADMIN,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": name, "roles": [role]})),
        )
        .await;
        assert_eq!(status, 201);
        tokens.push(created["tokenText"].as_str().unwrap().to_owned());
    }
    let [alice, bob, carol, reader] = tokens.try_into().unwrap();
    Team {
        server,
        alice,
        bob,
        carol,
        reader,
    }
}

pub(crate) async fn call(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    body_of(request.send().await.expect("request")).await
}

/// Changes staging only, keeping production's override as `production` (it currently is).
fn staging_only(timeout: u64, production: u64) -> Value {
    json!({"config": {"timeoutMs": 1000},
           "overrides": {"staging": {"timeoutMs": timeout}, "production": {"timeoutMs": production}},
           "metadata": meta("alice", "staging tweak")})
}

fn with_production(timeout: u64) -> Value {
    json!({"config": {"timeoutMs": 1000}, "overrides": {"staging": {"timeoutMs": 500}, "production": {"timeoutMs": timeout}},
           "metadata": meta("alice", "production change")})
}

impl Team {
    async fn request_change(&self, body: Value) -> String {
        let (status, request) = call(
            &self.server,
            &self.alice,
            Method::PUT,
            "/api/v1/configs/app",
            Some(body),
        )
        .await;
        assert_eq!(status, 202, "{request}");
        assert_eq!(request["status"], "pending");
        request["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn act(
        &self,
        token: &str,
        id: &str,
        action: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(
            &self.server,
            token,
            Method::POST,
            &format!("/api/v1/change-requests/{id}/{action}"),
            body,
        )
        .await
    }

    /// Version 1 of `app`, through the whole workflow (creating a config touches every
    /// environment, production included).
    async fn seed(&self) {
        let id = self.request_change(with_production(900)).await;
        self.act(&self.bob, &id, "approve", None).await;
        self.act(&self.carol, &id, "approve", None).await;
        let (status, applied) = self.act(&self.alice, &id, "apply", None).await;
        assert_eq!(
            (status, applied["appliedVersion"].clone()),
            (200, json!(1)),
            "{applied}"
        );
    }

    async fn version(&self) -> Value {
        call(
            &self.server,
            &self.reader,
            Method::GET,
            "/api/v1/configs/app",
            None,
        )
        .await
        .1["version"]
            .clone()
    }
}

#[tokio::test]
async fn a_production_change_waits_for_two_other_approvals_then_applies() {
    let team = team().await;
    // A new config touches every environment, production included.
    let id = team.request_change(with_production(800)).await;
    let (status, _) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/configs/app",
        None,
    )
    .await;
    assert_eq!(status, 404, "nothing written while pending");

    let (status, problem) = team.act(&team.alice, &id, "approve", None).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (403, json!("forbidden")),
        "self-approval: {problem}"
    );
    let (status, _) = team.act(&team.reader, &id, "approve", None).await;
    assert_eq!(status, 403, "a reader cannot approve");
    let (_, staging_admin) = call(&team.server, ADMIN, Method::POST, "/api/v1/tokens",
        Some(json!({"name": "staging-admin", "roles": ["config-admin"], "scopes": {"environments": ["staging"]}}))).await;
    let staging_admin = staging_admin["tokenText"].as_str().unwrap().to_owned();
    let (status, _) = team.act(&staging_admin, &id, "approve", None).await;
    assert_eq!(
        status, 403,
        "an approver scoped to staging cannot approve production changes"
    );
    let (status, request) = team.act(&team.bob, &id, "approve", None).await;
    assert_eq!((status, request["status"].clone()), (200, json!("pending")));
    let (status, problem) = team.act(&team.bob, &id, "approve", None).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (409, json!("conflict")),
        "double approval: {problem}"
    );
    let (status, request) = team.act(&team.carol, &id, "approve", None).await;
    assert_eq!(
        (status, request["status"].clone()),
        (200, json!("approved"))
    );
    assert_eq!(request["approvals"].as_array().unwrap().len(), 2);
    let (status, _) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/configs/app",
        None,
    )
    .await;
    assert_eq!(status, 404, "approved is not applied yet");

    let (status, applied) = team.act(&team.alice, &id, "apply", None).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(
        (applied["status"].clone(), applied["appliedVersion"].clone()),
        (json!("applied"), json!(1))
    );
    let (_, effective) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/configs/app/effective?environment=production",
        None,
    )
    .await;
    assert_eq!(effective["effectiveConfig"]["timeoutMs"], 800);
    let (status, _) = team.act(&team.alice, &id, "apply", None).await;
    assert_eq!(status, 409, "applying twice");
    // Staging is not protected: a staging-only change is applied at once.
    let (status, _) = call(
        &team.server,
        &team.alice,
        Method::PUT,
        "/api/v1/configs/app",
        Some(staging_only(450, 800)),
    )
    .await;
    assert_eq!(status, 201);

    // Every transition is audited (and a change event with a revision).
    let (_, audit) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/configs/app/audit",
        None,
    )
    .await;
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("change_request.create", "token:alice"),
        ("change_request.approve", "token:bob"),
        ("change_request.approve", "token:carol"),
        ("config.put", "token:alice"),
        ("change_request.apply", "token:alice"),
        ("config.put", "token:alice"),
    ];
    assert_eq!(actions, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    let revisions: Vec<u64> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert!(revisions.windows(2).all(|w| w[1] > w[0]), "{revisions:?}");
}

#[tokio::test]
async fn rejected_and_cancelled_requests_end_there() {
    let team = team().await;
    team.seed().await;
    let rejected = team.request_change(with_production(1)).await;
    let (status, problem) = team.act(&team.bob, &rejected, "reject", None).await;
    assert_eq!(
        (status, problem["field"].clone()),
        (400, json!("/reason")),
        "a rejection needs a reason"
    );
    let (status, request) = team
        .act(
            &team.bob,
            &rejected,
            "reject",
            Some(json!({"reason": "1 ms is too short"})),
        )
        .await;
    assert_eq!(
        (status, request["status"].clone(), request["reason"].clone()),
        (200, json!("rejected"), json!("1 ms is too short"))
    );
    assert_eq!(
        team.act(&team.carol, &rejected, "approve", None).await.0,
        409
    );
    assert_eq!(team.act(&team.alice, &rejected, "apply", None).await.0, 409);

    let cancelled = team.request_change(with_production(2)).await;
    let (status, _) = team.act(&team.bob, &cancelled, "cancel", None).await;
    assert_eq!(status, 403, "only the requester (or an admin) cancels");
    let (status, request) = team
        .act(
            &team.alice,
            &cancelled,
            "cancel",
            Some(json!({"reason": "wrong value"})),
        )
        .await;
    assert_eq!(
        (status, request["status"].clone()),
        (200, json!("cancelled"))
    );
    assert_eq!(
        team.act(&team.bob, &cancelled, "approve", None).await.0,
        409
    );
    assert_eq!(team.version().await, 1);

    // Listing: pending by default, filters by status and environment.
    let pending = team.request_change(with_production(3)).await;
    let (_, list) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/change-requests?environment=production",
        None,
    )
    .await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [pending.as_str()]);
    let (_, list) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/change-requests?status=all",
        None,
    )
    .await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        4,
        "the seed's, rejected, cancelled, pending"
    );
    let (_, list) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/change-requests?environment=staging",
        None,
    )
    .await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let (status, shown) = call(
        &team.server,
        &team.reader,
        Method::GET,
        &format!("/api/v1/change-requests/{rejected}"),
        None,
    )
    .await;
    assert_eq!((status, shown["status"].clone()), (200, json!("rejected")));
    let (status, _) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/change-requests/not-a-uuid",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/change-requests?status=done",
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_approved_change_whose_base_moved_cannot_be_applied() {
    let team = team().await;
    team.seed().await;
    let id = team.request_change(with_production(800)).await;
    team.act(&team.bob, &id, "approve", None).await;
    team.act(&team.carol, &id, "approve", None).await;
    // Meanwhile a staging-only change moves the config to version 2.
    let (status, _) = call(
        &team.server,
        &team.bob,
        Method::PUT,
        "/api/v1/configs/app",
        Some(staging_only(450, 900)),
    )
    .await;
    assert_eq!(status, 201);
    let (status, problem) = team.act(&team.alice, &id, "apply", None).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (409, json!("conflict")),
        "{problem}"
    );
    assert!(problem["detail"].as_str().unwrap().contains("rebase"));
    assert_eq!(team.version().await, 2, "nothing applied");
    let (_, request) = call(
        &team.server,
        &team.reader,
        Method::GET,
        &format!("/api/v1/change-requests/{id}"),
        None,
    )
    .await;
    assert_eq!(
        request["status"], "approved",
        "still approved, for the record; a new request is needed"
    );

    // Deletes touch every environment: approval. A rollback to version 1 differs from version 2
    // in staging only: applied at once.
    let (status, request) = call(
        &team.server,
        &team.alice,
        Method::DELETE,
        "/api/v1/configs/app",
        None,
    )
    .await;
    assert_eq!(
        (status, request["operation"]["type"].clone()),
        (202, json!("delete"))
    );
    let (status, request) = call(
        &team.server,
        &team.alice,
        Method::POST,
        "/api/v1/configs/app/rollback",
        Some(json!({"targetVersion": 1, "metadata": meta("alice", "back")})),
    )
    .await;
    assert_eq!(
        (status, request["rollbackOf"].clone()),
        (201, json!(1)),
        "{request}"
    );
}
