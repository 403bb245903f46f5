//! The approval flow: pending, approve, reject, cancel.

use super::*;

#[tokio::test]
async fn a_protected_change_goes_through_pending_and_approve() {
    let server = secured("production=2").await;
    let alice = token(&server, "alice", "config-admin").await;
    let bob = token(&server, "bob", "config-admin").await;
    let carol = token(&server, "carol", "config-admin").await;
    let document =
        r#"{"config": {"timeoutMs": 1000}, "overrides": {"production": {"timeoutMs": 900}}}"#;
    let args = ["set", "app", "-f", "-", "-m", "first"];
    let proposed = cli_as(&server, &alice, &args, Some(document))
        .await
        .ok()
        .stdout;
    assert!(proposed.starts_with("change request "), "{proposed}");
    assert!(
        proposed.contains("needs 2 approval(s) for production"),
        "{proposed}"
    );

    let pending = cli(&server, &["pending", "-o", "json"]).await.ok().json();
    let request = pending["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(pending["items"][0]["configId"], "app");
    let table = cli(&server, &["pending"]).await.ok().stdout;
    assert!(table.contains(&request) && table.contains("0/2"), "{table}");

    let own = cli_as(&server, &alice, &["approve", &request], None).await;
    assert_eq!(own.code, 6, "self-approval is forbidden: {}", own.stderr);
    let first = cli_as(&server, &bob, &["approve", &request, "--apply"], None)
        .await
        .ok();
    assert!(first.stdout.contains("pending"), "{}", first.stdout);
    let twice = cli_as(&server, &bob, &["approve", &request], None).await;
    assert_eq!(twice.code, 4, "{}", twice.stderr);
    let applied = cli_as(
        &server,
        &carol,
        &["approve", &request, "--apply", "-o", "json"],
        None,
    )
    .await;
    let applied = applied.ok().json();
    assert_eq!(
        (applied["status"].clone(), applied["appliedVersion"].clone()),
        (json!("applied"), json!(1))
    );
    assert_eq!(
        cli(&server, &["get", "app", "-o", "json"])
            .await
            .ok()
            .json()["version"],
        1
    );
    assert_eq!(
        cli(&server, &["pending", "-o", "json"]).await.ok().json()["items"],
        json!([])
    );

    let change = r#"{"timeoutMs": 500}"#;
    let args = ["set", "app", "--env", "production", "-f", "-", "-o", "json"];
    let proposed = cli_as(&server, &alice, &args, Some(change))
        .await
        .ok()
        .json();
    let request = proposed["id"].as_str().unwrap();
    let args = ["reject", request, "--reason", "not today", "-o", "json"];
    let rejected = cli_as(&server, &bob, &args, None).await.ok().json();
    assert_eq!(
        (rejected["status"].clone(), rejected["reason"].clone()),
        (json!("rejected"), json!("not today"))
    );
    assert_eq!(
        cli(&server, &["reject", request, "--reason", "again"])
            .await
            .code,
        4
    );
    assert_eq!(cli(&server, &["reject", request]).await.code, 2);
}

#[tokio::test]
async fn a_requester_cancels_their_own_request_and_no_one_else_does() {
    let server = secured("production=1").await;
    let alice = token(&server, "alice", "config-admin").await;
    let bob = token(&server, "bob", "config-admin").await;
    let document = r#"{"config": {"timeoutMs": 1000}}"#;
    let proposed = cli_as(
        &server,
        &alice,
        &["set", "app", "-f", "-", "-o", "json"],
        Some(document),
    )
    .await
    .ok()
    .json();
    let request = proposed["id"].as_str().unwrap();
    let other = cli_as(&server, &bob, &["cancel", request], None).await;
    assert_eq!(other.code, 6, "not bob's to cancel: {}", other.stderr);
    let args = ["cancel", request, "--reason", "wrong timeout", "-o", "json"];
    let cancelled = cli_as(&server, &alice, &args, None).await.ok().json();
    assert_eq!(
        (cancelled["status"].clone(), cancelled["reason"].clone()),
        (json!("cancelled"), json!("wrong timeout"))
    );
    let table = cli_as(&server, &alice, &["cancel", request], None).await;
    assert_eq!(table.code, 4, "a final request: {}", table.stderr);
    assert_eq!(
        cli(&server, &["cancel", "00000000-0000-4000-8000-000000000000"])
            .await
            .code,
        3
    );
}
