//! Shared mode: tenants' rows side by side in `tenantry_shared`, kept apart by Row-Level
//! Security alone. These tests attack it with SQL that forgets or forges the tenant, with no
//! tenant at all, with roles that could bypass it, and with all three modes in one server.

use crate::support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, PgConnection};
use support::{Setup, add_note, call, note_bodies, setup, slug, whoami};
use tenantry::{AppRole, Error, IsolationMode, Migrations, Tenancy, TenancyLayer, TenancyOptions};
use tower::Layer;

/// Thor and potter in shared mode, with a note each.
async fn two_shared() -> Setup {
    let s = setup(4).await;
    for name in ["thor", "potter"] {
        s.create_in(name, IsolationMode::Shared).await;
        add_note(&s.tenancy, name, &format!("{name}'s note")).await;
    }
    s
}

async fn id_of(s: &Setup, name: &str) -> uuid::Uuid {
    s.tenancy
        .catalog()
        .by_slug(&slug(name))
        .await
        .unwrap()
        .unwrap()
        .id
}

fn sqlstate(error: &Error) -> Option<String> {
    match error {
        Error::Database(e) => e
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn a_shared_tenant_is_a_catalog_row_and_no_schema() {
    let s = two_shared().await;
    assert!(s.schemas().await.is_empty(), "{:?}", s.schemas().await);
    let details = s.tenancy.catalog().details(&slug("thor")).await.unwrap();
    assert_eq!(details.tenant.isolation, IsolationMode::Shared);
    assert_eq!(details.tenant.placement.schema.as_str(), "tenantry_shared");
    assert_eq!(details.tenant.migration_version, Some(1));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM tenantry_shared.notes")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn sql_without_a_where_sees_and_changes_only_the_current_tenant() {
    let s = two_shared().await;
    let potter = id_of(&s, "potter").await;
    let outcome = s
        .tenancy
        .in_tenant(&slug("thor"), async |db| -> Result<_, Error> {
            let seen: Vec<(String,)> = db.query("SELECT body FROM notes").fetch_all().await?;
            let updated = db
                .query("UPDATE notes SET body = body || '!'")
                .execute()
                .await?;
            let across = db
                .query("UPDATE notes SET body = 'mine' WHERE tenant_id = $1")
                .bind(potter)
                .execute()
                .await?;
            let deleted = db
                .query("DELETE FROM notes WHERE tenant_id = $1")
                .bind(potter)
                .execute()
                .await?;
            Ok((seen, updated, across, deleted))
        })
        .await
        .unwrap();
    assert_eq!(outcome.0, [("thor's note".to_owned(),)]);
    assert_eq!((outcome.1, outcome.2, outcome.3), (1, 0, 0));
    assert_eq!(note_bodies(&s.tenancy, "thor").await, ["thor's note!"]);
    assert_eq!(note_bodies(&s.tenancy, "potter").await, ["potter's note"]);
}

#[tokio::test]
async fn writes_naming_another_tenant_are_refused() {
    let s = two_shared().await;
    let potter = id_of(&s, "potter").await;
    for sql in [
        "INSERT INTO notes (tenant_id, body) VALUES ($1, 'planted')",
        "UPDATE notes SET tenant_id = $1",
    ] {
        let refused = s
            .tenancy
            .in_tenant(&slug("thor"), async |db| -> Result<u64, Error> {
                Ok(db.query(sql).bind(potter).execute().await?)
            })
            .await
            .unwrap_err();
        // 42501: new row violates row-level security policy.
        assert_eq!(
            sqlstate(&refused).as_deref(),
            Some("42501"),
            "{sql}: {refused}"
        );
    }
    assert_eq!(note_bodies(&s.tenancy, "thor").await, ["thor's note"]);
    assert_eq!(note_bodies(&s.tenancy, "potter").await, ["potter's note"]);
}

#[tokio::test]
async fn with_no_tenant_set_nothing_is_seen_and_nothing_written() {
    let s = two_shared().await;
    let role = AppRole::default();
    let mut conn = PgConnection::connect_with(&s.db.options().username(role.name()))
        .await
        .unwrap();
    conn.execute("SET search_path TO tenantry_shared")
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    for sql in ["UPDATE notes SET body = 'x'", "DELETE FROM notes"] {
        let done = sqlx::query(sql).execute(&mut conn).await.unwrap();
        assert_eq!(done.rows_affected(), 0, "{sql}");
    }
    // A tenant setting left empty by an earlier transaction on the same connection.
    conn.execute("BEGIN; SET LOCAL app.tenant_id = ''; COMMIT")
        .await
        .unwrap();
    let insert = sqlx::query("INSERT INTO notes (body) VALUES ('orphan')")
        .execute(&mut conn)
        .await
        .unwrap_err();
    // 42501: with no tenant the row's tenant_id is NULL, which no policy accepts.
    let code = insert.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("42501"), "{insert}");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM tenantry_shared.notes")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(
        total, 2,
        "the owner (a superuser here) still sees both notes"
    );
}

async fn connect_as(s: &Setup, role: &str) -> Result<Tenancy, Error> {
    Tenancy::connect_with(
        s.pool.clone(),
        support::identification(),
        Migrations::new(Migrator::DEFAULT, support::notes()).unwrap(),
        TenancyOptions {
            role: AppRole::new(role, None).unwrap(),
            ..TenancyOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn the_server_refuses_to_start_with_a_role_that_bypasses_row_level_security() {
    let s = two_shared().await;
    let refused = connect_as(&s, "postgres").await.err().unwrap();
    assert!(
        matches!(&refused, Error::UnsafeRole(m) if m.contains("'postgres', which is a superuser")),
        "{refused}"
    );
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let bypass = format!("bypass_{}", &suffix[..12]);
    let owner = format!("owner_{}", &suffix[..12]);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {bypass} LOGIN BYPASSRLS; CREATE ROLE {owner} LOGIN; \
         GRANT CONNECT ON DATABASE \"{db}\" TO {bypass}, {owner}; \
         ALTER TABLE tenantry_shared.notes OWNER TO {owner}",
        db = s.db.name()
    )))
    .execute(&s.pool)
    .await
    .unwrap();
    let by_bypass = connect_as(&s, &bypass).await.err().unwrap();
    let by_owner = connect_as(&s, &owner).await.err().unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE tenantry_shared.notes OWNER TO postgres; \
         REVOKE CONNECT ON DATABASE \"{db}\" FROM {bypass}, {owner}; \
         DROP ROLE {bypass}; DROP ROLE {owner}",
        db = s.db.name()
    )))
    .execute(&s.pool)
    .await
    .unwrap();
    assert!(
        matches!(&by_bypass, Error::UnsafeRole(m) if m.contains("has BYPASSRLS")),
        "{by_bypass}"
    );
    assert!(
        matches!(&by_owner, Error::UnsafeRole(m) if m.contains("owns the shared tenant tables")),
        "{by_owner}"
    );
    assert!(connect_as(&s, AppRole::default().name()).await.is_ok());
}

#[tokio::test]
async fn a_tenant_table_without_row_level_security_fails_its_migration() {
    let s = two_shared().await;
    let unguarded = Migrations::new(
        Migrator::DEFAULT,
        support::then(support::notes(), "CREATE TABLE secrets (id int)"),
    )
    .unwrap();
    let failed = tenantry::migrate_shared(&s.pool, &unguarded, &AppRole::default())
        .await
        .unwrap_err();
    assert!(
        failed.to_string().contains(
            "secrets lacks a tenant_id uuid NOT NULL column, row-level security enabled and \
             forced, a policy"
        ),
        "{failed}"
    );
    let created: bool =
        sqlx::query_scalar("SELECT to_regclass('tenantry_shared.secrets') IS NOT NULL")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert!(!created, "the failed migration rolled back");
}

#[tokio::test]
async fn deleting_a_shared_tenant_removes_only_its_rows() {
    let s = two_shared().await;
    s.tenancy.delete_tenant(&slug("thor")).await.unwrap();
    let left: Vec<String> = sqlx::query_scalar("SELECT body FROM tenantry_shared.notes")
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert_eq!(left, ["potter's note"]);
    assert_eq!(note_bodies(&s.tenancy, "potter").await, ["potter's note"]);
}

#[tokio::test]
async fn shared_schema_and_database_tenants_side_by_side_under_concurrent_load() {
    let s = setup(4).await;
    let tenants = [
        ("sharer", IsolationMode::Shared),
        ("sharer-two", IsolationMode::Shared),
        ("schemer", IsolationMode::Schema),
        ("owner", IsolationMode::Database),
    ];
    s.create_each_with_its_name(tenants).await;
    let routes = Router::new().route("/whoami", get(whoami));
    let app = Router::new().fallback_service(TenancyLayer::new(s.tenancy.clone()).layer(routes));
    let requests = (0..400).map(|i| {
        let app = app.clone();
        let (name, isolation) = tenants[i % tenants.len()];
        tokio::spawn(async move {
            let reply = call(&app, "GET", &format!("{name}.app.test"), "/whoami").await;
            (name, isolation, reply)
        })
    });
    for result in futures::future::join_all(requests).await {
        let (name, isolation, (status, body)) = result.unwrap();
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["slug"], name);
        assert_eq!(body["setting"], body["id"]);
        let schema = match isolation {
            IsolationMode::Shared => "tenantry_shared".to_owned(),
            IsolationMode::Database => "tenant".to_owned(),
            _ => name.to_owned(),
        };
        assert_eq!(body["schema"], schema.as_str());
        assert_eq!(
            body["notes"],
            json!([name]),
            "{name} saw another tenant's rows"
        );
    }
}
