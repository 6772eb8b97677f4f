//! The connection budget of database-mode tenants: 500 tenant databases driven at random by
//! 32 concurrent clients. Connections to them, as PostgreSQL counts them in
//! `pg_stat_activity`, never exceed the budget, and every request either succeeds for its
//! own tenant or is refused with 503 and `Retry-After`.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::get;
use futures::StreamExt;
use sqlx::migrate::Migrator;
use support::{setup, slug, whoami};
use tenantry::{
    DatabaseBudget, IsolationMode, Migrations, NewTenant, Tenancy, TenancyLayer, TenancyOptions,
};
use tower::{Layer, ServiceExt};

const TENANTS: usize = 500;
const CLIENTS: usize = 32;
const REQUESTS_PER_CLIENT: usize = 60;
const BUDGET: u32 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_database_tenants_stay_within_the_connection_budget() {
    let s = setup(8).await;
    let budget = DatabaseBudget {
        connections: BUDGET,
        per_tenant: 2,
        wait: Duration::from_millis(500),
    };
    let tenancy = Tenancy::connect_with(
        s.pool.clone(),
        support::identification(),
        Migrations::new(Migrator::DEFAULT, support::notes()).unwrap(),
        TenancyOptions {
            default_isolation: Some(IsolationMode::Database),
            budget,
            ..TenancyOptions::default()
        },
    )
    .await
    .unwrap();
    let names: Vec<String> = (0..TENANTS).map(|i| format!("db-{i}")).collect();
    futures::stream::iter(&names)
        .map(|name| tenancy.create_tenant(NewTenant::new(slug(name), IsolationMode::Database)))
        .buffer_unordered(4)
        .for_each(|created| async {
            created.unwrap();
        })
        .await;
    let databases: Vec<String> = sqlx::query_scalar(
        "SELECT database_name FROM tenantry.tenants WHERE database_name IS NOT NULL",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert_eq!(databases.len(), TENANTS);

    // Watch the server's own count of connections to these databases while the load runs.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicI64::new(0));
    let sampler = {
        let (pool, done, peak, databases) = (
            s.pool.clone(),
            done.clone(),
            peak.clone(),
            databases.clone(),
        );
        tokio::spawn(async move {
            let mut samples = 0;
            while !done.load(Ordering::Acquire) {
                let open: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)",
                )
                .bind(&databases)
                .fetch_one(&pool)
                .await
                .unwrap();
                peak.fetch_max(open, Ordering::AcqRel);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples
        })
    };

    let routes = Router::new().route("/whoami", get(whoami));
    let app = Router::new().fallback_service(TenancyLayer::new(tenancy.clone()).layer(routes));
    let clients = (0..CLIENTS).map(|c| {
        let (app, names) = (app.clone(), names.clone());
        tokio::spawn(async move {
            let (mut ok, mut busy) = (0, 0);
            let mut state = c as u64 * 7919 + 1;
            for _ in 0..REQUESTS_PER_CLIENT {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let name = &names[(state >> 33) as usize % names.len()];
                let request = Request::builder()
                    .uri("/whoami")
                    .header("host", format!("{name}.app.test"))
                    .body(Body::empty())
                    .unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                match response.status() {
                    StatusCode::OK => {
                        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
                            .await
                            .unwrap();
                        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                        assert_eq!(body["slug"], name.as_str(), "a response for another tenant");
                        ok += 1;
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert_eq!(response.headers()["retry-after"], "1");
                        busy += 1;
                    }
                    other => panic!("{name}: unexpected status {other}"),
                }
            }
            (ok, busy)
        })
    });
    let results = futures::future::join_all(clients).await;
    done.store(true, Ordering::Release);
    let samples = sampler.await.unwrap();
    let (ok, busy) = results
        .into_iter()
        .map(Result::unwrap)
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    let peak = peak.load(Ordering::Acquire);
    eprintln!("{ok} served, {busy} refused with 503, peak {peak} connections, {samples} samples");
    assert_eq!(ok + busy, CLIENTS * REQUESTS_PER_CLIENT);
    assert!(ok > 0, "nothing was served");
    assert!(samples > 10, "the sampler hardly ran");
    assert!(
        peak <= i64::from(BUDGET),
        "{peak} connections, budget {BUDGET}"
    );
    assert!(peak > 0, "the sampler never saw a connection");
    assert!(tenancy.open_database_pools() <= (BUDGET / 2) as usize);
}
