//! The real `summit-config` binary as a child process: both ports 0, JSON logs on stdout, the
//! bound addresses read from its "summit-config listening" line.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

const STEP: Duration = Duration::from_secs(10);

pub struct RunningBinary {
    pub child: Child,
    /// `http://host:port` of the REST listener.
    pub base: String,
    /// `host:port` of the gRPC listener.
    pub grpc: String,
    /// Every line the binary wrote to stdout (its logs), as they arrive.
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// Starts the binary on a SQLite database at `database`, access control off (the suites using
/// this are about other behaviours).
pub async fn start_binary(database: &Path) -> RunningBinary {
    start_binary_with(database, &[("SUMMIT_NO_AUTH", "true")]).await
}

/// Starts the binary with extra environment variables.
pub async fn start_binary_with(database: &Path, env: &[(&str, &str)]) -> RunningBinary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_summit-config"));
    command
        .env("SUMMIT_HTTP_ADDR", "127.0.0.1:0")
        .env("SUMMIT_GRPC_ADDR", "127.0.0.1:0")
        .env(
            "SUMMIT_DATABASE_URL",
            format!("sqlite://{}", database.display()),
        )
        .env("SUMMIT_LOG_FORMAT", "json")
        .env("SUMMIT_LOG", "info");
    // Given last, so they override the defaults above.
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (http, grpc) = tokio::time::timeout(STEP, listening_addrs(stdout, logs.clone()))
        .await
        .expect("the binary logs its addresses in time");
    RunningBinary {
        child,
        base: format!("http://{http}"),
        grpc,
        logs,
    }
}

/// Reads JSON log lines until "summit-config listening", answers its `http` and `grpc`
/// addresses, then keeps draining stdout so the child never blocks on a full pipe.
async fn listening_addrs(stdout: ChildStdout, logs: Arc<Mutex<Vec<String>>>) -> (String, String) {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .expect("stdout readable")
            .expect("the binary exited before listening");
        logs.lock().unwrap().push(line.clone());
        let Ok(record) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let (Some(http), Some(grpc)) = (record["http"].as_str(), record["grpc"].as_str()) {
            assert_eq!(record["message"], "summit-config listening", "{line}");
            let addrs = (http.to_owned(), grpc.to_owned());
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                }
            });
            return addrs;
        }
    }
}

impl RunningBinary {
    /// Sends SIGTERM and asserts a clean exit within 10 s.
    pub async fn terminate(mut self) {
        let pid = self.child.id().expect("running child has a pid");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}");
        let exit = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the binary exits within 10 s of SIGTERM")
            .expect("wait");
        assert!(exit.success(), "exit status {exit}");
    }
}
