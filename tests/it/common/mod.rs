//! Test harness: the real server (`App`) on port 0 with its own SQLite file.
//! Logs print only when `TEST_LOG` is set.
#![allow(dead_code)]

pub mod binary;
mod env;
pub mod kafka;
pub mod otlp;
pub mod postgres;
pub mod raw_http;
pub mod receiver;
pub mod secret_servers;

pub use postgres::ci_is_set;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};
use summit_config::app::App;
use summit_config::settings::Settings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,summit_config=debug")
            .try_init();
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    // Kept last so the directory outlives the server.
    pub dir: std::sync::Arc<tempfile::TempDir>,
}

impl TestServer {
    /// A server with a fresh SQLite database.
    pub async fn spawn() -> TestServer {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tune: impl FnOnce(&mut Settings)) -> TestServer {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::spawn_in(dir, tune).await
    }

    async fn spawn_in(
        dir: std::sync::Arc<tempfile::TempDir>,
        tune: impl FnOnce(&mut Settings),
    ) -> TestServer {
        init_logs();
        let db_path = dir.path().join("data").join("summit-config.db");
        let mut settings = Settings::for_tests(format!("sqlite://{}", db_path.display()));
        tune(&mut settings);
        let app = App::build(settings).await.expect("app builds");
        let addr = app.http_addr();
        let grpc_addr = app.grpc_addr();
        let shutdown = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        TestServer {
            addr,
            grpc_addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            db_path,
            shutdown,
            handle: Some(handle),
            dir,
        }
    }

    /// Stops gracefully and starts a new server on the same database file.
    pub async fn restart(self) -> TestServer {
        self.restart_with(|_| {}).await
    }

    /// Stops gracefully and starts a new server on the same database file with `tune`.
    pub async fn restart_with(mut self, tune: impl FnOnce(&mut Settings)) -> TestServer {
        self.stop().await;
        Self::spawn_in(self.dir.clone(), tune).await
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        body_of(self.get(path).await).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        body_of(
            self.client
                .put(self.url(path))
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        body_of(
            self.client
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn put_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .put(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        body_of(response).await
    }

    /// Writes a config version and returns its number.
    pub async fn put_config(&self, id: &str, body: Value) -> u64 {
        let (status, created) = self.put_json(&format!("/api/v1/configs/{id}"), &body).await;
        assert_eq!(status, 201, "put {id}: {created}");
        created["version"].as_u64().expect("version")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn body_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

impl TestServer {
    pub async fn delete_json(&self, path: &str, body: &Value) -> (u16, Value) {
        body_of(
            self.client
                .delete(self.url(path))
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Writes a flag version and returns its number.
    pub async fn put_flag(&self, key: &str, mut definition: Value) -> u64 {
        definition["metadata"] = meta("tester", "flag write");
        let (status, created) = self
            .put_json(&format!("/api/v1/feature-flags/{key}"), &definition)
            .await;
        assert_eq!(status, 201, "put flag {key}: {created}");
        created["version"].as_u64().expect("version")
    }

    /// Writes a flag version with a bearer token.
    pub async fn put_flag_as(&self, token: &str, key: &str, mut definition: Value) -> u64 {
        definition["metadata"] = meta("tester", "flag write");
        let response = self
            .client
            .put(self.url(&format!("/api/v1/feature-flags/{key}")))
            .bearer_auth(token)
            .json(&definition)
            .send()
            .await
            .expect("request");
        let (status, created) = body_of(response).await;
        assert_eq!(status, 201, "put flag {key}: {created}");
        created["version"].as_u64().expect("version")
    }

    /// Evaluates one flag over REST: the evaluation body.
    pub async fn evaluate(&self, key: &str, environment: Option<&str>, context: Value) -> Value {
        let mut body = json!({"flagKey": key, "context": context});
        if let Some(environment) = environment {
            body["environment"] = json!(environment);
        }
        let (status, evaluation) = self
            .post_json("/api/v1/feature-flags/evaluate", &body)
            .await;
        assert_eq!(status, 200, "evaluate {key}: {evaluation}");
        evaluation
    }
}

pub fn meta(actor: &str, message: &str) -> Value {
    json!({"actor": actor, "message": message})
}
