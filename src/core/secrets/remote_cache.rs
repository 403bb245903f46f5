//! What the remote providers share. Their cache: what a provider fetched, kept at most
//! `max_entries` per provider, each for `ttl`; concurrent misses of one key share one fetch, and
//! every fetch is bounded by the timeout. Failures are not kept.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::resolve::SecretFailure;

/// Largest answer a remote provider's response body may be (a secret is at most 64 KiB here;
/// Vault wraps it in metadata).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A provider's JSON answer, read up to `MAX_ANSWER_BYTES`; `None` when it is larger, cut off
/// or not `T`.
pub(super) async fn json_answer<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
) -> Option<T> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).ok()
}

/// How remote providers cache and wait.
#[derive(Debug, Clone, Copy)]
pub struct RemoteSettings {
    pub ttl: Duration,
    pub max_entries: u64,
    /// Longest one fetch may take, connection included.
    pub timeout: Duration,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            ttl: Duration::from_secs(60),
            max_entries: 10_000,
            timeout: Duration::from_secs(2),
        }
    }
}

pub struct RemoteCache<K, V> {
    entries: moka::future::Cache<K, Arc<V>>,
    timeout: Duration,
}

impl<K, V> RemoteCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub fn new(settings: &RemoteSettings) -> Self {
        RemoteCache {
            entries: moka::future::Cache::builder()
                .max_capacity(settings.max_entries)
                .time_to_live(settings.ttl)
                .build(),
            timeout: settings.timeout,
        }
    }

    /// The cached value of `key`, or what `fetch` gives (then kept).
    pub async fn get_or_fetch(
        &self,
        key: K,
        fetch: impl Future<Output = Result<V, SecretFailure>> + Send,
    ) -> Result<Arc<V>, SecretFailure> {
        let timeout = self.timeout;
        self.entries
            .try_get_with(key, async move {
                match tokio::time::timeout(timeout, fetch).await {
                    Ok(fetched) => fetched.map(Arc::new),
                    Err(_) => Err(SecretFailure::Unavailable(format!(
                        "no answer within {} ms",
                        timeout.as_millis()
                    ))),
                }
            })
            .await
            .map_err(|failure| (*failure).clone())
    }
}

/// Why a request got no answer, without anything from the request itself.
pub(super) fn describe_send_error(error: &reqwest::Error, endpoint: &str) -> String {
    if error.is_timeout() {
        format!("{endpoint} did not answer in time")
    } else if error.is_connect() {
        format!("cannot connect to {endpoint}")
    } else {
        format!("the request to {endpoint} failed")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch_and_failures_are_not_kept() {
        let cache = RemoteCache::<&str, String>::new(&RemoteSettings::default());
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok("v".to_owned())
        };
        let (a, b) = tokio::join!(
            cache.get_or_fetch("k", fetch()),
            cache.get_or_fetch("k", fetch())
        );
        assert_eq!((a.unwrap().as_str(), b.unwrap().as_str()), ("v", "v"));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        let failing = async { Err(SecretFailure::Unavailable("down".into())) };
        assert!(cache.get_or_fetch("f", failing).await.is_err());
        let fixed = cache.get_or_fetch("f", async { Ok("up".to_owned()) }).await;
        assert_eq!(fixed.unwrap().as_str(), "up");
    }

    #[tokio::test]
    async fn a_fetch_past_the_timeout_is_unavailable() {
        let cache = RemoteCache::<&str, String>::new(&RemoteSettings {
            timeout: Duration::from_millis(10),
            ..RemoteSettings::default()
        });
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok("late".to_owned())
        };
        assert!(matches!(
            cache.get_or_fetch("k", slow).await,
            Err(SecretFailure::Unavailable(_))
        ));
    }
}
