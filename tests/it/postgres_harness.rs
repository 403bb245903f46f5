//! Pins the PostgreSQL test harness itself (`tests/it/common/postgres.rs`). Both tests skip when
//! the harness finds no PostgreSQL (and fail instead when `CI` is set).

use crate::common;

use common::postgres::{PgCluster, test_database_url};
use sqlx::{Connection, PgConnection};

const USER_TABLE_COUNT: &str =
    "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

async fn user_tables(url: &str) -> i64 {
    sqlx::query_scalar(USER_TABLE_COUNT)
        .fetch_one(&mut connect(url).await)
        .await
        .expect("count tables")
}

#[tokio::test]
async fn new_database_gives_distinct_empty_connectable_databases() {
    let Some(first) = test_database_url().await else {
        return;
    };
    let Some(second) = test_database_url().await else {
        return;
    };
    assert_ne!(first, second);
    assert_eq!(user_tables(&first).await, 0, "{first}");
    assert_eq!(user_tables(&second).await, 0, "{second}");

    sqlx::query("CREATE TABLE marker (id int)")
        .execute(&mut connect(&first).await)
        .await
        .expect("create a table in the first database");

    assert_eq!(user_tables(&first).await, 1);
    assert_eq!(user_tables(&second).await, 0);
}

#[tokio::test]
async fn dedicated_cluster_stops_and_starts_again_with_its_data() {
    let Some(cluster) = PgCluster::dedicated().await else {
        return;
    };
    let url = cluster.new_database().await;
    sqlx::raw_sql("CREATE TABLE survivor (id int); INSERT INTO survivor VALUES (7)")
        .execute(&mut connect(&url).await)
        .await
        .expect("write before the stop");

    cluster.stop().await;
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "connects while stopped"
    );

    cluster.start().await;
    let survivor: i32 = sqlx::query_scalar("SELECT id FROM survivor")
        .fetch_one(&mut connect(&url).await)
        .await
        .expect("read after the restart");
    assert_eq!(survivor, 7);
}
