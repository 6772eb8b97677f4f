//! A PostgreSQL restart under a running server: requests that meet a dead connection get 503
//! with `Retry-After`, never 500, and the pools recover by themselves.

use crate::support;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::get;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection};
use support::{identification, notes, slug};
use tenantry::testing::TestCluster;
use tenantry::{IsolationMode, Migrations, NewTenant, Tenancy, TenancyLayer, TenantDb};
use tower::{Layer, ServiceExt};

async fn count(mut db: TenantDb) -> String {
    let n: i64 = db
        .query("SELECT count(*) FROM notes")
        .fetch_scalar()
        .await
        .unwrap_or(-1);
    n.to_string()
}

async fn add(mut db: TenantDb) -> Result<StatusCode, tenantry::TenancyRejection> {
    db.query("INSERT INTO notes (body) VALUES ('after a restart')")
        .execute()
        .await?;
    Ok(StatusCode::CREATED)
}

/// Whether `status` (with its `Retry-After`) is what a request may get around a restart.
fn acceptable(status: StatusCode, retry_after: bool) -> bool {
    status.is_success() || (status == StatusCode::SERVICE_UNAVAILABLE && retry_after)
}

#[tokio::test]
async fn a_database_restart_costs_503s_not_500s_and_the_pools_recover() {
    let cluster = TestCluster::start();
    let mut admin = PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    admin.execute("CREATE DATABASE app").await.unwrap();
    admin.close().await.unwrap();
    let options = tenantry::connect_options(&cluster.url("app")).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .unwrap();
    let migrations = Migrations::new(Migrator::DEFAULT, notes()).unwrap();
    tenantry::migrate_shared(&pool, &migrations, &tenantry::AppRole::default())
        .await
        .unwrap();
    let tenancy = Tenancy::connect(pool, identification(), migrations)
        .await
        .unwrap();
    for (tenant, isolation) in [
        ("thor", IsolationMode::Schema),
        ("potter", IsolationMode::Database),
    ] {
        tenancy
            .create_tenant(NewTenant::new(slug(tenant), isolation))
            .await
            .unwrap();
    }
    let routes = Router::new().route("/notes", get(count).post(add));
    let app = Router::new().fallback_service(TenancyLayer::new(tenancy).layer(routes));
    let send = async |i: usize| {
        let host = ["thor.app.test", "potter.app.test"][i % 2];
        let method = ["GET", "POST"][i / 2 % 2];
        let request = Request::builder()
            .method(method)
            .uri("/notes")
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let retry_after = response.headers().contains_key("retry-after");
        (response.status(), retry_after)
    };
    for i in 0..20 {
        let (status, _) = send(i).await;
        assert!(status.is_success(), "before the restart: {status}");
    }

    cluster.restart();
    let mut statuses = Vec::new();
    for i in 0..400 {
        statuses.push(send(i).await);
    }
    let refused: Vec<_> = statuses
        .iter()
        .filter(|(status, retry)| !acceptable(*status, *retry))
        .collect();
    assert_eq!(refused, Vec::<&(StatusCode, bool)>::new());
    let unavailable = statuses.iter().filter(|(s, _)| !s.is_success()).count();
    assert!(unavailable < 100, "{unavailable} of 400 requests got 503");
    assert!(
        statuses[300..].iter().all(|(s, _)| s.is_success()),
        "the pools did not recover: {:?}",
        &statuses[300..]
    );
}
