//! The second-server test fixture itself works: a cluster starts, serves, and stops.

use sqlx::{Connection, PgConnection};
use tenantry::testing::TestCluster;

#[tokio::test]
async fn a_test_cluster_starts_serves_and_stops() {
    let cluster = TestCluster::start();
    let mut conn = PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    drop(conn);
    let url = cluster.url("postgres");
    drop(cluster);
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "the cluster is still up"
    );
}
