//! Config commands: get, set, list, versions, diff, rollback, audit, effective, schema, drift,
//! watch; exit codes, colour and TLS.

use super::*;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

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
async fn a_watch_whose_token_is_revoked_ends_with_the_unauthenticated_exit_code() {
    let server = secured("").await;
    two_versions(&server).await;
    let args = [
        "token",
        "create",
        "--name",
        "watcher",
        "--role",
        "config-reader",
        "-o",
        "json",
    ];
    let created = cli(&server, &args).await.ok().json();
    let text = created["tokenText"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let cwd = tempfile::tempdir().unwrap();
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_summit-config"))
        .args(["watch", "--from-revision", "0", "-o", "json"])
        .env_clear()
        .current_dir(cwd.path())
        .env("SUMMIT_SERVER", &server.base)
        .env("SUMMIT_TOKEN", &text)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    // Watching: it printed the first of the changes so far.
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a first event")
        .unwrap()
        .expect("a line");
    assert!(first.contains("\"revision\""), "{first}");
    cli(&server, &["token", "revoke", &id]).await.ok();
    // A change: the event the watch would send next.
    let staging = r#"{"timeoutMs": 900}"#;
    cli_in(
        &server,
        &["set", "checkout", "--env", "staging", "-f", "-"],
        staging,
    )
    .await
    .ok();
    let status = tokio::time::timeout(Duration::from_secs(20), watch.wait())
        .await
        .expect("the watch ends")
        .unwrap();
    let mut stderr = String::new();
    watch
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("the server ended the stream"), "{stderr}");
}
