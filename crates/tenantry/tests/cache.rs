//! The tenant-aware cache: django-tenants #1052 (two tenants, one key) in every mode and on
//! both backends (Redis being the real server), no stale read after an acknowledged write
//! under concurrent writers and readers, flushes on lifecycle changes, and a Redis outage
//! that only ever costs misses.

use crate::support;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use support::{call, slug};
use tenantry::cache::Cache;
use tenantry::http::TenantCache;
use tenantry::{
    DatabaseBudget, Error, IsolationMode, NewTenant, Tenancy, TenancyLayer, TenancyOptions,
    TenantDb, TenantUpdate,
};
use tower::Layer;

/// The Redis the tests use: `TENANTRY_TEST_REDIS_URL`, or the one on this machine.
fn redis_url() -> String {
    std::env::var("TENANTRY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// A Redis cache, after checking the server answers: a test that needs it fails saying so.
async fn redis() -> Cache {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).unwrap();
    let answered = match client.get_multiplexed_async_connection().await {
        Ok(mut connection) => redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok(),
        Err(_) => false,
    };
    assert!(
        answered,
        "this test needs Redis at {url} (apt-get install redis-server, or set TENANTRY_TEST_REDIS_URL)"
    );
    Cache::redis(&url).unwrap()
}

/// The notes, through the cache (`?cached`), as one JSON list.
async fn notes(
    cache: TenantCache,
    mut db: TenantDb,
) -> Result<axum::Json<Value>, tenantry::TenancyRejection> {
    let notes: Vec<String> = cache
        .get_or_insert_with("notes", Duration::from_secs(60), async || {
            let rows: Vec<(String,)> = db
                .query("SELECT body FROM notes ORDER BY id")
                .fetch_all()
                .await?;
            Ok::<_, tenantry::TenancyRejection>(rows.into_iter().map(|(body,)| body).collect())
        })
        .await?;
    Ok(axum::Json(json!(notes)))
}

/// Adds a note, then flushes the tenant's cache.
async fn add(
    cache: TenantCache,
    mut db: TenantDb,
    body: String,
) -> Result<StatusCode, tenantry::TenancyRejection> {
    db.query("INSERT INTO notes (body) VALUES ($1)")
        .bind(body)
        .execute()
        .await?;
    cache.flush().await;
    Ok(StatusCode::CREATED)
}

fn app(tenancy: &Tenancy) -> Router {
    let routes = Router::new().route("/notes", get(notes).post(add));
    Router::new().fallback_service(TenancyLayer::new(tenancy.clone()).layer(routes))
}

async fn post(app: &Router, host: &str, body: &str) -> StatusCode {
    let request = axum::http::Request::post("/notes")
        .header("host", host)
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap()
        .status()
}

async fn postgres(cache: Cache) -> (support::Setup, Tenancy) {
    let s = support::setup(16).await;
    let options = TenancyOptions {
        cache,
        ..TenancyOptions::default()
    };
    let tenancy = s.with_options(options).await;
    (s, tenancy)
}

/// Two tenants, the same key: each reads its own value, before and after the other writes.
async fn two_tenants_one_key(tenancy: &Tenancy, isolation: IsolationMode) {
    for name in ["thor", "odin"] {
        tenancy
            .create_tenant(NewTenant::new(slug(name), isolation))
            .await
            .unwrap();
        support::add_note(tenancy, name, &format!("{name}'s note")).await;
    }
    let app = app(tenancy);
    for _ in 0..2 {
        for name in ["thor", "odin"] {
            let (status, body) = call(&app, "GET", &format!("{name}.app.test"), "/notes").await;
            assert_eq!(
                (status, body),
                (StatusCode::OK, json!([format!("{name}'s note")]))
            );
        }
    }
    // Written behind the cache's back: thor's value is cached, and odin's write (which
    // flushes odin's values) leaves it so.
    support::add_note(tenancy, "thor", "behind").await;
    assert_eq!(
        post(&app, "odin.app.test", "odin again").await,
        StatusCode::CREATED
    );
    let (_, thor) = call(&app, "GET", "thor.app.test", "/notes").await;
    assert_eq!(thor, json!(["thor's note"]), "cached");
    let (_, odin) = call(&app, "GET", "odin.app.test", "/notes").await;
    assert_eq!(odin, json!(["odin's note", "odin again"]));
    assert_eq!(
        post(&app, "thor.app.test", "thor again").await,
        StatusCode::CREATED
    );
    let (_, thor) = call(&app, "GET", "thor.app.test", "/notes").await;
    assert_eq!(thor, json!(["thor's note", "behind", "thor again"]));
}

macro_rules! each_mode {
    ($($name:ident: $isolation:expr, $cache:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let (_s, tenancy) = postgres($cache).await;
            two_tenants_one_key(&tenancy, $isolation).await;
        }
    )*};
}

each_mode! {
    one_key_two_schema_tenants_in_process: IsolationMode::Schema, Cache::in_process(1 << 20);
    one_key_two_shared_tenants_in_process: IsolationMode::Shared, Cache::in_process(1 << 20);
    one_key_two_database_tenants_in_process: IsolationMode::Database, Cache::in_process(1 << 20);
    one_key_two_schema_tenants_in_redis: IsolationMode::Schema, redis().await;
    one_key_two_shared_tenants_in_redis: IsolationMode::Shared, redis().await;
    one_key_two_database_tenants_in_redis: IsolationMode::Database, redis().await;
}

async fn sqlite(cache: Cache) -> (tempfile::TempDir, Tenancy) {
    let dir = tempfile::tempdir().unwrap();
    let migrations = support::sqlite_notes();
    let options = TenancyOptions {
        cache,
        budget: DatabaseBudget::default(),
        ..TenancyOptions::default()
    };
    let tenancy =
        Tenancy::open_sqlite_with(dir.path(), support::identification(), migrations, options)
            .await
            .unwrap();
    (dir, tenancy)
}

#[tokio::test]
async fn one_key_two_sqlite_tenants_on_both_backends() {
    for cache in [Cache::in_process(1 << 20), redis().await] {
        let (_dir, tenancy) = sqlite(cache).await;
        two_tenants_one_key(&tenancy, IsolationMode::Database).await;
    }
}

#[tokio::test]
async fn no_stale_read_after_an_acknowledged_write_under_concurrency() {
    for cache in [Cache::in_process(1 << 20), redis().await] {
        let (_s, tenancy) = postgres(cache).await;
        tenancy
            .create_tenant(NewTenant::new(slug("thor"), IsolationMode::Schema))
            .await
            .unwrap();
        let app = app(&tenancy);
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        call(&app, "GET", "thor.app.test", "/notes").await;
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let app = app.clone();
                tokio::spawn(async move {
                    for n in 0..10 {
                        let note = format!("w{w}-{n}");
                        assert_eq!(
                            post(&app, "thor.app.test", &note).await,
                            StatusCode::CREATED
                        );
                        // Acknowledged: every read from now on has it.
                        let (_, body) = call(&app, "GET", "thor.app.test", "/notes").await;
                        assert!(
                            body.as_array().unwrap().contains(&json!(note)),
                            "{note} missing from {body}"
                        );
                    }
                })
            })
            .collect();
        for task in writers.into_iter().chain(readers) {
            task.await.unwrap();
        }
        let (_, body) = call(&app, "GET", "thor.app.test", "/notes").await;
        assert_eq!(body.as_array().unwrap().len(), 40);
    }
}

#[tokio::test]
async fn lifecycle_changes_flush_the_tenants_values() {
    let (_s, tenancy) = postgres(redis().await).await;
    tenancy
        .create_tenant(NewTenant::new(slug("thor"), IsolationMode::Schema))
        .await
        .unwrap();
    let app = app(&tenancy);
    let (_, cached) = call(&app, "GET", "thor.app.test", "/notes").await;
    assert_eq!(cached, json!([]));
    // Written behind the cache's back, then the tenant renamed: the cache is flushed.
    support::add_note(&tenancy, "thor", "behind").await;
    let (_, still) = call(&app, "GET", "thor.app.test", "/notes").await;
    assert_eq!(still, json!([]), "cached");
    let rename = TenantUpdate {
        slug: Some(slug("thunder")),
        ..TenantUpdate::default()
    };
    tenancy.update_tenant(&slug("thor"), rename).await.unwrap();
    let (_, fresh) = call(&app, "GET", "thunder.app.test", "/notes").await;
    assert_eq!(fresh, json!(["behind"]));
}

#[tokio::test]
async fn a_redis_outage_is_only_misses() {
    let down = Cache::redis("redis://127.0.0.1:1/").unwrap();
    let (_s, tenancy) = postgres(down).await;
    tenancy
        .create_tenant(NewTenant::new(slug("thor"), IsolationMode::Schema))
        .await
        .unwrap();
    let app = app(&tenancy);
    assert_eq!(
        post(&app, "thor.app.test", "kept").await,
        StatusCode::CREATED
    );
    for _ in 0..3 {
        let (status, body) = call(&app, "GET", "thor.app.test", "/notes").await;
        assert_eq!((status, body), (StatusCode::OK, json!(["kept"])));
    }
    assert!(matches!(
        Cache::redis("not a url"),
        Err(Error::Invalid { .. })
    ));
}
