//! The duties lease on PostgreSQL: one replica holds it, another takes over when it dies.

use crate::common;

use summit_config::core::ports::Database;
use summit_config::store::PostgresStore;

#[tokio::test]
async fn one_replica_holds_the_duties_lease_and_another_takes_over_when_it_goes() {
    let Some(url) = common::postgres::test_database_url().await else {
        return;
    };
    let first = PostgresStore::open(&url).await.expect("first replica");
    let second = PostgresStore::open(&url).await.expect("second replica");
    assert!(first.lead_duties().await.expect("first asks"));
    assert!(
        first.lead_duties().await.expect("first keeps it"),
        "a holder keeps its lease"
    );
    assert!(
        !second.lead_duties().await.expect("second asks"),
        "only one holder at a time"
    );
    drop(first); // its lease connection closes with it
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !second.lead_duties().await.expect("second asks again") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease was never released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
