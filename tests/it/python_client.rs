//! A client in another language: Python with grpcio, its stubs generated from
//! proto/summit/config/v1/config.proto, calls `GetEffectiveConfig` and `Watch` against the real
//! binary (tests/python/grpc_client.py) while this test writes through REST.
//!
//! The interpreter is `PYTHON` when set, else `python3`. Without it or without its grpcio and
//! grpcio-tools modules the test says so on stderr and passes, unless `CI` is set: there it
//! fails.

use crate::common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const STEP: Duration = Duration::from_secs(10);
/// The Python client's whole run, stub generation included.
const PYTHON_RUN: Duration = Duration::from_secs(90);
const CONFIG_ID: &str = "polyglot";
const SCRIPT: &str = "tests/python/grpc_client.py";

/// The interpreter: `PYTHON` when set and not empty, else `python3` from `PATH`.
pub(crate) fn python() -> String {
    std::env::var("PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

/// Why the Python client cannot run here, or None when it can.
fn python_missing(python: &str) -> Option<String> {
    let output = std::process::Command::new(python)
        .args(["-c", "import grpc, grpc_tools"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match output {
        Err(error) => Some(format!("cannot run {python} ({error})")),
        Ok(output) if !output.status.success() => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or("no error output").trim();
            Some(format!(
                "{python} lacks the grpcio/grpcio-tools modules ({last}); \
                 install them with `{python} -m pip install grpcio grpcio-tools`"
            ))
        }
        Ok(_) => None,
    }
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("REST answers in time")
        .expect("REST request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("REST body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Writes a version through REST; answers the 201 body.
async fn put_config(
    client: &reqwest::Client,
    server: &common::binary::RunningBinary,
    body: Value,
) -> Value {
    let url = format!("{}/api/v1/configs/{CONFIG_ID}", server.base);
    let (status, created) = send(client.put(url).json(&body)).await;
    assert_eq!(status, 201, "PUT {CONFIG_ID}: {created}");
    created
}

async fn get_json(
    client: &reqwest::Client,
    server: &common::binary::RunningBinary,
    path: &str,
) -> Value {
    let (status, body) = send(client.get(format!("{}{path}", server.base))).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The revision of the change that wrote `version`, from the config's audit trail.
async fn revision_of(
    client: &reqwest::Client,
    server: &common::binary::RunningBinary,
    version: u64,
) -> u64 {
    let audit = get_json(
        client,
        server,
        &format!("/api/v1/configs/{CONFIG_ID}/audit"),
    )
    .await;
    audit["items"]
        .as_array()
        .expect("audit items")
        .iter()
        .find(|record| record["version"] == version && record["action"] == "config.put")
        .and_then(|record| record["revision"].as_u64())
        .unwrap_or_else(|| panic!("no audit record for version {version}: {audit}"))
}

/// tests/python/grpc_client.py, running, with its stdout read line by line.
struct PythonClient {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<String>>,
    seen: Vec<String>,
    deadline: Instant,
}

impl PythonClient {
    fn spawn(python: &str, grpc: &str) -> PythonClient {
        let mut child = Command::new(python)
            .arg(SCRIPT)
            .args(["--grpc", grpc, "--config-id", CONFIG_ID])
            .args(["--timeout", &PYTHON_RUN.as_secs().to_string()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{python} {SCRIPT} starts: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        PythonClient {
            child,
            lines: BufReader::new(stdout).lines(),
            stderr: Some(stderr),
            seen: Vec::new(),
            deadline: Instant::now() + PYTHON_RUN,
        }
    }

    /// Stops the client and describes what it printed, for a failure message.
    async fn report(&mut self, why: &str) -> String {
        let _ = self.child.start_kill();
        let stderr = match self.stderr.take() {
            Some(task) => tokio::time::timeout(STEP, task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        format!(
            "{why}\n--- Python client stdout ---\n{}\n--- Python client stderr ---\n{stderr}",
            self.seen.join("\n")
        )
    }

    /// The next JSON line the client prints.
    async fn next_record(&mut self, what: &str) -> Value {
        let line = match tokio::time::timeout_at(self.deadline, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let status = match self.child.wait().await {
                    Ok(status) => status.to_string(),
                    Err(error) => error.to_string(),
                };
                let why = format!("the Python client ended ({status}) before {what}");
                panic!("{}", self.report(&why).await);
            }
            Ok(Err(error)) => panic!("{}", self.report(&format!("reading stdout: {error}")).await),
            Err(_) => {
                let why = format!("no {what} from the Python client within {PYTHON_RUN:?}");
                panic!("{}", self.report(&why).await);
            }
        };
        self.seen.push(line.clone());
        match serde_json::from_str(&line) {
            Ok(record) => record,
            Err(error) => panic!("{}", self.report(&format!("not JSON ({error})")).await),
        }
    }

    /// The next Watch event, past heartbeats.
    async fn next_event(&mut self, what: &str) -> Value {
        loop {
            let record = self.next_record(what).await;
            if record["type"] != "event" {
                panic!("{}", self.report(&format!("{what}: not an event")).await);
            }
            if record["kind"] != "heartbeat" {
                return record;
            }
        }
    }

    /// Waits for a successful exit.
    async fn finish(mut self) {
        match tokio::time::timeout_at(self.deadline, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => {
                let why = format!("the Python client failed: {status}");
                panic!("{}", self.report(&why).await);
            }
            Ok(Err(error)) => {
                let why = format!("waiting for the Python client: {error}");
                panic!("{}", self.report(&why).await);
            }
            Err(_) => panic!("{}", self.report("the Python client did not exit").await),
        }
    }
}

#[tokio::test]
async fn python_grpc_client_reads_the_effective_config_and_watches_a_change() {
    let python = python();
    if let Some(reason) = python_missing(&python) {
        if common::ci_is_set() {
            panic!("the Python gRPC client is required when CI is set: {reason}");
        }
        // Straight to stderr: libtest captures eprintln! and shows it only for failures.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED python_client: {reason} ***\n"
        );
        return;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let server = common::binary::start_binary(&dir.path().join("data").join("db.sqlite")).await;
    let client = reqwest::Client::new();

    let first = put_config(
        &client,
        &server,
        json!({
            "config": {"feature": {"enabled": false, "label": "base"}, "limit": 10, "zone": "eu"},
            "overrides": {
                "production": {"feature": {"enabled": true}, "limit": 100},
                "staging": {"limit": 20},
            },
            "metadata": {"actor": "ops", "message": "first"},
        }),
    )
    .await;
    assert_eq!(first["version"], 1, "{first}");
    let rest = get_json(
        &client,
        &server,
        &format!("/api/v1/configs/{CONFIG_ID}/effective?environment=production"),
    )
    .await;
    assert_eq!(
        rest["effectiveConfig"],
        json!({"feature": {"enabled": true, "label": "base"}, "limit": 100, "zone": "eu"}),
        "{rest}"
    );
    let first_revision = revision_of(&client, &server, 1).await;

    let mut python = PythonClient::spawn(&python, &server.grpc);

    // GetEffectiveConfig answers what REST answers.
    let effective = python.next_record("the GetEffectiveConfig line").await;
    assert_eq!(effective["type"], "effective", "{effective}");
    assert_eq!(effective["configId"], CONFIG_ID, "{effective}");
    assert_eq!(effective["version"], 1, "{effective}");
    assert_eq!(effective["environment"], "production", "{effective}");
    assert_eq!(effective["stale"], false, "{effective}");
    let text = effective["effectiveConfigJson"]
        .as_str()
        .expect("effectiveConfigJson is a string");
    let grpc_config: Value = serde_json::from_str(text).expect("effectiveConfigJson is JSON");
    assert_eq!(grpc_config, rest["effectiveConfig"], "{effective}\n{rest}");
    // Canonical text: compact, keys sorted (serde_json's map sorts them).
    assert_eq!(text, serde_json::to_string(&grpc_config).unwrap());
    assert_eq!(
        effective["checksum"], rest["checksum"],
        "{effective}\n{rest}"
    );
    assert_eq!(effective["assignment"]["canary"], false, "{effective}");

    // Watch starts with the current state.
    let snapshot = python.next_event("the Watch snapshot").await;
    assert_eq!(snapshot["kind"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["revision"], first_revision, "{snapshot}");
    assert_eq!(snapshot["configId"], CONFIG_ID, "{snapshot}");
    assert_eq!(snapshot["version"], 1, "{snapshot}");
    assert_eq!(snapshot["changeKind"], "config.updated", "{snapshot}");
    assert_eq!(snapshot["checksum"], first["checksum"], "{snapshot}");

    // A write through REST reaches the Python watcher.
    let second = put_config(
        &client,
        &server,
        json!({
            "config": {"feature": {"enabled": true, "label": "v2"}, "limit": 12, "zone": "eu"},
            "overrides": {"production": {"limit": 120}},
            "metadata": {"actor": "alice", "message": "second"},
        }),
    )
    .await;
    assert_eq!(second["version"], 2, "{second}");
    let second_revision = revision_of(&client, &server, 2).await;
    assert!(second_revision > first_revision);

    let change = python.next_event("the Watch change").await;
    assert_eq!(change["kind"], "change", "{change}");
    assert_eq!(change["revision"], second_revision, "{change}");
    assert_eq!(change["configId"], CONFIG_ID, "{change}");
    assert_eq!(change["version"], 2, "{change}");
    assert_eq!(change["changeKind"], "config.updated", "{change}");
    assert_eq!(change["checksum"], second["checksum"], "{change}");

    python.finish().await;
}
