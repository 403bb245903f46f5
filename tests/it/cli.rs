//! The operator CLI as a user runs it: the real binary as a child process against a real server
//! (in-process, port 0, its own database). Exit codes, parsed `-o json` output, colour rules and
//! the approval flow.

use crate::authorization::{ADMIN, secured};
use crate::common;

use common::TestServer;
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the binary with a clean environment (no inherited colour or SUMMIT_* variables).
async fn cli_with(server: &str, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Run {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_summit-config"));
    command
        .args(args)
        .env_clear()
        .current_dir(cwd.path())
        .env("SUMMIT_SERVER", server)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes())
            .await
            .expect("stdin written");
    }
    let output = child.wait_with_output().await.expect("the binary ends");
    Run {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Runs the binary as the admin.
async fn cli(server: &TestServer, args: &[&str]) -> Run {
    cli_with(&server.base, &[("SUMMIT_TOKEN", ADMIN)], args, None).await
}

async fn cli_in(server: &TestServer, args: &[&str], stdin: &str) -> Run {
    cli_with(&server.base, &[("SUMMIT_TOKEN", ADMIN)], args, Some(stdin)).await
}

/// `checkout` version 1 (base and a production override) and version 2 (a staging override set
/// with `--env`).
async fn two_versions(server: &TestServer) {
    let yaml = "config:\n  timeoutMs: 3000\noverrides:\n  production:\n    timeoutMs: 1000\n";
    let file = server.dir.path().join("checkout.yaml");
    std::fs::write(&file, yaml).unwrap();
    let path = file.to_str().unwrap();
    let created = cli(
        server,
        &["set", "checkout", "-f", path, "-m", "first", "-o", "json"],
    )
    .await;
    assert_eq!(created.ok().json()["version"], 1);
    let staging = r#"{"timeoutMs": 800}"#;
    let set = cli_in(
        server,
        &["set", "checkout", "--env", "staging", "-f", "-"],
        staging,
    )
    .await;
    assert!(set.ok().stdout.contains("checkout: version 2 written"));
}

#[tokio::test]
async fn set_env_replaces_one_override_and_keeps_the_rest() {
    let server = secured("").await;
    two_versions(&server).await;
    let current = cli(&server, &["get", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(current["version"], 2);
    assert_eq!(current["config"], json!({"timeoutMs": 3000}));
    assert_eq!(
        current["overrides"],
        json!({"production": {"timeoutMs": 1000}, "staging": {"timeoutMs": 800}})
    );
    let first = cli(
        &server,
        &["get", "checkout", "--version", "1", "-o", "yaml"],
    )
    .await;
    let first: Value = serde_yaml_ng::from_str(&first.ok().stdout).unwrap();
    assert_eq!(first["metadata"]["message"], "first");
    let table = cli(&server, &["get", "checkout"]).await.ok().stdout;
    assert!(table.starts_with("checkout version 2"), "{table}");
    assert!(
        !table.contains('{'),
        "a person reads YAML, not JSON: {table}"
    );
}

#[tokio::test]
async fn list_versions_rollback_audit_and_effective_answer_parsable_json() {
    let server = secured("").await;
    two_versions(&server).await;
    let list = cli(&server, &["list", "-o", "json"]).await.ok().json();
    assert_eq!(list["items"][0]["configId"], "checkout");
    assert_eq!(list["items"][0]["version"], 2);
    let table = cli(&server, &["list"]).await.ok().stdout;
    assert!(table.lines().next().unwrap().contains("CONFIG"), "{table}");

    let versions = cli(&server, &["versions", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    let numbers: Vec<_> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].clone())
        .collect();
    assert_eq!(numbers, [json!(2), json!(1)]);

    let rollback = cli(
        &server,
        &["rollback", "checkout", "1", "-m", "back", "-o", "json"],
    )
    .await;
    let rollback = rollback.ok().json();
    assert_eq!(
        (rollback["version"].clone(), rollback["rollbackOf"].clone()),
        (json!(3), json!(1))
    );

    let audit = cli(&server, &["audit", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(audit["items"][0]["action"], "config.rollback");
    assert_eq!(audit["items"][0]["message"], "back");
    let all = cli(&server, &["audit", "--limit", "2", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);

    let args = [
        "effective",
        "checkout",
        "--env",
        "production",
        "--key",
        "user-1",
        "-o",
        "json",
    ];
    let effective = cli(&server, &args).await.ok().json();
    assert_eq!(effective["effectiveConfig"], json!({"timeoutMs": 1000}));
    assert_eq!(effective["version"], 3);
}

#[tokio::test]
async fn diff_is_a_unified_diff_for_people_and_the_patch_for_scripts() {
    let server = secured("").await;
    two_versions(&server).await;
    let text = cli(&server, &["diff", "checkout", "1", "2"])
        .await
        .ok()
        .stdout;
    assert!(
        text.starts_with("--- checkout@1\n+++ checkout@2\n@@ "),
        "{text}"
    );
    assert!(
        text.contains("+    \"staging\": {\n+      \"timeoutMs\": 800\n"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour into a pipe: {text:?}");

    let patch = cli(&server, &["diff", "checkout", "1", "2", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        patch["patch"],
        json!([{"op": "add", "path": "/overrides/staging", "value": {"timeoutMs": 800}}])
    );
    let staging = cli(&server, &["diff", "checkout", "1", "2", "--env", "staging"])
        .await
        .ok()
        .stdout;
    assert!(
        staging.contains("-  \"timeoutMs\": 3000\n+  \"timeoutMs\": 800\n"),
        "{staging}"
    );
}

#[tokio::test]
async fn colour_only_when_forced_and_never_with_no_color() {
    let server = secured("").await;
    two_versions(&server).await;
    let args = ["diff", "checkout", "1", "2"];
    let forced = [("SUMMIT_TOKEN", ADMIN), ("CLICOLOR_FORCE", "1")];
    let coloured = cli_with(&server.base, &forced, &args, None)
        .await
        .ok()
        .stdout;
    assert!(coloured.contains("\u{1b}[32m+"), "{coloured:?}");
    let no_color = [
        ("SUMMIT_TOKEN", ADMIN),
        ("CLICOLOR_FORCE", "1"),
        ("NO_COLOR", "1"),
    ];
    let plain = cli_with(&server.base, &no_color, &args, None).await.ok();
    assert!(!plain.stdout.contains('\u{1b}'), "{:?}", plain.stdout);
    let failed = cli_with(&server.base, &no_color, &["get", "ghost"], None).await;
    assert!(!failed.stderr.contains('\u{1b}'), "{:?}", failed.stderr);
}

#[tokio::test]
async fn failures_end_with_their_documented_exit_codes() {
    let server = secured("").await;
    two_versions(&server).await;

    let missing = cli(&server, &["get", "ghost"]).await;
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    assert_eq!(
        missing.stderr,
        "error: config 'ghost' not found (not_found, HTTP 404)\n"
    );
    assert_eq!(cli(&server, &["versions", "checkout-x"]).await.code, 3);

    let stale = cli_in(
        &server,
        &["set", "checkout", "-f", "-", "--expected-version", "1"],
        r#"{"config": {}}"#,
    )
    .await;
    assert_eq!(stale.code, 4, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("version_conflict"),
        "{}",
        stale.stderr
    );

    let invalid = cli_in(&server, &["set", "checkout", "-f", "-"], r#"{"config": 5}"#).await;
    assert_eq!(invalid.code, 5, "{}", invalid.stderr);
    let lines: Vec<_> = invalid.stderr.lines().collect();
    assert!(
        lines[0].starts_with("error: ") && lines[0].ends_with("(invalid_input, HTTP 400)"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("  /config: "),
        "the field list: {lines:?}"
    );
    assert!(
        !invalid.stderr.contains('{'),
        "never a raw JSON dump: {}",
        invalid.stderr
    );

    let env = [("SUMMIT_TOKEN", "sc_wrong")];
    let refused = cli_with(&server.base, &env, &["list"], None).await;
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    let usage = cli(&server, &["get"]).await;
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    let not_a_document = cli_in(&server, &["set", "checkout", "-f", "-"], "[: nope").await;
    assert_eq!(not_a_document.code, 2, "{}", not_a_document.stderr);

    let unreachable = cli_with("http://127.0.0.1:1", &[], &["list"], None).await;
    assert_eq!(unreachable.code, 1, "{}", unreachable.stderr);
    assert!(
        unreachable
            .stderr
            .starts_with("error: cannot reach http://127.0.0.1:1"),
        "{}",
        unreachable.stderr
    );
}

#[tokio::test]
async fn the_admin_token_file_the_server_wrote_is_the_default_token() {
    let server = TestServer::spawn_with(|s| s.no_auth = false).await;
    let database = format!("sqlite://{}", server.db_path.display());
    let env = [("SUMMIT_DATABASE_URL", database.as_str())];
    let listed = cli_with(&server.base, &env, &["list", "-o", "json"], None).await;
    assert_eq!(listed.ok().json(), json!({"items": []}));
    let token_file = server.db_path.parent().unwrap().join("admin-token");
    let args = ["list", "--token-file", token_file.to_str().unwrap()];
    cli_with(&server.base, &[], &args, None).await.ok();
    assert_eq!(cli_with(&server.base, &[], &["list"], None).await.code, 6);
}

/// Creates a token through the CLI and answers its text.
async fn token(server: &TestServer, name: &str, role: &str) -> String {
    let args = [
        "token", "create", "--name", name, "--role", role, "-o", "json",
    ];
    let created = cli(server, &args).await.ok().json();
    created["tokenText"].as_str().unwrap().to_owned()
}

async fn cli_as(server: &TestServer, token: &str, args: &[&str], stdin: Option<&str>) -> Run {
    cli_with(&server.base, &[("SUMMIT_TOKEN", token)], args, stdin).await
}

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
async fn watch_prints_one_line_per_event_from_a_revision() {
    let server = secured("").await;
    two_versions(&server).await;
    let args = [
        "watch",
        "--config",
        "checkout",
        "--from-revision",
        "0",
        "--count",
        "2",
        "-o",
        "json",
    ];
    let watched = cli(&server, &args).await.ok().stdout;
    let events: Vec<Value> = watched
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let versions: Vec<_> = events.iter().map(|e| e["version"].clone()).collect();
    assert_eq!(versions, [json!(1), json!(2)]);
    let resume = events[0]["revision"].to_string();
    let args = [
        "watch",
        "--config",
        "checkout",
        "--from-revision",
        &resume,
        "--count",
        "1",
    ];
    let line = cli(&server, &args).await.ok().stdout;
    assert_eq!(line.lines().count(), 1);
    assert!(line.contains("config.updated checkout v2"), "{line}");
    let ahead = cli(&server, &["watch", "--from-revision", "999"]).await;
    assert_eq!(ahead.code, 5, "{}", ahead.stderr);
}

#[tokio::test]
async fn drift_and_completion() {
    let server = secured("").await;
    two_versions(&server).await;
    let drift = cli(&server, &["drift", "detect", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        drift["summary"],
        json!({"inSync": 0, "drifted": 0, "stale": 0})
    );
    let report = cli(&server, &["drift", "report"]).await.ok().stdout;
    assert!(report.starts_with("all configs: 0 in sync"), "{report}");
    assert_eq!(cli(&server, &["drift", "detect", "ghost"]).await.code, 3);
    let script = cli_with(&server.base, &[], &["completion", "bash"], None)
        .await
        .ok()
        .stdout;
    assert!(script.contains("summit-config") && script.contains("rollback"));
}

#[tokio::test]
async fn https_needs_the_ca_file_for_a_private_certificate() {
    let (server, cert_file, _dir) = crate::tls::tls_server(ADMIN).await;
    let https = format!("https://localhost:{}", server.addr.port());
    let ca = cert_file.to_str().unwrap();
    let trusted = [("SUMMIT_TOKEN", ADMIN), ("SUMMIT_CA_FILE", ca)];
    let listed = cli_with(&https, &trusted, &["list", "-o", "json"], None).await;
    assert_eq!(listed.ok().json(), json!({"items": []}));
    let args = ["list", "--ca-file", ca];
    cli_with(&https, &[("SUMMIT_TOKEN", ADMIN)], &args, None)
        .await
        .ok();
    let untrusted = cli_with(&https, &[("SUMMIT_TOKEN", ADMIN)], &["list"], None).await;
    assert_eq!(untrusted.code, 1, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("certificate"),
        "{}",
        untrusted.stderr
    );
    let missing = cli_with(
        &https,
        &[],
        &["list", "--ca-file", "/nonexistent.pem"],
        None,
    )
    .await;
    assert_eq!(missing.code, 2, "{}", missing.stderr);
}

#[tokio::test]
async fn schema_register_and_validate_name_the_failing_fields() {
    let server = secured("").await;
    let schema = "type: object\nrequired: [timeoutMs]\nproperties:\n  timeoutMs: {type: integer, minimum: 1}\n";
    let registered = cli_in(
        &server,
        &["schema", "register", "checkout", "-f", "-"],
        schema,
    )
    .await;
    assert!(
        registered
            .ok()
            .stdout
            .starts_with("checkout: schema version 1 registered")
    );
    let shown = cli(&server, &["schema", "get", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(shown["schema"]["required"], json!(["timeoutMs"]));

    let good = r#"{"config": {"timeoutMs": 5}}"#;
    let valid = cli_in(
        &server,
        &["schema", "validate", "checkout", "-f", "-"],
        good,
    )
    .await;
    assert_eq!(valid.ok().stdout, "checkout: valid\n");
    let bad = r#"{"config": {"timeoutMs": 5}, "overrides": {"production": {"timeoutMs": 0}}}"#;
    let invalid = cli_in(&server, &["schema", "validate", "checkout", "-f", "-"], bad).await;
    assert_eq!(invalid.code, 5, "{}", invalid.stderr);
    let lines: Vec<_> = invalid.stderr.lines().collect();
    assert_eq!(lines[0], "error: the document is not valid for checkout");
    assert!(
        lines[1].starts_with("  /timeoutMs: ") && lines[1].ends_with("(environment=production)"),
        "{lines:?}"
    );
    let refused = cli_in(&server, &["set", "checkout", "-f", "-"], bad).await;
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("(schema_violation, HTTP 422)\n  /timeoutMs: "),
        "{}",
        refused.stderr
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
