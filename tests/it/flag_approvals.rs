//! Flags go through the same approval workflow as configs: a flag write that changes what a
//! protected environment serves (its own targeting, or flag-wide fields it inherits) becomes a
//! change request; other environments' changes apply at once.

use reqwest::Method;
use serde_json::{Value, json};

use crate::approvals::{ADMIN, Team, call, team};
use crate::common::meta;

/// Production serves `production`; staging serves `staging`.
fn checkout(production: &str, staging: &str, actor: &str) -> Value {
    json!({
        "type": "string",
        "variants": {"old": "old", "new": "new"},
        "defaultVariant": "old",
        "environments": {
            "production": {"defaultVariant": production},
            "staging": {"defaultVariant": staging}
        },
        "metadata": meta(actor, "checkout flow")
    })
}

impl Team {
    async fn put_flag(&self, body: Value) -> (u16, Value) {
        call(
            &self.server,
            &self.alice,
            Method::PUT,
            "/api/v1/feature-flags/checkout",
            Some(body),
        )
        .await
    }

    /// Two approvals from others, then the requester applies: the version it became.
    async fn approve_and_apply(&self, id: &str) -> Value {
        for approver in [&self.bob, &self.carol] {
            let (status, request) = self.act(approver, id, "approve", None).await;
            assert_eq!(status, 200, "{request}");
        }
        let (status, applied) = self.act(&self.alice, id, "apply", None).await;
        assert_eq!(
            (status, &applied["status"]),
            (200, &json!("applied")),
            "{applied}"
        );
        applied["appliedVersion"].clone()
    }

    async fn serves(&self, environment: &str) -> Value {
        let (status, evaluation) = call(
            &self.server,
            &self.reader,
            Method::POST,
            "/api/v1/feature-flags/evaluate",
            Some(json!({"flagKey": "checkout", "environment": environment,
                        "context": {"targetingKey": "user-1"}})),
        )
        .await;
        assert_eq!(status, 200, "{evaluation}");
        evaluation["value"].clone()
    }
}

#[tokio::test]
async fn a_flag_change_reaching_production_waits_for_approvals_and_applies_as_a_version() {
    let team = team().await;

    // Creating a flag reaches every environment, production included.
    let (status, request) = team.put_flag(checkout("old", "old", "alice")).await;
    assert_eq!(status, 202, "{request}");
    assert_eq!(
        (
            &request["flagKey"],
            &request["status"],
            &request["operation"]["type"]
        ),
        (&json!("checkout"), &json!("pending"), &json!("put"))
    );
    assert!(request.get("configId").is_none(), "{request}");
    assert_eq!(request["environments"], json!(["production"]));
    let created = request["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/feature-flags/checkout",
        None,
    )
    .await;
    assert_eq!(status, 404, "nothing written while pending");
    let (status, problem) = team.act(&team.alice, &created, "approve", None).await;
    assert_eq!(status, 403, "self-approval: {problem}");
    assert_eq!(team.approve_and_apply(&created).await, json!(1));
    assert_eq!(team.serves("production").await, json!("old"));

    // Staging's own targeting is not protected: applied at once.
    let (status, written) = team.put_flag(checkout("old", "new", "alice")).await;
    assert_eq!((status, &written["version"]), (201, &json!(2)), "{written}");
    assert_eq!(team.serves("staging").await, json!("new"));

    // Production's targeting waits; a staging-scoped approver cannot decide it.
    let (status, request) = team.put_flag(checkout("new", "new", "alice")).await;
    assert_eq!(status, 202, "{request}");
    assert_eq!(request["baseVersion"], json!(2));
    let pending = request["id"].as_str().unwrap().to_owned();
    let (status, listed) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/change-requests?flagKey=checkout",
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [pending.as_str()], "only the pending flag request");
    let (status, listed) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/change-requests?configId=checkout",
        None,
    )
    .await;
    assert_eq!(
        (status, &listed["items"]),
        (200, &json!([])),
        "no config request"
    );
    let (_, scoped) = call(
        &team.server,
        ADMIN,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "staging-admin", "roles": ["config-admin"],
                    "scopes": {"environments": ["staging"]}})),
    )
    .await;
    let scoped = scoped["tokenText"].as_str().unwrap().to_owned();
    let (status, problem) = team.act(&scoped, &pending, "approve", None).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(team.serves("production").await, json!("old"), "not yet");
    assert_eq!(team.approve_and_apply(&pending).await, json!(3));
    assert_eq!(team.serves("production").await, json!("new"));
    let (_, flag) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/feature-flags/checkout",
        None,
    )
    .await;
    assert_eq!(flag["version"], json!(3));
    assert!(
        flag["metadata"]["message"]
            .as_str()
            .unwrap()
            .contains(&pending),
        "{flag}"
    );

    // A rollback that changes production waits too, and so does a delete.
    let (status, request) = call(
        &team.server,
        &team.alice,
        Method::POST,
        "/api/v1/feature-flags/checkout/rollback",
        Some(json!({"targetVersion": 2, "metadata": meta("alice", "back")})),
    )
    .await;
    assert_eq!(status, 202, "{request}");
    assert_eq!(
        request["operation"],
        json!({"type": "rollback", "targetVersion": 2})
    );
    let (status, request) = call(
        &team.server,
        &team.alice,
        Method::DELETE,
        "/api/v1/feature-flags/checkout",
        Some(json!({"metadata": meta("alice", "retire")})),
    )
    .await;
    assert_eq!(
        (status, &request["operation"]["type"]),
        (202, &json!("delete")),
        "{request}"
    );
    assert_eq!(
        team.approve_and_apply(request["id"].as_str().unwrap())
            .await,
        json!(3)
    );
    let (status, _) = call(
        &team.server,
        &team.reader,
        Method::GET,
        "/api/v1/feature-flags/checkout",
        None,
    )
    .await;
    assert_eq!(status, 404, "deleted once applied");
}

#[tokio::test]
async fn an_approved_flag_change_whose_base_moved_cannot_be_applied() {
    let team = team().await;
    let (_, request) = team.put_flag(checkout("old", "old", "alice")).await;
    team.approve_and_apply(request["id"].as_str().unwrap())
        .await;
    let (status, request) = team.put_flag(checkout("new", "old", "alice")).await;
    assert_eq!(status, 202, "{request}");
    let stale = request["id"].as_str().unwrap().to_owned();
    for approver in [&team.bob, &team.carol] {
        team.act(approver, &stale, "approve", None).await;
    }
    // Meanwhile staging changes (no approval needed): the flag moves to version 2.
    let (status, _) = team.put_flag(checkout("old", "new", "alice")).await;
    assert_eq!(status, 201);
    let (status, problem) = team.act(&team.alice, &stale, "apply", None).await;
    assert_eq!(
        (status, &problem["code"]),
        (409, &json!("conflict")),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("rebase"),
        "{problem}"
    );
    assert_eq!(team.serves("production").await, json!("old"));
}
