//! Attempts to break isolation through the HTTP layer: panics, cancelled requests,
//! rolled-back savepoints, hostile hosts, and many concurrent requests for different tenants
//! on a pool smaller than the number of tenants. The attacks on transactions run against
//! schema tenants, shared-mode tenants (whose rows share tables) and database tenants, each reached
//! directly and through a PgBouncer in transaction mode whose one server connection all
//! tenants share.

use crate::support;

use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::Row;
use support::{Setup, call, identification, note_bodies, notes, setup_via, slug, whoami};
use tenantry::http::MountPath;
use tenantry::{IsolationMode, NewTenant, Tenancy, TenancyLayer, TenantDb};
use tower::{Layer, ServiceExt};

async fn write_then_panic(mut db: TenantDb) -> &'static str {
    sqlx::query("INSERT INTO notes (body) VALUES ('from a panic')")
        .execute(db.postgres().unwrap())
        .await
        .unwrap();
    panic!("handler bug");
}

async fn write_then_hang(mut db: TenantDb) -> &'static str {
    sqlx::query("INSERT INTO notes (body) VALUES ('from a cancelled request')")
        .execute(db.postgres().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "never"
}

async fn write_then_fail(mut db: TenantDb) -> impl IntoResponse {
    sqlx::query("INSERT INTO notes (body) VALUES ('from a failed request')")
        .execute(db.postgres().unwrap())
        .await
        .unwrap();
    (StatusCode::BAD_REQUEST, "no")
}

/// Switches schema and tenant (to `other`'s id) inside a savepoint, rolls the savepoint
/// back, and reports where it is.
async fn savepoint_escape(
    tenant: tenantry::Tenant,
    Path(other): Path<uuid::Uuid>,
    mut db: TenantDb,
) -> Json<Value> {
    let conn = db.postgres().unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SAVEPOINT s; SET LOCAL search_path TO potter; \
         SET LOCAL app.tenant_id = '{other}'; ROLLBACK TO SAVEPOINT s"
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    let (schema, setting): (String, String) =
        sqlx::query_as("SELECT current_schema()::text, current_setting('app.tenant_id')")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let notes: Vec<String> = sqlx::query_scalar("SELECT body FROM notes ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    Json(json!({ "schema": schema, "setting": setting, "id": tenant.id, "notes": notes }))
}

async fn mount(MountPath(mount): MountPath) -> String {
    mount
}

fn app(tenancy: Tenancy) -> Router {
    let routes = Router::new()
        .route("/whoami", get(whoami))
        .route("/panic", post(write_then_panic))
        .route("/hang", post(write_then_hang))
        .route("/fail", post(write_then_fail))
        .route("/savepoint/{other}", get(savepoint_escape))
        .route("/mount", get(mount));
    let public = Router::new().route("/health", get(|| async { "ok" }));
    Router::new().fallback_service(TenancyLayer::new(tenancy).public(public).layer(routes))
}

/// Every connection the app role's pool (which requests use) hands out afterwards is clean:
/// idle, no tenant settings.
async fn assert_pool_clean(s: &Setup) {
    let thor = s.tenancy.catalog().by_slug(&slug("thor")).await.unwrap();
    let placement = match thor {
        Some(thor) => thor.placement.clone(),
        None => {
            let any = s.tenancy.catalog().list().await.unwrap();
            any.into_iter().next().expect("a tenant").tenant.placement
        }
    };
    let pool = &s.tenancy.request_pool(&placement).await.unwrap();
    assert!(pool.size() > 0, "requests used the app role's pool");
    for _ in 0..pool.size() {
        // One simple query: through a pooler, a prepared statement's two round trips could
        // reach two sessions.
        let row = sqlx::raw_sql(
            "SELECT current_setting('search_path'), current_setting('app.tenant_id', true), \
             cardinality(current_schemas(false))",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let (path, setting, schemas): (String, Option<String>, i32) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(schemas, 0, "search_path {path:?} leaked");
        assert!(
            setting.unwrap_or_default().is_empty(),
            "app.tenant_id leaked"
        );
    }
}

/// How the tenants of an attack are laid out and reached.
#[derive(Debug, Clone, Copy)]
struct Layout {
    isolation: IsolationMode,
    /// Through a PgBouncer in transaction mode with one server connection per role.
    pgbouncer: bool,
}

const SCHEMA: Layout = Layout {
    isolation: IsolationMode::Schema,
    pgbouncer: false,
};

async fn two_tenants(size: u32, layout: Layout) -> (Setup, Router) {
    let s = setup_via(size, layout.pgbouncer).await;
    s.create_in("thor", layout.isolation).await;
    s.create_in("potter", layout.isolation).await;
    for (tenant, body) in [("thor", "thor's note"), ("potter", "potter's note")] {
        support::add_note(&s.tenancy, tenant, body).await;
    }
    let app = app(s.tenancy.clone());
    (s, app)
}

#[tokio::test]
async fn unqualified_sql_outside_a_tenant_transaction_fails_closed() {
    let (s, _) = two_tenants(2, SCHEMA).await;
    let error = sqlx::query("SELECT * FROM notes")
        .fetch_all(&s.pool)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
    let error = sqlx::raw_sql("CREATE TABLE stray (x int)")
        .execute(&s.pool)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no schema has been selected"),
        "{error}"
    );
}

#[tokio::test]
async fn each_host_reaches_only_its_own_tenant() {
    let (s, app) = two_tenants(2, SCHEMA).await;
    let (status, thor) = call(&app, "GET", "thor.app.test", "/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(thor["schema"], "thor");
    assert_eq!(thor["notes"], json!(["thor's note"]));
    let potter_id = s
        .tenancy
        .catalog()
        .by_slug(&slug("potter"))
        .await
        .unwrap()
        .unwrap()
        .id;
    let (_, potter) = call(&app, "GET", "Potter.App.Test:8080", "/whoami").await;
    assert_eq!(potter["notes"], json!(["potter's note"]));
    assert_eq!(potter["setting"], potter_id.to_string());
    let (_, by_path) = call(&app, "GET", "app.test", "/t/potter/whoami").await;
    assert_eq!(by_path["schema"], "potter");
    let (_, mounted) = call(&app, "GET", "app.test", "/t/potter/mount").await;
    assert_eq!(mounted, "/t/potter");
    let (status, _) = call(&app, "GET", "app.test", "/health").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn hostile_and_unknown_hosts_get_clean_json_errors() {
    let (_s, app) = two_tenants(2, SCHEMA).await;
    let long_label = format!("{}.app.test", "a".repeat(300));
    let cases: Vec<(&str, &str, StatusCode)> = vec![
        ("nobody.app.test", "/whoami", StatusCode::NOT_FOUND),
        ("evil.example", "/whoami", StatusCode::NOT_FOUND),
        (
            "x'; DROP SCHEMA thor CASCADE; --.app.test",
            "/whoami",
            StatusCode::BAD_REQUEST,
        ),
        ("../../etc/passwd", "/whoami", StatusCode::BAD_REQUEST),
        (long_label.as_str(), "/whoami", StatusCode::BAD_REQUEST),
        ("þór.app.test", "/whoami", StatusCode::BAD_REQUEST),
        ("thor.app.test:99999x", "/whoami", StatusCode::BAD_REQUEST),
        ("app.test", "/t/nobody/whoami", StatusCode::NOT_FOUND),
        // The path prefix names tenants on the base domain only.
        ("evil.example", "/t/thor/whoami", StatusCode::NOT_FOUND),
        (
            "thor.app.test.evil.example",
            "/t/thor/whoami",
            StatusCode::NOT_FOUND,
        ),
        (
            "app.test",
            "/t/'%3B%20DROP%20SCHEMA%20thor/whoami",
            StatusCode::NOT_FOUND,
        ),
        ("app.test", "/t/../whoami", StatusCode::NOT_FOUND),
    ];
    for (host, path, expected) in cases {
        let request = Request::builder()
            .uri(path)
            .header("host", host)
            .body(Body::empty());
        let Ok(request) = request else {
            continue; // the http crate itself refuses to build this header
        };
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), expected, "{host} {path}");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{host} {path}: not JSON: {e}"));
        assert!(body["detail"].is_string(), "{host}: {body}");
    }
    let (_, body) = call(&app, "GET", "nobody.app.test", "/whoami").await;
    assert_eq!(body["detail"], "No tenant for host 'nobody.app.test'");
    // Nothing was dropped.
    let (_, thor) = call(&app, "GET", "thor.app.test", "/whoami").await;
    assert_eq!(thor["notes"], json!(["thor's note"]));
}

#[tokio::test]
async fn a_suspended_tenant_gets_403_and_a_request_without_host_400() {
    let (s, app) = two_tenants(2, SCHEMA).await;
    s.tenancy
        .update_tenant(
            &slug("thor"),
            tenantry::TenantUpdate {
                status: Some(tenantry::TenantStatus::Suspended),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (status, body) = call(&app, "GET", "thor.app.test", "/whoami").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["detail"], "Tenant 'thor' is suspended.");
    let request = Request::builder()
        .uri("/whoami")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn a_panicking_handler_writes_nothing_and_leaves_the_pool_clean(layout: Layout) {
    let (s, app) = two_tenants(1, layout).await;
    for _ in 0..3 {
        let (status, body) = call(&app, "POST", "thor.app.test", "/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["detail"], "Internal server error.");
    }
    assert_eq!(note_bodies(&s.tenancy, "thor").await, ["thor's note"]);
    assert_pool_clean(&s).await;
    let (_, potter) = call(&app, "GET", "potter.app.test", "/whoami").await;
    assert_eq!(potter["notes"], json!(["potter's note"]));
}

async fn a_cancelled_request_writes_nothing_and_leaves_the_pool_clean(layout: Layout) {
    let (s, app) = two_tenants(1, layout).await;
    for _ in 0..3 {
        let request = Request::builder()
            .method("POST")
            .uri("/hang")
            .header("host", "thor.app.test")
            .body(Body::empty())
            .unwrap();
        let cancelled =
            tokio::time::timeout(Duration::from_millis(200), app.clone().oneshot(request)).await;
        assert!(cancelled.is_err(), "the request should still be hanging");
    }
    // With a pool of one, potter's request needs the very connection thor's request held.
    let (_, potter) = call(&app, "GET", "potter.app.test", "/whoami").await;
    assert_eq!(potter["schema"], schema_of("potter", layout.isolation));
    assert_eq!(potter["notes"], json!(["potter's note"]));
    assert_eq!(note_bodies(&s.tenancy, "thor").await, ["thor's note"]);
    assert_pool_clean(&s).await;
}

async fn an_error_response_rolls_back_and_a_success_commits(layout: Layout) {
    let (s, app) = two_tenants(1, layout).await;
    let (status, _) = call(&app, "POST", "thor.app.test", "/fail").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(note_bodies(&s.tenancy, "thor").await, ["thor's note"]);
    assert_pool_clean(&s).await;
}

async fn a_rolled_back_savepoint_cannot_move_the_request_to_another_tenant(layout: Layout) {
    let (s, app) = two_tenants(1, layout).await;
    let potter = s
        .tenancy
        .catalog()
        .by_slug(&slug("potter"))
        .await
        .unwrap()
        .unwrap();
    let path = format!("/savepoint/{}", potter.id);
    let (status, body) = call(&app, "GET", "thor.app.test", &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["schema"], schema_of("thor", layout.isolation));
    assert_eq!(body["setting"], body["id"]);
    assert_eq!(body["notes"], json!(["thor's note"]));
    assert_pool_clean(&s).await;
}

async fn many_concurrent_requests_for_different_tenants_on_a_small_pool_never_mix(layout: Layout) {
    let s = setup_via(3, layout.pgbouncer).await;
    let names = ["t-one", "t-two", "t-three", "t-four", "t-five", "t-six"];
    s.create_each_with_its_name(names.map(|name| (name, layout.isolation)))
        .await;
    let app = app(s.tenancy.clone());
    let requests = (0..300).map(|i| {
        let app = app.clone();
        let name = names[i % names.len()];
        tokio::spawn(async move {
            // Mix in panics and cancellations on the same pool.
            match i % 10 {
                3 => {
                    call(&app, "POST", &format!("{name}.app.test"), "/panic").await;
                    None
                }
                7 => {
                    let request = Request::builder()
                        .method("POST")
                        .uri("/hang")
                        .header("host", format!("{name}.app.test"))
                        .body(Body::empty())
                        .unwrap();
                    let _ =
                        tokio::time::timeout(Duration::from_millis(5), app.oneshot(request)).await;
                    None
                }
                _ => Some((
                    name,
                    call(&app, "GET", &format!("{name}.app.test"), "/whoami").await,
                )),
            }
        })
    });
    let results = futures::future::join_all(requests).await;
    let (mut checked, mut busy) = (0, 0);
    for result in results {
        if let Some((name, (status, body))) = result.unwrap() {
            // On a busy machine a database tenant's pool may stay full past its wait: that
            // request is told to retry, which is no mix.
            if status == StatusCode::SERVICE_UNAVAILABLE
                && body["detail"] == "The database is busy; retry shortly."
            {
                busy += 1;
                continue;
            }
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            assert_eq!(body["slug"], name);
            assert_eq!(body["schema"], schema_of(name, layout.isolation));
            assert_eq!(body["setting"], body["id"]);
            assert_eq!(
                body["notes"],
                json!([name]),
                "{name} saw another tenant's rows"
            );
            checked += 1;
        }
    }
    assert_eq!(checked + busy, 240);
    assert!(checked > busy, "{busy} of 240 were busy");
    for name in names {
        assert_eq!(note_bodies(&s.tenancy, name).await, [name]);
    }
    assert_pool_clean(&s).await;
}

/// The schema a request of tenant `slug` runs in.
fn schema_of(slug: &str, isolation: IsolationMode) -> String {
    match isolation {
        IsolationMode::Shared => "tenantry_shared".into(),
        IsolationMode::Database => "tenant".into(),
        _ => slug.replace('-', "_"),
    }
}

/// Runs each attack above on schema, shared-mode and database tenants, reached directly and
/// through PgBouncer.
macro_rules! in_both_layouts {
    ($($test:ident),* $(,)?) => {
        in_both_layouts!(@mod schema_tenants, Schema, false; $($test),*);
        in_both_layouts!(@mod shared_tenants, Shared, false; $($test),*);
        in_both_layouts!(@mod schema_tenants_through_pgbouncer, Schema, true; $($test),*);
        in_both_layouts!(@mod shared_tenants_through_pgbouncer, Shared, true; $($test),*);
        in_both_layouts!(@mod database_tenants, Database, false; $($test),*);
        in_both_layouts!(@mod database_tenants_through_pgbouncer, Database, true; $($test),*);
    };
    (@mod $name:ident, $isolation:ident, $pgbouncer:expr; $($test:ident),*) => {
        mod $name {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Layout {
                    isolation: tenantry::IsolationMode::$isolation,
                    pgbouncer: $pgbouncer,
                })
                .await
            })*
        }
    };
}

in_both_layouts!(
    a_panicking_handler_writes_nothing_and_leaves_the_pool_clean,
    a_cancelled_request_writes_nothing_and_leaves_the_pool_clean,
    an_error_response_rolls_back_and_a_success_commits,
    a_rolled_back_savepoint_cannot_move_the_request_to_another_tenant,
    many_concurrent_requests_for_different_tenants_on_a_small_pool_never_mix,
);

#[tokio::test]
async fn the_platforms_own_sites_are_served_on_their_names_which_no_tenant_can_take() {
    let s = support::setup(4).await;
    let identification = identification().with_site(slug("blog"));
    let migrations = tenantry::Migrations::new(sqlx::migrate::Migrator::DEFAULT, notes()).unwrap();
    let tenancy = Tenancy::connect(s.pool.clone(), identification, migrations)
        .await
        .unwrap();
    tenancy
        .create_tenant(NewTenant::new(slug("thor"), IsolationMode::Schema))
        .await
        .unwrap();
    let routes = Router::new().route("/", get(whoami));
    let public = Router::new().route("/", get(|| async { "public" }));
    let blog = Router::new().route("/", get(|| async { "blog" }));
    let layer = TenancyLayer::new(tenancy.clone())
        .public(public)
        .site("blog", blog);
    let app = Router::new().fallback_service(layer.layer(routes));
    let base = "app.test".to_owned();
    for (host, expected) in [
        (base.clone(), "public"),
        (format!("www.{base}"), "public"),
        (format!("blog.{base}"), "blog"),
    ] {
        let response = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header("host", &host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(body, expected.as_bytes(), "{host}");
    }
    // A tenant is still a tenant; by path prefix on www too.
    let (status, who) = call(&app, "GET", &format!("thor.{base}"), "/").await;
    assert_eq!(
        (status, who["slug"].as_str()),
        (StatusCode::OK, Some("thor"))
    );
    let (status, who) = call(&app, "GET", &format!("www.{base}"), "/t/thor/").await;
    assert_eq!(
        (status, who["slug"].as_str()),
        (StatusCode::OK, Some("thor"))
    );
    // The site's name is no tenant's: not by creating, renaming or importing.
    let taken = tenancy
        .create_tenant(NewTenant::new(slug("blog"), IsolationMode::Schema))
        .await
        .unwrap_err();
    assert!(
        taken.to_string().contains("the platform's own sites"),
        "{taken}"
    );
    let rename = tenantry::TenantUpdate {
        slug: Some(slug("blog")),
        ..Default::default()
    };
    let taken = tenancy
        .update_tenant(&slug("thor"), rename)
        .await
        .unwrap_err();
    assert!(
        taken.to_string().contains("the platform's own sites"),
        "{taken}"
    );
    assert!(
        tenancy
            .catalog()
            .by_slug(&slug("blog"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
#[should_panic(expected = "add it with Identification::with_site")]
async fn a_site_the_identification_does_not_reserve_is_refused() {
    let s = support::setup(2).await;
    let _ = TenancyLayer::new(s.tenancy.clone()).site("blog", Router::new());
}
