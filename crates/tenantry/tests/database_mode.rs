//! Database mode on PostgreSQL: a database per tenant, created from a template kept at the
//! newest migration, served, migrated, renamed and dropped; isolation from schema tenants.

use crate::support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use support::{Setup, add_note, call, note_bodies, setup, slug, whoami};
use tenantry::lifecycle::MigrateOptions;
use tenantry::{Error, IsolationMode, Migrations, NewTenant, Tenancy, TenancyLayer};
use tower::Layer;

async fn create(tenancy: &Tenancy, name: &str, isolation: IsolationMode) -> Result<(), Error> {
    tenancy
        .create_tenant(NewTenant::new(slug(name), isolation))
        .await
        .map(drop)
}

/// Databases on the server whose names start with `prefix`, with (allows connections,
/// is a template).
async fn databases(pool: &PgPool, prefix: &str) -> Vec<(String, bool, bool)> {
    sqlx::query_as(
        "SELECT datname::text, datallowconn, datistemplate FROM pg_database \
         WHERE starts_with(datname, $1) ORDER BY 1",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// This test's templates: other tests create their own on the same server.
async fn templates(s: &Setup) -> Vec<(String, bool, bool)> {
    let identity = format!("127.0.0.1:5432/{}", s.db.name());
    let digest = hex::encode(Sha256::digest(identity.as_bytes()));
    databases(&s.pool, &format!("tenantry_template_{}_", &digest[..8])).await
}

/// The database of a tenant, as the catalog records it.
async fn database_of(s: &Setup, tenant: &str) -> String {
    let details = s.tenancy.catalog().details(&slug(tenant)).await.unwrap();
    details.tenant.placement.database.unwrap().to_string()
}

#[tokio::test]
async fn a_database_tenant_gets_its_own_database_from_a_closed_template() {
    let s = setup(4).await;
    create(&s.tenancy, "thor", IsolationMode::Database)
        .await
        .unwrap();
    create(&s.tenancy, "loki", IsolationMode::Database)
        .await
        .unwrap();
    create(&s.tenancy, "potter", IsolationMode::Schema)
        .await
        .unwrap();
    for tenant in ["thor", "loki"] {
        let name = database_of(&s, tenant).await;
        assert!(name.starts_with(&format!("tenant_{tenant}_")), "{name}");
        assert_eq!(databases(&s.pool, &name).await, [(name, true, false)]);
    }
    let templates = templates(&s).await;
    assert_eq!(templates.len(), 1, "one template serves every create");
    assert!(
        !templates[0].1 && templates[0].2,
        "the template refuses connections"
    );

    let thor = s
        .tenancy
        .catalog()
        .details(&slug("thor"))
        .await
        .unwrap()
        .tenant;
    assert_eq!(thor.isolation, IsolationMode::Database);
    assert!(thor.placement.database.is_some());
    assert_eq!(thor.migration_version, Some(1));
    assert_eq!(
        s.schemas().await,
        ["potter"],
        "no schema in the catalog database for thor"
    );

    for tenant in ["thor", "loki", "potter"] {
        add_note(&s.tenancy, tenant, &format!("{tenant}'s note")).await;
    }
    let routes = Router::new().route("/whoami", get(whoami));
    let app = Router::new().fallback_service(TenancyLayer::new(s.tenancy.clone()).layer(routes));
    let requests = (0..90).map(|i| {
        let app = app.clone();
        async move {
            let tenant = ["thor", "loki", "potter"][i % 3];
            (
                tenant,
                call(&app, "GET", &format!("{tenant}.app.test"), "/whoami").await,
            )
        }
    });
    for (tenant, (status, body)) in futures::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["notes"],
            json!([format!("{tenant}'s note")]),
            "{tenant}"
        );
        assert_eq!(body["slug"], tenant);
    }
}

#[tokio::test]
async fn renaming_keeps_the_database_and_deleting_drops_it() {
    let s = setup(4).await;
    create(&s.tenancy, "thor", IsolationMode::Database)
        .await
        .unwrap();
    add_note(&s.tenancy, "thor", "kept").await;
    support::rename_slug(&s.tenancy, "thor", "odin").await;
    assert_eq!(note_bodies(&s.tenancy, "odin").await, ["kept"]);
    let database = database_of(&s, "odin").await;
    assert!(
        database.starts_with("tenant_thor_"),
        "the database keeps its name: {database}"
    );
    s.tenancy.delete_tenant(&slug("odin")).await.unwrap();
    assert!(databases(&s.pool, &database).await.is_empty());
    assert!(s.tenancy.catalog().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn of_two_concurrent_creates_of_one_slug_one_succeeds() {
    let s = setup(8).await;
    let (a, b) = tokio::join!(
        create(&s.tenancy, "race", IsolationMode::Database),
        create(&s.tenancy, "race", IsolationMode::Database)
    );
    let error = match (a, b) {
        (Ok(()), Err(e)) | (Err(e), Ok(())) => e,
        other => panic!("expected one success and one conflict: {other:?}"),
    };
    assert!(matches!(error, Error::SlugTaken(_)), "{error}");
    let database = database_of(&s, "race").await;
    assert_eq!(
        databases(&s.pool, "tenant_race_")
            .await
            .iter()
            .filter(|d| d.0 == database)
            .count(),
        1
    );
}

#[tokio::test]
async fn a_create_whose_catalog_commit_fails_drops_the_new_database() {
    let s = setup(4).await;
    support::fail_catalog_records(&s.pool).await;
    // A slug no other test uses: database names are global to the server.
    let error = create(&s.tenancy, "compensated", IsolationMode::Database)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("injected catalog failure"),
        "{error}"
    );
    assert!(s.tenancy.catalog().list().await.unwrap().is_empty());
    assert!(
        databases(&s.pool, "tenant_compensated_").await.is_empty(),
        "the new database was not dropped"
    );
}

#[tokio::test]
async fn migrate_reaches_database_tenants_and_the_next_create_uses_a_new_template() {
    let s = setup(4).await;
    create(&s.tenancy, "thor", IsolationMode::Database)
        .await
        .unwrap();
    create(&s.tenancy, "potter", IsolationMode::Schema)
        .await
        .unwrap();
    let old_template = templates(&s).await;
    let v2 = s
        .upgraded(support::notes_then("ALTER TABLE notes ADD COLUMN tag text"))
        .await;
    let options = MigrateOptions {
        jobs: 2,
        tenant: None,
        verify: false,
        check: false,
        skip_dedicated: false,
    };
    let report = v2.migrate_tenants(&options, |_| {}, |_| {}).await.unwrap();
    assert_eq!(report.applied(), 2, "{report:?}");

    let tenancy_v2 = v2;
    create(&tenancy_v2, "loki", IsolationMode::Database)
        .await
        .unwrap();
    let templates = templates(&s).await;
    assert_eq!(templates.len(), 1, "the old template was dropped");
    assert_ne!(templates, old_template);
    let loki = tenancy_v2
        .catalog()
        .details(&slug("loki"))
        .await
        .unwrap()
        .tenant;
    assert_eq!(loki.migration_version, Some(2));
    tenancy_v2
        .in_tenant(&slug("loki"), async |db| -> Result<(), Error> {
            sqlx::query("INSERT INTO notes (body, tag) VALUES ('x', 'y')")
                .execute(db.postgres().unwrap())
                .await?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_budget_never_exceeds_what_the_server_allows() {
    let s = setup(4).await;
    let asked = tenantry::DatabaseBudget {
        connections: 100_000,
        ..tenantry::DatabaseBudget::default()
    };
    let tenancy = Tenancy::connect_with(
        s.pool.clone(),
        support::identification(),
        Migrations::new(Migrator::DEFAULT, support::notes()).unwrap(),
        tenantry::TenancyOptions {
            default_isolation: Some(IsolationMode::Database),
            budget: asked,
            ..tenantry::TenancyOptions::default()
        },
    )
    .await
    .unwrap();
    let (max, reserved): (String, String) = sqlx::query_as(
        "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections')",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    // Less the catalog's two pools of 4: the owner's and the app role's.
    let room = max.parse::<u32>().unwrap() - reserved.parse::<u32>().unwrap() - 2 * 4;
    assert_eq!(tenancy.database_budget().connections, room);
    assert_eq!(tenancy.default_isolation(), IsolationMode::Database);
}

#[tokio::test]
async fn concurrent_creates_never_wait_on_their_own_pool() {
    // Four catalog connections for 32 creates: an operation that held one connection while
    // it waited for another of the same pool would time out here.
    let s = setup(4).await;
    create(&s.tenancy, "first", IsolationMode::Database)
        .await
        .unwrap();
    let creates = (0..32).map(|i| {
        let tenancy = s.tenancy.clone();
        tokio::spawn(
            async move { create(&tenancy, &format!("db-{i}"), IsolationMode::Database).await },
        )
    });
    let lookups = (0..200).map(|_| {
        let tenancy = s.tenancy.clone();
        tokio::spawn(async move { tenancy.catalog().details(&slug("first")).await.map(drop) })
    });
    let (creates, lookups) = futures::join!(
        futures::future::join_all(creates),
        futures::future::join_all(lookups)
    );
    for result in creates.into_iter().chain(lookups) {
        result.unwrap().unwrap();
    }
    assert_eq!(s.tenancy.catalog().list().await.unwrap().len(), 33);
}
