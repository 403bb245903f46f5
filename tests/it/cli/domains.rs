//! Flags, secrets, tokens, deployments and the registry from the CLI.

use super::*;

#[tokio::test]
async fn flags_are_set_read_listed_and_evaluated() {
    let server = secured("").await;
    let definition = "type: boolean\nvariants: {on: true, off: false}\ndefaultVariant: off\n\
                      rules:\n  - id: staff\n    conditions: [{attribute: email, operator: ends_with, value: '@acme.com'}]\n    variant: on\n";
    let set = cli_in(
        &server,
        &["flag", "set", "new-ui", "-f", "-", "-o", "json"],
        definition,
    )
    .await;
    assert_eq!(set.ok().json()["version"], 1);
    let flag = cli(&server, &["flag", "get", "new-ui", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(flag["defaultVariant"], "off");
    let list = cli(&server, &["flag", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(list["items"][0]["key"], "new-ui");
    let args = [
        "flag",
        "eval",
        "new-ui",
        "--targeting-key",
        "u1",
        "--attr",
        "email=a@acme.com",
        "-o",
        "json",
    ];
    let on = cli(&server, &args).await.ok().json();
    assert_eq!(
        (on["value"].clone(), on["reason"].clone()),
        (json!(true), json!("TARGETING_MATCH"))
    );
    let off = cli(
        &server,
        &["flag", "eval", "new-ui", "--targeting-key", "u2"],
    )
    .await
    .ok()
    .stdout;
    assert!(
        off.starts_with("new-ui = false  (variant off, DEFAULT"),
        "{off}"
    );
    assert_eq!(cli(&server, &["flag", "get", "ghost"]).await.code, 3);
    assert_eq!(
        cli(&server, &["flag", "eval", "new-ui", "--attr", "nope"])
            .await
            .code,
        2
    );
}

#[tokio::test]
async fn secret_values_are_printed_only_when_asked_for() {
    let server = secured("").await;
    let created = cli_in(
        &server,
        &["secret", "create", "db-password", "-o", "json"],
        "hunter2\n",
    )
    .await;
    assert_eq!(created.ok().json()["version"], 1);
    let rotated = cli_in(
        &server,
        &["secret", "rotate", "db-password", "--value-file", "-"],
        "hunter3",
    )
    .await;
    assert!(
        rotated
            .ok()
            .stdout
            .starts_with("db-password: version 2 written")
    );
    for args in [
        &["secret", "list"][..],
        &["secret", "list", "-o", "json"],
        &["secret", "get", "db-password", "-o", "yaml"],
    ] {
        let shown = cli(&server, args).await.ok().stdout;
        assert!(
            shown.contains("db-password") && !shown.contains("hunter"),
            "{shown}"
        );
    }
    let args = ["secret", "get", "db-password", "--show-value", "-o", "json"];
    assert_eq!(cli(&server, &args).await.ok().json()["value"], "hunter3");
}

#[tokio::test]
async fn tokens_are_created_listed_and_revoked() {
    let server = secured("").await;
    let reader = token(&server, "reader", "config-reader").await;
    assert!(reader.starts_with("sc_"));
    cli_as(&server, &reader, &["list"], None).await.ok();
    let listed = cli(&server, &["token", "list", "-o", "json"]).await.ok();
    assert!(!listed.stdout.contains(&reader), "no token text in a list");
    let items = listed.json()["items"].as_array().unwrap().clone();
    let id = items.iter().find(|t| t["name"] == "reader").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli(&server, &["token", "revoke", &id]).await.ok();
    assert_eq!(cli_as(&server, &reader, &["list"], None).await.code, 6);
    assert_eq!(cli(&server, &["token", "revoke", &id]).await.code, 4);
    assert_eq!(
        cli(
            &server,
            &["token", "create", "--name", "x", "--role", "wizard"]
        )
        .await
        .code,
        5
    );
}

#[tokio::test]
async fn deployments_and_the_registry_from_the_cli() {
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        s.deployment_environments = "production".into();
        s.deployment_tick_ms = 50;
    })
    .await;
    for (n, id) in ["web-0", "web-1"].into_iter().enumerate() {
        let body = json!({"serviceName": "web", "instanceId": id, "environment": "production",
                          "serviceUrl": format!("http://127.0.0.1:{}", 10_000 + n)});
        let response = server
            .client
            .post(server.url("/api/v1/registry/register"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let services = cli(&server, &["registry", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(services["services"][0]["serviceName"], "web");
    let args = [
        "registry",
        "discover",
        "web",
        "--env",
        "production",
        "-o",
        "json",
    ];
    let found = cli(&server, &args).await.ok().json();
    assert_eq!(found["total"], 2);
    let table = cli(&server, &["registry", "discover", "web"])
        .await
        .ok()
        .stdout;
    assert!(table.starts_with("web: 2 healthy of 2\n"), "{table}");

    for document in [r#"{"config": {"a": 1}}"#, r#"{"config": {"a": 2}}"#] {
        cli_in(&server, &["set", "app", "-f", "-"], document)
            .await
            .ok();
    }
    let args = [
        "deploy",
        "start",
        "app",
        "--env",
        "production",
        "--version",
        "2",
        "--strategy",
        "blue-green",
        "--instance",
        "web-0",
        "--instance",
        "web-1",
        "-o",
        "json",
    ];
    let started = cli(&server, &args).await.ok().json();
    let id = started["id"].as_str().unwrap().to_owned();
    let listed = cli(
        &server,
        &["deploy", "list", "--config", "app", "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(listed["items"][0]["id"], id.as_str());
    let status = cli(&server, &["deploy", "status", &id]).await.ok().stdout;
    assert!(
        status.starts_with(&format!("deployment {id}: app v2 to production: ")),
        "{status}"
    );
    let aborted = cli(&server, &["deploy", "abort", &id, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(aborted["state"], "aborted");
    assert_eq!(cli(&server, &["deploy", "abort", &id]).await.code, 4);
    let followed = cli(&server, &["deploy", "status", &id, "--follow"])
        .await
        .ok()
        .stdout;
    assert_eq!(followed.lines().count(), 1, "an ended deployment: one line");
    assert!(followed.contains(": aborted step "), "{followed}");
    let lines = cli(
        &server,
        &["deploy", "status", &id, "--follow", "-o", "json"],
    )
    .await
    .ok()
    .stdout;
    assert_eq!(lines.lines().count(), 1, "JSON Lines: {lines}");
    let state: Value = serde_json::from_str(lines.trim_end()).unwrap();
    assert_eq!(state["state"], "aborted");
    let log = cli(&server, &["deploy", "log", &id, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        log["items"].as_array().unwrap().last().unwrap()["to"],
        "aborted"
    );
    assert_eq!(
        cli(
            &server,
            &["deploy", "status", "00000000-0000-4000-8000-000000000000"]
        )
        .await
        .code,
        3
    );
}
