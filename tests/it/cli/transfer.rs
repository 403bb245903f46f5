//! `export` and `import`: a round trip between two servers gives the same effective configs and
//! flag evaluations; secrets travel as references only; the manifest guards the files; the
//! policies decide what happens to what exists.

use super::apply::directory;
use super::*;

const SECRET_VALUE: &str = "correct-horse-battery-staple";
const ENVIRONMENTS: [&str; 3] = ["production", "staging", "dev"];

/// Two configs (one with every layer, a schema and a secret reference, and a history of three
/// versions) and a flag with targeting.
async fn populate(server: &TestServer) {
    let secret = cli_in(server, &["secret", "create", "db-password"], SECRET_VALUE).await;
    secret.ok();
    let checkout = json!({
        "config": {"timeoutMs": 3000, "color": "blue", "db": {"$secret": "store:db-password"}},
        "overrides": {"production": {"timeoutMs": 1000}},
        "canary": {"environment": "production", "trafficPercent": 25, "config": {"timeoutMs": 700},
                   "startAt": "2026-01-01T00:00:00Z"},
        "abTest": {"name": "colors", "variants": [
            {"name": "a", "weight": 50, "config": {"color": "red"}},
            {"name": "b", "weight": 50, "config": {"color": "green"}}]}
    });
    for timeout in [3000, 2500] {
        let mut first = checkout.clone();
        first["config"]["timeoutMs"] = json!(timeout);
        cli_in(
            server,
            &["set", "checkout", "-f", "-", "-m", "step"],
            &first.to_string(),
        )
        .await
        .ok();
    }
    cli_in(
        server,
        &["set", "checkout", "-f", "-"],
        &checkout.to_string(),
    )
    .await
    .ok();
    let schema = r#"{"type": "object", "required": ["timeoutMs"]}"#;
    cli_in(
        server,
        &["schema", "register", "checkout", "-f", "-"],
        schema,
    )
    .await
    .ok();
    cli_in(
        server,
        &["set", "payments", "-f", "-"],
        r#"{"config": {"currency": "EUR"}}"#,
    )
    .await
    .ok();
    let flag = json!({
        "type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
        "environments": {"production": {"enabled": true, "rules": [
            {"id": "staff", "conditions": [{"attribute": "email", "operator": "ends_with", "value": "@acme.com"}], "variant": "on"},
            {"id": "beta", "targetKeys": ["user-7"], "variant": "on"}]},
            "staging": {"enabled": true, "defaultVariant": "on"}}
    });
    cli_in(
        server,
        &["flag", "set", "new-ui", "-f", "-"],
        &flag.to_string(),
    )
    .await
    .ok();
}

/// What every instance would get and every flag evaluation, for comparing two servers.
async fn observed(server: &TestServer) -> Vec<Value> {
    let mut seen = Vec::new();
    for id in ["checkout", "payments"] {
        for env in ENVIRONMENTS {
            for key in ["user-1", "user-2", "user-7", "user-42", "user-1000"] {
                let args = ["effective", id, "--env", env, "--key", key, "-o", "json"];
                let view = cli(server, &args).await.ok().json();
                seen.push(json!([
                    id,
                    env,
                    key,
                    view["effectiveConfig"],
                    view["assignment"]
                ]));
            }
        }
    }
    for env in ENVIRONMENTS {
        for (key, email) in [
            ("user-1", "a@acme.com"),
            ("user-7", "b@other.com"),
            ("user-9", "c@x.org"),
        ] {
            let email = format!("email={email}");
            let args = [
                "flag",
                "eval",
                "new-ui",
                "--env",
                env,
                "--targeting-key",
                key,
                "--attr",
                &email,
                "-o",
                "json",
            ];
            let result = cli(server, &args).await.ok().json();
            seen.push(json!([
                env,
                key,
                result["value"],
                result["variant"],
                result["reason"]
            ]));
        }
    }
    seen
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_round_trip_to_a_fresh_server_gives_the_same_configs_and_flag_evaluations() {
    let source = secured("").await;
    populate(&source).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let dir = dir.to_str().unwrap();
    let exported = cli(&source, &["export", dir, "--history", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(exported["formatVersion"], 1);
    assert_eq!(exported["source"], source.base);
    assert!(exported["revision"].as_u64().unwrap() > 0);
    assert_eq!(
        exported["counts"],
        json!({"configs": 2, "schemas": 1, "flags": 1, "secretReferences": 1})
    );
    for path in files_under(std::path::Path::new(dir)) {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(SECRET_VALUE),
            "{} holds the secret's value",
            path.display()
        );
    }
    let secrets: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{dir}/secrets.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        secrets["references"]["store:db-password"],
        json!(["checkout"])
    );
    assert_eq!(secrets["store"][0]["name"], "db-password");
    let again = cli(&source, &["export", dir]).await;
    assert_eq!(
        again.code, 2,
        "a directory that is not empty: {}",
        again.stderr
    );

    let target = secured("").await;
    let imported = cli(&target, &["import", dir, "-o", "json"])
        .await
        .ok()
        .json();
    let created: Vec<Value> = imported["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["kind"], c["id"]]))
        .collect();
    assert_eq!(
        created,
        [
            json!(["schema", "checkout"]),
            json!(["config", "checkout"]),
            json!(["config", "payments"]),
            json!(["flag", "new-ui"])
        ]
    );
    assert_eq!(imported["failed"], json!([]));
    assert_eq!(imported["missingSecrets"], json!(["store:db-password"]));

    assert_eq!(observed(&source).await, observed(&target).await);
    let history = cli(&target, &["versions", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    let messages: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["metadata"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[2].starts_with("imported version 1 by") && messages[2].ends_with(": step"),
        "{messages:?}"
    );

    // Once more: everything is already there and the same.
    let twice = cli(&target, &["import", dir]).await.ok().stdout;
    assert!(
        twice.contains("created 0, overwritten 0, unchanged 3"),
        "{twice}"
    );
}

#[tokio::test]
async fn policies_decide_what_happens_to_what_exists_and_a_changed_file_stops_the_import() {
    let source = secured("").await;
    populate(&source).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let dir = dir.to_str().unwrap();
    cli(&source, &["export", dir]).await.ok();

    let target = secured("").await;
    cli_in(
        &target,
        &["set", "payments", "-f", "-"],
        r#"{"config": {"currency": "USD"}}"#,
    )
    .await
    .ok();
    let abort = cli(&target, &["import", dir]).await;
    assert_eq!(abort.code, 4, "{}", abort.stderr);
    assert!(
        abort.stderr.contains("config payments: exists (version 1)"),
        "{}",
        abort.stderr
    );
    assert_eq!(
        cli(&target, &["get", "checkout"]).await.code,
        3,
        "nothing was imported"
    );

    assert_eq!(
        skipped_by_import(&target, dir).await,
        json!([{"kind": "config", "id": "payments"}])
    );
    let payments = cli(&target, &["get", "payments", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(payments["config"]["currency"], "USD");

    let overwrite = cli(
        &target,
        &["import", dir, "--policy", "overwrite", "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        overwrite["overwritten"],
        json!([{"kind": "config", "id": "payments", "version": 2}])
    );
    let payments = cli(&target, &["get", "payments", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(payments["config"]["currency"], "EUR");

    // A file changed after the export, or one the export did not write: nothing is imported.
    let fresh = secured("").await;
    let flag = format!("{dir}/flags/new-ui.yaml");
    let original = std::fs::read_to_string(&flag).unwrap();
    std::fs::write(
        &flag,
        original.replace("defaultVariant: off", "defaultVariant: on"),
    )
    .unwrap();
    let tampered = cli(&fresh, &["import", dir]).await;
    assert_eq!(tampered.code, 5, "{}", tampered.stderr);
    assert!(
        tampered
            .stderr
            .contains("flags/new-ui.yaml: changed since the export"),
        "{}",
        tampered.stderr
    );
    std::fs::write(&flag, original).unwrap();
    std::fs::write(format!("{dir}/configs/extra.yaml"), "config: {}\n").unwrap();
    let extra = cli(&fresh, &["import", dir]).await;
    assert_eq!(extra.code, 5, "{}", extra.stderr);
    assert!(
        extra
            .stderr
            .contains("configs/extra.yaml: not in the manifest"),
        "{}",
        extra.stderr
    );
    assert_eq!(
        cli(&fresh, &["list", "-o", "json"]).await.ok().json()["items"],
        json!([])
    );

    let not_an_export = directory(&[("configs/a.yaml", "config: {}\n")]);
    let run = cli(&fresh, &["import", not_an_export.path().to_str().unwrap()]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("summit-export.json"), "{}", run.stderr);
}

#[tokio::test]
async fn a_history_is_not_replayed_where_writes_need_approval_and_one_request_proposes_the_export()
{
    let source = secured("").await;
    for timeout in [3000, 2500, 1000] {
        let doc = json!({"config": {"timeoutMs": timeout}}).to_string();
        cli_in(&source, &["set", "checkout", "-f", "-"], &doc)
            .await
            .ok();
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let dir = dir.to_str().unwrap();
    cli(&source, &["export", dir, "--history"]).await.ok();

    let target = secured("production=1").await;
    let alice = token(&target, "alice", "config-admin").await;
    let imported = cli_as(&target, &alice, &["import", dir, "-o", "json"], None)
        .await
        .ok()
        .json();
    assert_eq!(
        imported["pending"].as_array().map(Vec::len),
        Some(1),
        "{imported}"
    );
    let all = cli(&target, &["pending", "--all", "-o", "json"])
        .await
        .ok()
        .json();
    let requests = all["items"].as_array().unwrap();
    let pending: Vec<&Value> = requests
        .iter()
        .filter(|r| r["status"] == "pending")
        .collect();
    assert_eq!(pending.len(), 1, "{all}");
    assert_eq!(
        pending[0]["operation"]["document"]["config"],
        json!({"timeoutMs": 1000}),
        "the config as exported: {all}"
    );
    assert!(
        requests.iter().any(|r| r["status"] == "cancelled"),
        "the first version's request withdrawn: {all}"
    );
}

#[tokio::test]
async fn an_export_of_an_empty_server_imports() {
    let source = secured("").await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let dir = dir.to_str().unwrap();
    cli(&source, &["export", dir]).await.ok();
    let target = secured("").await;
    let imported = cli(&target, &["import", dir, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(imported["created"], json!([]), "{imported}");
}

/// What `import --policy skip` of `dir` skipped.
async fn skipped_by_import(server: &TestServer, dir: &str) -> Value {
    let skip = cli(server, &["import", dir, "--policy", "skip", "-o", "json"])
        .await
        .ok()
        .json();
    skip["skipped"].clone()
}

/// `checkout` with `{field: 1}` and a schema that requires `field`.
async fn checkout_with_schema(server: &TestServer, field: &str) {
    let document = json!({"config": {field: 1}}).to_string();
    cli_in(server, &["set", "checkout", "-f", "-"], &document)
        .await
        .ok();
    let schema = json!({"type": "object", "required": [field]}).to_string();
    cli_in(
        server,
        &["schema", "register", "checkout", "-f", "-"],
        &schema,
    )
    .await
    .ok();
}

#[tokio::test]
async fn a_schema_left_by_a_deleted_config_is_something_the_policy_decides_on() {
    let source = secured("").await;
    checkout_with_schema(&source, "timeoutMs").await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let dir = dir.to_str().unwrap();
    cli(&source, &["export", dir]).await.ok();

    // Here the config had another schema and was deleted; its schema stays.
    let target = secured("").await;
    checkout_with_schema(&target, "retries").await;
    let (status, _) = crate::authorization::call(
        &target,
        ADMIN,
        reqwest::Method::DELETE,
        "/api/v1/configs/checkout",
        Some(json!({"metadata": {"actor": "ops", "message": "gone"}})),
    )
    .await;
    assert_eq!(status, 200);
    let abort = cli(&target, &["import", dir]).await;
    assert_eq!(abort.code, 4, "{}", abort.stderr);
    assert!(
        abort.stderr.contains("config checkout: its schema exists"),
        "{}",
        abort.stderr
    );
    assert_eq!(
        skipped_by_import(&target, dir).await,
        json!([{"kind": "config", "id": "checkout"}])
    );
    assert_eq!(cli(&target, &["get", "checkout"]).await.code, 3);
}
