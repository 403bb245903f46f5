//! A Kafka producer sink for change events, on the pure-Rust `rskafka` client (no compression).
//!
//! Delivery is at least once: a batch that failed part-way may have reached some partitions,
//! and producing it again duplicates those records.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rskafka::BackoffConfig;
use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::sync::Mutex;

/// How long rskafka backs off between retries of one request (reconnects, leader moves), in all.
const RETRY_DEADLINE: Duration = Duration::from_secs(5);
/// The bound on connecting and on each produce request: rskafka's retry loops nest.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Records go in produce requests of about this size at most (Kafka's default limit is 1 MiB).
const MAX_REQUEST_BYTES: usize = 512 * 1024;
/// A generous estimate of a record's framing in a batch, on top of its key and value.
const RECORD_OVERHEAD: usize = 64;

/// Produces change events to one topic.
///
/// Calls are serialized, so records keep their order across calls too. After a failure the
/// connection is dropped and the next call connects again.
#[derive(Debug)]
pub struct KafkaSink {
    brokers: Vec<String>,
    topic: String,
    /// One client per partition of the topic, in partition order; None after a failure.
    partitions: Mutex<Option<Vec<PartitionClient>>>,
}

/// Why a connection or a produce call failed.
#[derive(Debug, thiserror::Error)]
#[error("kafka: {0}")]
pub struct KafkaError(String);

impl KafkaSink {
    /// Connects to `brokers` (host:port list), creating `topic` (1 partition, replication 1)
    /// when it does not exist.
    pub async fn connect(brokers: &[String], topic: &str) -> Result<KafkaSink, KafkaError> {
        if brokers.is_empty() {
            return Err(KafkaError("no brokers given".into()));
        }
        let partitions = open(brokers, topic).await?;
        Ok(KafkaSink {
            brokers: brokers.to_vec(),
            topic: topic.to_owned(),
            partitions: Mutex::new(Some(partitions)),
        })
    }

    /// Produces records in order (key, value JSON bytes, timestamp); Ok only when the broker
    /// acknowledged them all (acks = all in-sync replicas).
    ///
    /// Records with the same key go to the same partition (Kafka's default partitioner: the
    /// murmur2 hash of the key, over the partitions seen when connecting) and keep their order.
    pub async fn produce(
        &self,
        records: Vec<(String, Vec<u8>, DateTime<Utc>)>,
    ) -> Result<(), KafkaError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut slot = self.partitions.lock().await;
        if slot.is_none() {
            *slot = Some(open(&self.brokers, &self.topic).await?);
        }
        let partitions = slot.as_deref().expect("connected above");
        let outcome = send(partitions, &self.topic, records).await;
        if outcome.is_err() {
            // Start afresh next time: new connections, new metadata, the topic made again.
            *slot = None;
        }
        outcome
    }
}

/// A client for each partition of `topic`, which is created first when absent.
async fn open(brokers: &[String], topic: &str) -> Result<Vec<PartitionClient>, KafkaError> {
    within(REQUEST_TIMEOUT, "connecting", async {
        let backoff = BackoffConfig {
            deadline: Some(RETRY_DEADLINE),
            ..Default::default()
        };
        let client = ClientBuilder::new(brokers.to_vec())
            .client_id("summit-config")
            .backoff_config(backoff)
            .build()
            .await
            .map_err(|e| failed(format!("connecting to {}", brokers.join(",")), e))?;
        // Look before creating: brokers may auto-create a topic that a metadata request
        // names, with their default partition count, and rskafka's requests allow that.
        let mut ids = partition_ids(&client, topic).await?;
        if ids.is_empty() {
            let controller = client
                .controller_client()
                .map_err(|e| failed("reaching the controller", e))?;
            ids = match controller.create_topic(topic, 1, 1, 5_000).await {
                // Until metadata shows it, `UnknownTopicHandling::Retry` waits for it.
                Ok(()) => vec![0],
                Err(ClientError::ServerError {
                    protocol_error: ProtocolError::TopicAlreadyExists,
                    ..
                }) => partition_ids(&client, topic).await?,
                Err(e) => return Err(failed(format!("creating topic {topic}"), e)),
            };
            if ids.is_empty() {
                return Err(KafkaError(format!(
                    "topic {topic} exists but is not listed"
                )));
            }
        }
        let mut partitions = Vec::with_capacity(ids.len());
        for id in ids {
            let partition = client
                .partition_client(topic, id, UnknownTopicHandling::Retry)
                .await
                .map_err(|e| failed(format!("reaching {topic}/{id}"), e))?;
            partitions.push(partition);
        }
        Ok(partitions)
    })
    .await
}

/// Produces `records` over `partitions`, one partition after another.
async fn send(
    partitions: &[PartitionClient],
    topic: &str,
    records: Vec<(String, Vec<u8>, DateTime<Utc>)>,
) -> Result<(), KafkaError> {
    let count = partitions.len();
    let mut per_partition: Vec<Vec<Record>> = (0..count).map(|_| Vec::new()).collect();
    for (key, value, timestamp) in records {
        let index = partition_for(key.as_bytes(), count);
        per_partition[index].push(Record {
            key: Some(key.into_bytes()),
            value: Some(value),
            headers: BTreeMap::new(),
            timestamp,
        });
    }
    for (partition, records) in partitions.iter().zip(per_partition) {
        let what = format!("producing to {topic}/{}", partition.partition());
        for batch in requests(records) {
            within(REQUEST_TIMEOUT, &what, async {
                partition
                    .produce(batch, Compression::NoCompression)
                    .await
                    .map_err(|e| failed(&what, e))
            })
            .await?;
        }
    }
    Ok(())
}

/// The topic's partition ids, in order; none when the topic does not exist. Lists all topics,
/// which never auto-creates one.
async fn partition_ids(client: &Client, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let topics = client
        .list_topics()
        .await
        .map_err(|e| failed("listing topics", e))?;
    Ok(topics
        .into_iter()
        .find(|listed| listed.name == topic)
        .map(|listed| listed.partitions.into_iter().collect())
        .unwrap_or_default())
}

/// Splits one partition's records into produce requests of bounded size, keeping their order.
fn requests(records: Vec<Record>) -> Vec<Vec<Record>> {
    let mut batches: Vec<Vec<Record>> = Vec::new();
    let mut size = 0;
    for record in records {
        let record_size = record.approximate_size() + RECORD_OVERHEAD;
        match batches.last_mut() {
            Some(batch) if size + record_size <= MAX_REQUEST_BYTES => batch.push(record),
            _ => {
                batches.push(vec![record]);
                size = 0;
            }
        }
        size += record_size;
    }
    batches
}

async fn within<T>(
    limit: Duration,
    what: impl std::fmt::Display,
    work: impl Future<Output = Result<T, KafkaError>>,
) -> Result<T, KafkaError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(KafkaError(format!("{what}: no answer within {limit:?}"))))
}

fn failed(what: impl std::fmt::Display, error: ClientError) -> KafkaError {
    KafkaError(format!("{what}: {error}"))
}

/// The partition (an index below `count`) that Kafka's Java client picks for a record key.
fn partition_for(key: &[u8], count: usize) -> usize {
    (murmur2(key) & 0x7fff_ffff) as usize % count.max(1)
}

/// MurmurHash2 (32-bit, seed 0x9747b28c) as Kafka's `Utils.murmur2` computes it.
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // The vectors of Kafka's own `UtilsTest.testMurmur2`.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, hash) in cases {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partitions_are_in_range() {
        for key in ["", "a", "flag/checkout", "config/payments/prod"] {
            assert!(partition_for(key.as_bytes(), 7) < 7);
            assert_eq!(partition_for(key.as_bytes(), 1), 0);
        }
    }
}
