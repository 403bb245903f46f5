//! The operator CLI as a user runs it: the real binary as a child process against a real server
//! (in-process, port 0, its own database). This file is the harness; the suites are
//! `configs` (reads, writes, exit codes, colour, TLS), `approvals`, `domains` (flags, secrets,
//! tokens, deployments, registry), `apply` and `transfer` (export and import).

mod apply;
mod approvals;
mod configs;
mod domains;
mod transfer;

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
