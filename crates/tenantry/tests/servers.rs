//! Tenants on another PostgreSQL server: the registry, placement, routing, migrations,
//! renames and deletes across two real servers, all-or-nothing creation, and passwords that
//! never show.

use crate::support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};
use support::{Setup, add_note, call, note_bodies, setup, slug, whoami};
use tenantry::db_server::DbServerName;
use tenantry::db_server::DbServerUrl;
use tenantry::lifecycle::MigrateOptions;
use tenantry::testing::TestCluster;
use tenantry::{Error, IsolationMode, Migrations, NewTenant, Tenancy, TenancyLayer};
use tower::Layer;

const PASSWORD: &str = "never-print-me";

struct TwoServers {
    s: Setup,
    cluster: TestCluster,
    /// The database on the second server that holds its tenants' schemas.
    remote: PgPool,
}

/// The catalog on the main server, and server `east` registered with a password in its URL
/// (the test cluster trusts every connection, so any password works).
async fn two_servers() -> TwoServers {
    let s = setup(4).await;
    let cluster = TestCluster::start();
    let mut admin = PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    admin.execute("CREATE DATABASE tenants").await.unwrap();
    let url = cluster
        .url("tenants")
        .replace("postgres@", &format!("postgres:{PASSWORD}@"));
    s.tenancy
        .db_servers()
        .unwrap()
        .add(&east(), &DbServerUrl::parse(&url).unwrap())
        .await
        .unwrap();
    let remote = PgPool::connect(&cluster.url("tenants")).await.unwrap();
    TwoServers { s, cluster, remote }
}

fn east() -> DbServerName {
    DbServerName::parse("east").unwrap()
}

async fn create_on(
    tenancy: &Tenancy,
    name: &str,
    server: Option<DbServerName>,
) -> Result<(), Error> {
    create_as(tenancy, name, server, IsolationMode::Schema).await
}

async fn create_as(
    tenancy: &Tenancy,
    name: &str,
    server: Option<DbServerName>,
    isolation: IsolationMode,
) -> Result<(), Error> {
    tenancy
        .create_tenant(NewTenant {
            server,
            ..NewTenant::new(slug(name), isolation)
        })
        .await
        .map(drop)
}

async fn schemas(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' \
         AND nspname NOT IN ('public', 'information_schema', 'tenantry') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_tenant_on_another_server_lives_and_is_served_there() {
    let t = two_servers().await;
    create_on(&t.s.tenancy, "thor", Some(east())).await.unwrap();
    create_on(&t.s.tenancy, "potter", None).await.unwrap();
    assert_eq!(schemas(&t.remote).await, ["thor"]);
    assert_eq!(t.s.schemas().await, ["potter"]);
    let details = t.s.tenancy.catalog().details(&slug("thor")).await.unwrap();
    assert_eq!(details.tenant.placement.server, Some(east()));
    assert_eq!(details.tenant.migration_version, Some(1));

    for (tenant, body) in [("thor", "thor's note"), ("potter", "potter's note")] {
        add_note(&t.s.tenancy, tenant, body).await;
    }
    let on_remote: Vec<String> = sqlx::query_scalar("SELECT body FROM thor.notes")
        .fetch_all(&t.remote)
        .await
        .unwrap();
    assert_eq!(on_remote, ["thor's note"]);

    let routes = Router::new().route("/whoami", get(whoami));
    let app = Router::new().fallback_service(TenancyLayer::new(t.s.tenancy.clone()).layer(routes));
    let requests = (0..60).map(|i| {
        let app = app.clone();
        async move {
            let tenant = if i % 2 == 0 { "thor" } else { "potter" };
            (
                tenant,
                call(&app, "GET", &format!("{tenant}.app.test"), "/whoami").await,
            )
        }
    });
    for (tenant, (status, body)) in futures::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["schema"], tenant);
        assert_eq!(body["notes"], json!([format!("{tenant}'s note")]));
    }
}

#[tokio::test]
async fn servers_list_without_passwords_and_cannot_be_removed_while_in_use() {
    let t = two_servers().await;
    create_on(&t.s.tenancy, "thor", Some(east())).await.unwrap();
    let listed = t.s.tenancy.db_servers().unwrap().list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tenants, 1);
    let shown = format!(
        "{} {:?} {}",
        listed[0].url,
        listed[0],
        serde_json::to_string(&listed).unwrap()
    );
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains(":***@"), "{shown}");

    let in_use =
        t.s.tenancy
            .db_servers()
            .unwrap()
            .remove(&east())
            .await
            .unwrap_err();
    assert!(matches!(in_use, Error::DbServerInUse(_)), "{in_use}");
    assert_eq!(in_use.exit_code(), 4);
    let again =
        t.s.tenancy
            .db_servers()
            .unwrap()
            .add(
                &east(),
                &DbServerUrl::parse(&t.cluster.url("tenants")).unwrap(),
            )
            .await
            .unwrap_err();
    assert!(matches!(again, Error::DbServerExists(_)), "{again}");

    t.s.tenancy.delete_tenant(&slug("thor")).await.unwrap();
    assert!(
        schemas(&t.remote).await.is_empty(),
        "the remote schema is dropped"
    );
    t.s.tenancy
        .db_servers()
        .unwrap()
        .remove(&east())
        .await
        .unwrap();
    assert!(
        t.s.tenancy
            .db_servers()
            .unwrap()
            .list()
            .await
            .unwrap()
            .is_empty()
    );
    let gone = create_on(&t.s.tenancy, "loki", Some(east()))
        .await
        .unwrap_err();
    assert!(matches!(gone, Error::DbServerNotFound(_)), "{gone}");
    assert_eq!(gone.exit_code(), 3);
}

#[tokio::test]
async fn an_unreachable_server_is_not_registered_and_its_password_is_not_echoed() {
    let s = setup(2).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/tenants");
    let error = s
        .tenancy
        .db_servers()
        .unwrap()
        .add(&east(), &DbServerUrl::parse(&url).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
    assert!(!error.to_string().contains(PASSWORD), "{error}");
    assert!(
        s.tenancy
            .db_servers()
            .unwrap()
            .list()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn migrate_reaches_tenants_on_every_server() {
    let t = two_servers().await;
    create_on(&t.s.tenancy, "thor", Some(east())).await.unwrap();
    create_on(&t.s.tenancy, "potter", None).await.unwrap();
    let v2 =
        t.s.upgraded(support::notes_then("ALTER TABLE notes ADD COLUMN tag text"))
            .await;
    let options = MigrateOptions {
        jobs: 2,
        tenant: None,
        verify: false,
        check: false,
        skip_dedicated: false,
    };
    let report = v2
        .migrate_tenants(&options, |n| assert_eq!(n, 2), |_| {})
        .await
        .unwrap();
    assert_eq!(report.applied(), 2);
    let tag: Option<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = 'thor' AND table_name = 'notes' AND column_name = 'tag'",
    )
    .fetch_optional(&t.remote)
    .await
    .unwrap();
    assert_eq!(tag.as_deref(), Some("tag"));
    let idle = v2
        .migrate_tenants(&options, |n| assert_eq!(n, 0), |_| {})
        .await
        .unwrap();
    assert_eq!(idle.up_to_date(), 2);
}

#[tokio::test]
async fn renaming_a_remote_tenant_renames_its_remote_schema() {
    let t = two_servers().await;
    create_on(&t.s.tenancy, "thor", Some(east())).await.unwrap();
    support::rename_slug(&t.s.tenancy, "thor", "odin").await;
    assert_eq!(schemas(&t.remote).await, ["odin"]);
    assert!(note_bodies(&t.s.tenancy, "odin").await.is_empty());
}

#[tokio::test]
async fn a_create_that_fails_on_either_side_leaves_nothing_on_both() {
    let t = two_servers().await;
    // The remote side fails: a migration error.
    let broken = Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
        1,
        "broken".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe("CREATE TABLE notes (id int); SELECT 1 / 0")),
        false,
    )]);
    let tenancy = Tenancy::connect(
        t.s.pool.clone(),
        support::identification(),
        Migrations::new(Migrator::DEFAULT, broken).unwrap(),
    )
    .await
    .unwrap();
    let error = create_on(&tenancy, "thor", Some(east())).await.unwrap_err();
    assert!(matches!(error, Error::MigrationFailed { .. }), "{error}");
    assert!(schemas(&t.remote).await.is_empty());
    assert!(t.s.tenancy.catalog().list().await.unwrap().is_empty());

    // The catalog side fails after the remote schema committed: the schema is dropped again.
    support::fail_catalog_records(&t.s.pool).await;
    let error = create_on(&t.s.tenancy, "thor", Some(east()))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("injected catalog failure"),
        "{error}"
    );
    assert!(
        schemas(&t.remote).await.is_empty(),
        "the remote schema was not dropped"
    );
    assert!(t.s.tenancy.catalog().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_database_tenant_on_another_server_gets_its_database_there() {
    let t = two_servers().await;
    create_as(&t.s.tenancy, "loki", Some(east()), IsolationMode::Database)
        .await
        .unwrap();
    let details = t.s.tenancy.catalog().details(&slug("loki")).await.unwrap();
    let database = details.tenant.placement.database.unwrap().to_string();
    let on_remote: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname = $1 OR datname LIKE 'tenantry\\_template\\_%'",
    )
    .bind(&database)
    .fetch_all(&t.remote)
    .await
    .unwrap();
    assert_eq!(
        on_remote.len(),
        2,
        "the tenant database and its template: {on_remote:?}"
    );
    let on_main: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&database)
        .fetch_one(&t.s.pool)
        .await
        .unwrap();
    assert_eq!(on_main, 0);
    t.s.tenancy
        .in_tenant(&slug("loki"), async |db| -> Result<(), Error> {
            sqlx::query("INSERT INTO notes (body) VALUES ('remote')")
                .execute(db.postgres().unwrap())
                .await?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(note_bodies(&t.s.tenancy, "loki").await, ["remote"]);
    t.s.tenancy.delete_tenant(&slug("loki")).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&database)
        .fetch_one(&t.remote)
        .await
        .unwrap();
    assert_eq!(left, 0, "the remote database is dropped");
}
