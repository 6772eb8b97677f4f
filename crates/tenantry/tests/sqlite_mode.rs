//! SQLite deployments, with no PostgreSQL anywhere: tenants as files under a data directory,
//! their lifecycle and migrations, and attempts to break isolation through the HTTP layer.

use crate::support;

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sqlx::migrate::Migrator;
use support::{add_note, call, identification, note_bodies, slug};
use tempfile::TempDir;
use tenantry::lifecycle::MigrateOptions;
use tenantry::{
    DatabaseBudget, Error, HostName, IsolationMode, Migrations, NewTenant, Slug, Tenancy,
    TenancyLayer, TenantDb, TenantStatus, TenantUpdate,
};
use tower::Layer;

/// The SQLite notes set, then `more` as migration 2 when given.
fn notes(more: Option<&'static str>) -> Migrations {
    let set = sqlx::migrate!("./tests/migrations/tenant-sqlite");
    let sqlite = match more {
        Some(sql) => support::then(set, sql),
        None => set,
    };
    Migrations::new(Migrator::DEFAULT, Migrator::DEFAULT)
        .and_then(|m| m.with_sqlite(sqlite))
        .unwrap()
}

async fn open(data: &Path, migrations: Migrations) -> Tenancy {
    Tenancy::open_sqlite(
        data,
        identification(),
        migrations,
        DatabaseBudget::default(),
    )
    .await
    .unwrap()
}

async fn create(tenancy: &Tenancy, name: &str) {
    tenancy
        .create_tenant(NewTenant::new(slug(name), IsolationMode::Database))
        .await
        .unwrap();
}

fn file(dir: &TempDir, stem: &str) -> std::path::PathBuf {
    dir.path().join(format!("tenants/{stem}.sqlite3"))
}

#[tokio::test]
async fn tenants_are_files_created_renamed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let tenancy = open(dir.path(), notes(None)).await;
    assert_eq!(tenancy.default_isolation(), IsolationMode::Database);
    create(&tenancy, "thor").await;
    assert!(file(&dir, "thor").exists());
    assert!(dir.path().join("catalog.sqlite3").exists());

    let refused = |result: Result<(), Error>, field: &str| match result {
        Err(Error::Invalid { field: f, message }) => {
            assert_eq!(f, field);
            assert!(message.contains("needs PostgreSQL"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    refused(
        tenancy
            .create_tenant(NewTenant::new(slug("loki"), IsolationMode::Schema))
            .await
            .map(|_| ()),
        "isolation",
    );
    refused(tenancy.db_servers().map(|_| ()), "server");
    assert!(!file(&dir, "loki").exists());
    assert!(matches!(
        tenancy
            .create_tenant(NewTenant::new(slug("thor"), IsolationMode::Database))
            .await,
        Err(Error::SlugTaken(_))
    ));
    assert!(Slug::parse("../thor").is_err() && Slug::parse("thor.sqlite3").is_err());

    add_note(&tenancy, "thor", "kept").await;
    let renamed = tenancy
        .update_tenant(
            &slug("thor"),
            TenantUpdate {
                slug: Some(slug("odin")),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.domains[0].domain, "odin.app.test");
    assert!(!file(&dir, "thor").exists() && file(&dir, "odin").exists());
    assert_eq!(note_bodies(&tenancy, "odin").await, ["kept"]);

    tenancy.delete_tenant(&slug("odin")).await.unwrap();
    assert!(!file(&dir, "odin").exists());
    assert!(!file(&dir, "odin").with_extension("sqlite3-wal").exists());
    assert!(tenancy.catalog().list().await.unwrap().is_empty());
    assert!(matches!(
        tenancy.delete_tenant(&slug("odin")).await,
        Err(Error::TenantNotFound(_))
    ));
}

#[tokio::test]
async fn migrate_covers_sqlite_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = open(dir.path(), notes(None)).await;
    for name in ["thor", "potter"] {
        create(&v1, name).await;
    }
    drop(v1);
    let v2 = open(
        dir.path(),
        notes(Some("ALTER TABLE notes ADD COLUMN tag TEXT")),
    )
    .await;
    let options = MigrateOptions {
        jobs: 2,
        tenant: None,
        verify: false,
        check: false,
        skip_dedicated: false,
    };
    let run = v2.migrate_tenants(&options, |_| {}, |_| {}).await.unwrap();
    assert_eq!((run.applied(), run.up_to_date()), (2, 0));
    assert_eq!(run.failures().count(), 0);
    let again = v2.migrate_tenants(&options, |_| {}, |_| {}).await.unwrap();
    assert_eq!((again.visited.len(), again.up_to_date()), (0, 2));
    let thor = v2.catalog().details(&slug("thor")).await.unwrap().tenant;
    assert_eq!(thor.migration_version, Some(2));
    v2.in_tenant(&slug("thor"), async |db| -> Result<u64, Error> {
        Ok(db
            .query("INSERT INTO notes (body, tag) VALUES ('x', 'y')")
            .execute()
            .await?)
    })
    .await
    .unwrap();
    // A tenant created now starts from the new template, already at version 2.
    create(&v2, "loki").await;
    let loki = v2.catalog().details(&slug("loki")).await.unwrap().tenant;
    assert_eq!(loki.migration_version, Some(2));
}

#[tokio::test]
async fn another_process_sees_a_suspension_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let one = open(dir.path(), notes(None)).await;
    let two = open(dir.path(), notes(None)).await;
    create(&one, "thor").await;
    let host = HostName::parse("thor.app.test").unwrap();
    let seen = two.catalog().by_domain(&host).await.unwrap().unwrap();
    assert_eq!(seen.status, TenantStatus::Active);
    one.update_tenant(
        &slug("thor"),
        TenantUpdate {
            status: Some(TenantStatus::Suspended),
            ..TenantUpdate::default()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = two.catalog().by_domain(&host).await.unwrap().unwrap();
    assert_eq!(seen.status, TenantStatus::Suspended);
}

async fn write_then_panic(mut db: TenantDb) -> &'static str {
    db.query("INSERT INTO notes (body) VALUES ('from a panic')")
        .execute()
        .await
        .unwrap();
    panic!("handler bug");
}

async fn write_then_hang(mut db: TenantDb) -> &'static str {
    db.query("INSERT INTO notes (body) VALUES ('from a cancelled request')")
        .execute()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "never"
}

async fn write(mut db: TenantDb) -> &'static str {
    db.query("INSERT INTO notes (body) VALUES ('written')")
        .execute()
        .await
        .unwrap();
    "ok"
}

async fn first_note(mut db: TenantDb) -> String {
    db.query("SELECT body FROM notes WHERE id = 1")
        .fetch_optional_scalar::<String>()
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test]
async fn panics_and_cancelled_requests_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let tenancy = open(dir.path(), notes(None)).await;
    for name in ["thor", "potter"] {
        create(&tenancy, name).await;
    }
    add_note(&tenancy, "potter", "potter's first").await;
    let routes = Router::new()
        .route("/panic", post(write_then_panic))
        .route("/hang", post(write_then_hang))
        .route("/write", post(write))
        .route("/first", get(first_note));
    let app = Router::new().fallback_service(TenancyLayer::new(tenancy.clone()).layer(routes));

    let (status, _) = call(&app, "POST", "thor.app.test", "/panic").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        call(&app, "POST", "thor.app.test", "/hang"),
    )
    .await;
    assert!(hung.is_err(), "the request should still be hanging");
    assert!(note_bodies(&tenancy, "thor").await.is_empty());

    // The same id holds each tenant's own row.
    let (status, _) = call(&app, "POST", "thor.app.test", "/write").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        call(&app, "GET", "thor.app.test", "/first").await.1,
        "written"
    );
    assert_eq!(
        call(&app, "GET", "potter.app.test", "/first").await.1,
        "potter's first"
    );
    assert_eq!(note_bodies(&tenancy, "potter").await, ["potter's first"]);
}

#[tokio::test]
async fn the_catalog_upgrade_for_dedicated_tenants_keeps_every_tenant_and_domain() {
    let dir = tempfile::tempdir().unwrap();
    // A catalog as the release before dedicated tenants left it, with a tenant and two
    // domains (a foreign key with ON DELETE CASCADE, which rebuilding the table must not fire).
    let mut before = sqlx::migrate!("./migrations/catalog-sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version <= 3)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("catalog.sqlite3"))
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    before.run(&pool).await.unwrap();
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO tenants (id, slug, name, schema_name, isolation, created_at, database_name) \
         VALUES ($1, 'thor', 'Thor', 'tenant', 'database', '2026-11-01T00:00:00Z', 'thor')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    for (domain, primary) in [("thor.example.com", true), ("thor.example.org", false)] {
        sqlx::query("INSERT INTO domains (domain, tenant_id, is_primary) VALUES ($1, $2, $3)")
            .bind(domain)
            .bind(id)
            .bind(primary)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let tenancy = open(dir.path(), notes(None)).await;
    let thor = tenancy.catalog().details(&slug("thor")).await.unwrap();
    assert_eq!(thor.tenant.id, id);
    let mut domains: Vec<String> = thor.domains.into_iter().map(|d| d.domain).collect();
    domains.sort();
    assert_eq!(domains, ["thor.example.com", "thor.example.org"]);
    tenancy
        .create_tenant(NewTenant::new(slug("loki"), IsolationMode::Dedicated))
        .await
        .unwrap();
    assert!(file(&dir, "loki").exists());
    assert_eq!(
        tenancy
            .catalog()
            .details(&slug("loki"))
            .await
            .unwrap()
            .tenant
            .isolation,
        IsolationMode::Dedicated
    );
}

#[tokio::test]
async fn a_sqlite_tenants_size_is_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let tenancy = open(dir.path(), notes(None)).await;
    create(&tenancy, "thor").await;
    let tenant = tenancy
        .catalog()
        .details(&slug("thor"))
        .await
        .unwrap()
        .tenant;
    let size = tenancy.tenant_size(&tenant).await.unwrap().unwrap();
    let file = std::fs::metadata(file(&dir, "thor")).unwrap().len();
    assert!(
        size >= i64::try_from(file).unwrap() && size > 0,
        "{size} for a {file}-byte file"
    );
}
