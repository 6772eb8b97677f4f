//! Requests cancelled at random points (before, during and after `BEGIN`, mid-query, during
//! `COMMIT`) against every layout and the platform API. Afterwards no connection may be left
//! inside a transaction, and the next 1,000 requests must all succeed.

use crate::support;

use std::pin::pin;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use sqlx::migrate::Migrator;
use support::{Setup, identification, note_bodies, setup_slow, slug};
use tenantry::{
    DatabaseBudget, IsolationMode, Migrations, NewTenant, Tenancy, TenancyLayer, TenantDb,
};
use tower::{Layer, ServiceExt};

const TOKEN: &str = "platform-token";

/// How long the network holds each reply from PostgreSQL.
const LINK_DELAY: Duration = Duration::from_millis(2);

async fn read(mut db: TenantDb) -> Json<Value> {
    let notes: Vec<(String,)> = db
        .query("SELECT body FROM notes ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    Json(json!(notes.len()))
}

async fn write(mut db: TenantDb) -> StatusCode {
    db.query("INSERT INTO notes (body) VALUES ($1)")
        .bind("storm")
        .execute()
        .await
        .unwrap();
    StatusCode::CREATED
}

fn app(tenancy: Tenancy) -> Router {
    let routes = Router::new().route("/notes", get(read).post(write));
    let public = tenantry::http::platform_api::router(tenancy.clone(), TOKEN.into());
    Router::new().fallback_service(TenancyLayer::new(tenancy).public(public).layer(routes))
}

fn request(method: &str, host: &str, path: &str, body: Option<Value>) -> Request {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("authorization", format!("Bearer {TOKEN}"));
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .unwrap()
}

/// A request that adds a note (`write`) or reads them, with the status it succeeds with.
fn notes_request(host: &str, write: bool) -> (Request, StatusCode) {
    match write {
        true => (request("POST", host, "/notes", None), StatusCode::CREATED),
        false => (request("GET", host, "/notes", None), StatusCode::OK),
    }
}

/// Sends `request` and drops it at a random point: after a random number of polls with short
/// random pauses between them, so cancellations land on every await of the request.
async fn cancel_somewhere(app: Router, request: Request) {
    let (polls, pause) = {
        let mut rng = rand::rng();
        (rng.random_range(1..40), rng.random_range(0..400))
    };
    let mut call = pin!(app.oneshot(request));
    for _ in 0..polls {
        if futures::poll!(call.as_mut()).is_ready() {
            return;
        }
        tokio::time::sleep(Duration::from_micros(pause)).await;
    }
}

/// Sends `requests`, 16 at a time, each cancelled somewhere; then sends each again alone,
/// cancelled at its first wait: with an idle connection at hand, that is while the reply to
/// its `BEGIN` is in flight.
async fn storm(app: &Router, requests: impl Iterator<Item = Request> + Clone) {
    futures::stream::iter(requests.clone())
        .for_each_concurrent(16, |request| cancel_somewhere(app.clone(), request))
        .await;
    for request in requests.take(100) {
        let call = pin!(app.clone().oneshot(request));
        let _ = futures::poll!(call);
    }
}

/// Connections to the test database or its tenant databases still inside a transaction 10 s
/// after the storm: time enough for the pools to take back the cancelled requests'
/// connections and for detached catalog changes to finish.
async fn stuck_in_transaction(s: &Setup) -> Vec<(String, String, String)> {
    let mut stuck = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stuck = in_transaction(s).await;
        if stuck.is_empty() {
            break;
        }
    }
    stuck
}

async fn in_transaction(s: &Setup) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT datname::text, usename::text, state FROM pg_stat_activity \
         WHERE state LIKE 'idle in transaction%' AND (datname = current_database() \
         OR datname IN (SELECT database_name FROM tenantry.tenants))",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap()
}

/// Sends `requests`, 16 at a time, to completion; returns every status that was not expected.
async fn unexpected(app: &Router, requests: Vec<(Request, StatusCode)>) -> Vec<StatusCode> {
    futures::stream::iter(requests)
        .map(|(request, expected)| {
            let app = app.clone();
            async move {
                let status = app.oneshot(request).await.unwrap().status();
                (status != expected).then_some(status)
            }
        })
        .buffer_unordered(16)
        .filter_map(|status| async move { status })
        .collect()
        .await
}

async fn requests_cancelled_anywhere_leave_no_connection_in_a_transaction(
    isolation: IsolationMode,
) {
    let s = setup_slow(4, LINK_DELAY).await;
    for tenant in ["thor", "potter"] {
        s.create_in(tenant, isolation).await;
    }
    let app = app(s.tenancy.clone());
    let hosts = ["thor.app.test", "potter.app.test"];
    storm(
        &app,
        (0..3_000).map(|i| notes_request(hosts[i % 2], i % 3 == 0).0),
    )
    .await;
    assert_eq!(stuck_in_transaction(&s).await, Vec::new());
    let next = (0..1_000).map(|i| notes_request(hosts[i % 4 / 2], i % 2 == 0));
    assert_eq!(
        unexpected(&app, next.collect()).await,
        Vec::<StatusCode>::new()
    );
    // Every write of the last 1,000 requests committed: 250 per tenant on top of the storm's.
    let thor = note_bodies(&s.tenancy, "thor").await.len();
    assert!(thor >= 250, "thor has {thor} notes");
}

#[tokio::test]
async fn schema_tenants() {
    requests_cancelled_anywhere_leave_no_connection_in_a_transaction(IsolationMode::Schema).await
}

#[tokio::test]
async fn shared_tenants() {
    requests_cancelled_anywhere_leave_no_connection_in_a_transaction(IsolationMode::Shared).await
}

#[tokio::test]
async fn database_tenants() {
    requests_cancelled_anywhere_leave_no_connection_in_a_transaction(IsolationMode::Database).await
}

#[tokio::test]
async fn platform_api_calls_cancelled_anywhere_leave_the_catalog_pool_clean() {
    let s = setup_slow(4, LINK_DELAY).await;
    let app = app(s.tenancy.clone());
    let creates = (0..300).map(|i| {
        let isolation = ["shared", "schema", "database"][i % 3];
        let slug = format!("storm-{i}");
        request(
            "POST",
            "app.test",
            "/api/tenants",
            Some(json!({ "slug": slug, "isolation": isolation })),
        )
    });
    let lookups =
        (0..600).map(|i| request("GET", "app.test", &format!("/api/tenants/storm-{i}"), None));
    storm(&app, creates.chain(lookups)).await;
    assert_eq!(stuck_in_transaction(&s).await, Vec::new());
    let next: Vec<_> = (0..30)
        .map(|i| {
            let isolation = ["shared", "schema", "database"][i % 3];
            let body = json!({ "slug": format!("after-{i}"), "isolation": isolation });
            (
                request("POST", "app.test", "/api/tenants", Some(body)),
                StatusCode::CREATED,
            )
        })
        .collect();
    assert_eq!(unexpected(&app, next).await, Vec::<StatusCode>::new());
    let next = (0..970)
        .map(|i| {
            let path = format!("/api/tenants/after-{}", i % 30);
            (request("GET", "app.test", &path, None), StatusCode::OK)
        })
        .collect();
    assert_eq!(unexpected(&app, next).await, Vec::<StatusCode>::new());
}

#[tokio::test]
async fn sqlite_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = Migrations::new(Migrator::DEFAULT, Migrator::DEFAULT)
        .and_then(|m| m.with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite")))
        .unwrap();
    let budget = DatabaseBudget {
        per_tenant: 1,
        ..DatabaseBudget::default()
    };
    let tenancy = Tenancy::open_sqlite(dir.path(), identification(), migrations, budget)
        .await
        .unwrap();
    for tenant in ["thor", "potter"] {
        let new = NewTenant::new(slug(tenant), IsolationMode::Database);
        tenancy.create_tenant(new).await.unwrap();
    }
    let app = app(tenancy.clone());
    let hosts = ["thor.app.test", "potter.app.test"];
    storm(
        &app,
        (0..3_000).map(|i| notes_request(hosts[i % 2], i % 3 == 0).0),
    )
    .await;
    // With one connection per tenant file, a connection left in a transaction would hold the
    // file's write lock and every later write would time out.
    let next = (0..1_000).map(|i| notes_request(hosts[i % 4 / 2], i % 2 == 0));
    assert_eq!(
        unexpected(&app, next.collect()).await,
        Vec::<StatusCode>::new()
    );
    assert!(note_bodies(&tenancy, "thor").await.len() >= 250);
}
