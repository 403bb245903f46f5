//! `apply -f DIR`: the plan, the writes, the no-op second apply, `--prune`, approvals, and
//! files refused before anything is written.

use super::*;

/// Writes `files` (path relative to the directory → text) into a new directory.
pub(super) fn directory(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const CHECKOUT: &str = "\
config:
  timeoutMs: 3000
  retries: 2
overrides:
  production:
    timeoutMs: 1000
schema:
  type: object
  required: [timeoutMs]
  properties:
    timeoutMs: {type: integer, minimum: 100}
";
const PAYMENTS: &str = r#"{"config": {"currency": "EUR"}}"#;
const NEW_UI: &str = "\
type: boolean
variants: {on: true, off: false}
defaultVariant: off
environments:
  production:
    enabled: true
    rules:
      - id: beta
        targetKeys: [user-7]
        variant: on
";

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

#[tokio::test]
async fn apply_plans_writes_and_a_second_apply_changes_nothing() {
    let server = secured("").await;
    let dir = directory(&[
        ("configs/checkout.yaml", CHECKOUT),
        ("configs/payments.json", PAYMENTS),
        ("flags/new-ui.yaml", NEW_UI),
        ("README.md", "files beside the folders are not read"),
    ]);
    let plan = cli(
        &server,
        &["apply", "-f", path(&dir), "--dry-run", "-o", "json"],
    )
    .await
    .ok()
    .json();
    let changes: Vec<(Value, Value, Value)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].clone(), c["id"].clone(), c["action"].clone()))
        .collect();
    assert_eq!(
        changes,
        [
            (json!("schema"), json!("checkout"), json!("create")),
            (json!("config"), json!("checkout"), json!("create")),
            (json!("config"), json!("payments"), json!("create")),
            (json!("flag"), json!("new-ui"), json!("create")),
        ]
    );
    assert_eq!(plan["changes"][2]["patch"][0]["op"], "replace");
    assert_eq!(
        cli(&server, &["get", "checkout"]).await.code,
        3,
        "a dry run writes nothing"
    );

    let applied = cli(&server, &["apply", "-f", path(&dir), "-m", "from git"])
        .await
        .ok()
        .stdout;
    assert!(applied.contains("+ config payments (create)"), "{applied}");
    assert!(applied.contains("[4/4]"), "progress per change: {applied}");
    assert!(
        applied.contains("Applied: 4 written, 0 deleted, 0 awaiting approval, 0 failed."),
        "{applied}"
    );
    let checkout = cli(&server, &["get", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(checkout["version"], 1);
    assert_eq!(checkout["metadata"]["message"], "from git");
    assert_eq!(
        checkout["overrides"]["production"],
        json!({"timeoutMs": 1000})
    );
    let schema = cli(&server, &["schema", "get", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(schema["schema"]["required"], json!(["timeoutMs"]));
    let flag = cli(&server, &["flag", "get", "new-ui", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(flag["environments"]["production"]["rules"][0]["id"], "beta");

    let again = cli(&server, &["apply", "-f", path(&dir)]).await.ok().stdout;
    assert!(
        again.starts_with("No changes: the server matches"),
        "{again}"
    );
    assert!(again.contains("(3 unchanged)"), "{again}");
    let again = cli(&server, &["apply", "-f", path(&dir), "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (again["changes"].clone(), again["unchanged"].clone()),
        (json!([]), json!(3))
    );
    let versions = cli(&server, &["versions", "checkout", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(versions["items"].as_array().unwrap().len(), 1);

    // One override changes: the plan shows it as a diff, the write is version 2.
    std::fs::write(
        dir.path().join("configs/checkout.yaml"),
        CHECKOUT.replace("timeoutMs: 1000", "timeoutMs: 900"),
    )
    .unwrap();
    let plan = cli(&server, &["apply", "-f", path(&dir), "--dry-run"])
        .await
        .ok()
        .stdout;
    assert!(
        plan.contains("~ config checkout (version 1 → new version)"),
        "{plan}"
    );
    assert!(plan.contains("-      \"timeoutMs\": 1000"), "{plan}");
    assert!(plan.contains("+      \"timeoutMs\": 900"), "{plan}");
    assert!(
        plan.contains("Plan: 0 to create, 1 to change, 0 to delete"),
        "{plan}"
    );
    let applied = cli(&server, &["apply", "-f", path(&dir), "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        applied["changes"][0]["result"],
        json!({"status": "written", "version": 2})
    );
}

#[tokio::test]
async fn prune_deletes_what_the_directory_lacks_only_for_the_kinds_it_declares() {
    let server = secured("").await;
    let everything = directory(&[
        ("configs/checkout.yaml", CHECKOUT),
        ("configs/payments.json", PAYMENTS),
        ("flags/new-ui.yaml", NEW_UI),
    ]);
    cli(&server, &["apply", "-f", path(&everything)]).await.ok();
    let only_checkout = directory(&[("configs/checkout.yaml", CHECKOUT)]);

    let without = cli(&server, &["apply", "-f", path(&only_checkout)])
        .await
        .ok()
        .stdout;
    assert!(
        without.starts_with("No changes"),
        "without --prune nothing goes: {without}"
    );
    let pruned = cli(&server, &["apply", "-f", path(&only_checkout), "--prune"])
        .await
        .ok()
        .stdout;
    assert!(
        pruned.contains("- config payments (delete version 1)"),
        "{pruned}"
    );
    assert!(pruned.contains("1 deleted"), "{pruned}");
    assert_eq!(cli(&server, &["get", "payments"]).await.code, 3);
    // No flags/ folder: the flags are not the directory's to prune.
    assert_eq!(cli(&server, &["flag", "get", "new-ui"]).await.code, 0);

    let no_flags = directory(&[("configs/checkout.yaml", CHECKOUT), ("flags/.keep", "")]);
    let plan = cli(
        &server,
        &[
            "apply",
            "-f",
            path(&no_flags),
            "--prune",
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        plan["changes"],
        json!([{"kind": "flag", "id": "new-ui", "action": "delete", "baseVersion": 1}])
    );
}

#[tokio::test]
async fn a_refused_write_is_reported_with_its_field_and_the_rest_still_applies() {
    let server = secured("").await;
    let bad = CHECKOUT.replace("timeoutMs: 1000", "timeoutMs: 5");
    let dir = directory(&[
        ("configs/checkout.yaml", &bad),
        ("configs/payments.json", PAYMENTS),
    ]);
    let run = cli(&server, &["apply", "-f", path(&dir)]).await;
    assert_eq!(run.code, 5, "a validation failure: {}", run.stdout);
    assert!(
        run.stdout.contains("config checkout: failed:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("/timeoutMs"),
        "the field is named: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("config payments: version 1 written"),
        "{}",
        run.stdout
    );
    let report = cli(&server, &["apply", "-f", path(&dir), "-o", "json"]).await;
    assert_eq!(report.code, 5);
    let report = report.json();
    let checkout = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "config")
        .unwrap()
        .clone();
    assert_eq!(checkout["result"]["status"], "failed");
    assert_eq!(checkout["result"]["exitCode"], 5);
}

#[tokio::test]
async fn files_that_are_not_the_format_are_refused_before_anything_is_written() {
    let server = secured("").await;
    let cases: [(&str, &str, &str); 5] = [
        (
            "configs/checkout.yaml",
            "config: {}\ncanary: {percent: 5}\n",
            "/canary",
        ),
        ("configs/checkout.yaml", "overrides: {}\n", "config"),
        ("configs/Bad Id.yaml", "config: {}\n", "Bad Id.yaml"),
        (
            "configs/checkout.yaml.bak",
            "config: {}\n",
            "expected NAME.yaml",
        ),
        (
            "flags/new-ui.yaml",
            "type: boolean\nvariants: [1]\n",
            "new-ui.yaml",
        ),
    ];
    for (file, text, named) in cases {
        let dir = directory(&[("configs/payments.json", PAYMENTS), (file, text)]);
        let run = cli(&server, &["apply", "-f", path(&dir)]).await;
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{file}: {}", run.stderr);
        assert_eq!(
            cli(&server, &["get", "payments"]).await.code,
            3,
            "nothing written"
        );
    }
    let empty = directory(&[("notes.txt", "")]);
    let run = cli(&server, &["apply", "-f", path(&empty)]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("neither a configs/ nor a flags/"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_change_that_needs_approval_shows_its_request_and_is_not_asked_twice() {
    let server = secured("production=1").await;
    let alice = token(&server, "alice", "config-admin").await;
    let bob = token(&server, "bob", "config-admin").await;
    let dir = directory(&[("configs/checkout.yaml", CHECKOUT)]);
    let run = cli_as(&server, &alice, &["apply", "-f", path(&dir)], None)
        .await
        .ok();
    let pending = cli(&server, &["pending", "-o", "json"]).await.ok().json();
    let request = pending["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        run.stdout
            .contains(&format!("awaiting approval: change request {request}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1 awaiting approval"), "{}", run.stdout);

    let again = cli_as(&server, &alice, &["apply", "-f", path(&dir)], None)
        .await
        .ok();
    assert!(
        again.stdout.contains(&format!("~ config checkout (version 0 → new version)  awaiting approval: change request {request}"))
            || again.stdout.contains(&format!("+ config checkout (create)  awaiting approval: change request {request}")),
        "{}",
        again.stdout
    );
    let pending = cli(&server, &["pending", "-o", "json"]).await.ok().json();
    assert_eq!(
        pending["items"].as_array().unwrap().len(),
        1,
        "not asked twice"
    );

    cli_as(&server, &bob, &["approve", &request, "--apply"], None)
        .await
        .ok();
    let done = cli_as(&server, &alice, &["apply", "-f", path(&dir)], None)
        .await
        .ok();
    assert!(done.stdout.starts_with("No changes"), "{}", done.stdout);
}

#[tokio::test]
async fn a_prune_that_needs_approval_is_not_asked_twice() {
    let server = secured("production=1").await;
    let alice = token(&server, "alice", "config-admin").await;
    let bob = token(&server, "bob", "config-admin").await;
    let both = directory(&[
        ("configs/checkout.yaml", CHECKOUT),
        ("configs/payments.json", PAYMENTS),
    ]);
    cli_as(&server, &alice, &["apply", "-f", path(&both)], None)
        .await
        .ok();
    let pending = cli(&server, &["pending", "-o", "json"]).await.ok().json();
    for request in pending["items"].as_array().unwrap() {
        let id = request["id"].as_str().unwrap();
        cli_as(&server, &bob, &["approve", id, "--apply"], None)
            .await
            .ok();
    }
    assert_eq!(cli(&server, &["get", "payments"]).await.code, 0);

    let only_checkout = directory(&[("configs/checkout.yaml", CHECKOUT)]);
    let prune = ["apply", "-f", path(&only_checkout), "--prune"];
    let first = cli_as(&server, &alice, &prune, None).await.ok();
    assert!(
        first.stdout.contains("1 awaiting approval"),
        "{}",
        first.stdout
    );
    let pending = cli(&server, &["pending", "-o", "json"]).await.ok().json();
    let items = pending["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pending}");
    let request = items[0]["id"].as_str().unwrap();

    let again = cli_as(&server, &alice, &prune, None).await.ok();
    assert!(
        again
            .stdout
            .contains(&format!("awaiting approval: change request {request}")),
        "{}",
        again.stdout
    );
    let pending = cli(&server, &["pending", "-o", "json"]).await.ok().json();
    assert_eq!(
        pending["items"].as_array().unwrap().len(),
        1,
        "not asked twice: {pending}"
    );
    assert_eq!(cli(&server, &["get", "payments"]).await.code, 0);
}
