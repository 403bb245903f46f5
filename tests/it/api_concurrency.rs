//! Concurrent writers: optimistic concurrency means exactly one wins each version.

use crate::common;

use common::{TestServer, meta};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_the_same_expected_version_exactly_one_wins() {
    let server = TestServer::spawn().await;
    server
        .put_config(
            "svc",
            json!({"config": {"n": 0}, "metadata": meta("setup", "")}),
        )
        .await;
    for round in 1..=5u64 {
        let writers = (0..16).map(|writer| {
            let client = server.client.clone();
            let url = server.url("/api/v1/configs/svc");
            async move {
                let body = json!({"config": {"n": writer}, "metadata": meta(&format!("w{writer}"), ""), "expectedVersion": round});
                client.put(url).json(&body).send().await.unwrap().status().as_u16()
            }
        });
        let statuses = futures::future::join_all(writers).await;
        let won = statuses.iter().filter(|s| **s == 201).count();
        let lost = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((won, lost), (1, 15), "round {round}: {statuses:?}");
    }
    let (_, page) = server
        .get_json("/api/v1/configs/svc/versions?limit=100")
        .await;
    let versions: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        vec![6, 5, 4, 3, 2, 1],
        "no version number was handed out twice"
    );
    let (_, audit) = server.get_json("/api/v1/configs/svc/audit?limit=100").await;
    assert_eq!(
        audit["items"].as_array().unwrap().len(),
        6,
        "losers left no audit record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_without_expected_version_all_get_distinct_versions() {
    let server = TestServer::spawn().await;
    let writers = (0..20).map(|writer| {
        let client = server.client.clone();
        let url = server.url("/api/v1/configs/svc");
        async move {
            let body = json!({"config": {"n": writer}, "metadata": meta("w", "")});
            let response = client.put(url).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<serde_json::Value>().await.unwrap()["version"]
                .as_u64()
                .unwrap()
        }
    });
    let mut versions = futures::future::join_all(writers).await;
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<u64>>());
}
