//! The tenant lifecycle against a real PostgreSQL: all or nothing, conflicts, renames,
//! and catalog changes seen by another process (within its polling interval of a second; the
//! tests allow far more, for a busy machine).

use crate::support;

use std::time::{Duration, Instant};

use sqlx::SqlSafeStr;
use sqlx::migrate::Migrator;
use support::{setup, slug};
use tenantry::{Error, HostName, Migrations, NewTenant, Tenancy, TenantStatus, TenantUpdate};

#[tokio::test]
async fn create_makes_schema_tables_primary_domain_and_records_the_version() {
    let s = setup(4).await;
    let created = s
        .tenancy
        .create_tenant(NewTenant {
            slug: slug("thor"),
            name: Some("Thor Inc".into()),
            domains: vec![HostName::parse("polls.thor.example").unwrap()],
            server: None,
            isolation: tenantry::IsolationMode::Schema,
        })
        .await
        .unwrap();
    assert_eq!(created.tenant.name, "Thor Inc");
    assert_eq!(created.tenant.migration_version, Some(1));
    let domains: Vec<_> = created
        .domains
        .iter()
        .map(|d| (d.domain.as_str(), d.is_primary))
        .collect();
    assert_eq!(
        domains,
        [("thor.app.test", true), ("polls.thor.example", false)]
    );
    assert_eq!(s.schemas().await, ["thor"]);
    let mut tx = s.tenancy.begin(&slug("thor")).await.unwrap();
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(tx.postgres().unwrap())
        .await
        .unwrap();
    assert_eq!(notes, 0);
}

#[tokio::test]
async fn a_failing_create_leaves_no_schema_and_no_catalog_row() {
    let s = setup(4).await;
    let broken = Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
        1,
        "broken".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::AssertSqlSafe("CREATE TABLE notes (id int); SELECT 1 / 0;").into_sql_str(),
        false,
    )]);
    let tenancy = Tenancy::connect(
        s.pool.clone(),
        support::identification(),
        Migrations::new(Migrator::DEFAULT, broken).unwrap(),
    )
    .await
    .unwrap();
    let error = tenancy
        .create_tenant(NewTenant::new(
            slug("thor"),
            tenantry::IsolationMode::Schema,
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::MigrationFailed { .. }), "{error}");
    assert!(!error.to_string().contains(" at line "), "{error}");
    assert!(s.schemas().await.is_empty());
    assert!(tenancy.catalog().list().await.unwrap().is_empty());
    let domains: i64 = sqlx::query_scalar("SELECT count(*) FROM tenantry.domains")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(domains, 0);
}

#[tokio::test]
async fn a_schema_outside_the_catalog_is_a_conflict_and_is_left_alone() {
    let s = setup(4).await;
    sqlx::raw_sql("CREATE SCHEMA thor; CREATE TABLE thor.precious (x int)")
        .execute(&s.pool)
        .await
        .unwrap();
    let error = s
        .tenancy
        .create_tenant(NewTenant::new(
            slug("thor"),
            tenantry::IsolationMode::Schema,
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ExistsOutsideCatalog(_)), "{error}");
    assert_eq!(error.exit_code(), 4);
    assert!(s.tenancy.catalog().list().await.unwrap().is_empty());
    let precious: Option<String> = sqlx::query_scalar("SELECT to_regclass('thor.precious')::text")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(precious.as_deref(), Some("thor.precious"));
}

#[tokio::test]
async fn of_two_concurrent_creates_of_one_slug_exactly_one_succeeds() {
    let s = setup(8).await;
    for round in 0..5 {
        let name = format!("race{round}");
        let attempt = || {
            s.tenancy
                .create_tenant(NewTenant::new(slug(&name), tenantry::IsolationMode::Schema))
        };
        let (a, b) = tokio::join!(attempt(), attempt());
        let (ok, err) = match (a, b) {
            (Ok(ok), Err(err)) | (Err(err), Ok(ok)) => (ok, err),
            (a, b) => panic!("expected one success and one conflict, got {a:?} / {b:?}"),
        };
        assert_eq!(ok.tenant.slug.as_str(), name);
        assert!(matches!(err, Error::SlugTaken(_)), "{err}");
        assert_eq!(err.exit_code(), 4);
    }
    assert_eq!(s.schemas().await.len(), 5);
}

#[tokio::test]
async fn domains_are_unique_and_the_primary_stays() {
    let s = setup(4).await;
    s.create("thor").await;
    s.create("potter").await;
    let custom = HostName::parse("polls.example.com").unwrap();
    s.tenancy.add_domain(&slug("thor"), &custom).await.unwrap();
    let taken = s
        .tenancy
        .add_domain(&slug("potter"), &custom)
        .await
        .unwrap_err();
    assert!(matches!(taken, Error::DomainTaken(_)), "{taken}");
    let primary = HostName::parse("thor.app.test").unwrap();
    let refused = s
        .tenancy
        .remove_domain(&slug("thor"), &primary)
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::PrimaryDomain(_)), "{refused}");
    s.tenancy
        .remove_domain(&slug("thor"), &custom)
        .await
        .unwrap();
    let base = HostName::parse("app.test").unwrap();
    let public = s
        .tenancy
        .add_domain(&slug("thor"), &base)
        .await
        .unwrap_err();
    assert!(
        matches!(
            public,
            Error::Invalid {
                field: "domains",
                ..
            }
        ),
        "{public}"
    );
    // A name under the base domain belongs to the slug it spells, present or future.
    for squat in ["nobody.app.test", "x.thor.app.test"] {
        let squat = HostName::parse(squat).unwrap();
        let refused = s
            .tenancy
            .add_domain(&slug("thor"), &squat)
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Invalid {
                    field: "domains",
                    ..
                }
            ),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn renaming_the_slug_moves_schema_and_primary_domain_with_the_data() {
    let s = setup(4).await;
    s.create("thor").await;
    s.tenancy
        .in_tenant(&slug("thor"), async |db| -> Result<(), Error> {
            sqlx::query("INSERT INTO notes (body) VALUES ('kept')")
                .execute(db.postgres().unwrap())
                .await?;
            Ok(())
        })
        .await
        .unwrap();
    let renamed = s
        .tenancy
        .update_tenant(
            &slug("thor"),
            TenantUpdate {
                name: Some("Odinson".into()),
                slug: Some(slug("odinson")),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.tenant.slug.as_str(), "odinson");
    assert_eq!(renamed.tenant.name, "Odinson");
    assert_eq!(renamed.domains[0].domain, "odinson.app.test");
    assert_eq!(s.schemas().await, ["odinson"]);
    assert!(
        s.tenancy
            .catalog()
            .by_slug(&slug("thor"))
            .await
            .unwrap()
            .is_none()
    );
    let mut tx = s.tenancy.begin(&slug("odinson")).await.unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM notes")
        .fetch_one(tx.postgres().unwrap())
        .await
        .unwrap();
    assert_eq!(body, "kept");
}

#[tokio::test]
async fn delete_drops_the_schema_and_the_catalog_rows() {
    let s = setup(4).await;
    s.create("thor").await;
    s.create("potter").await;
    s.tenancy.delete_tenant(&slug("thor")).await.unwrap();
    assert_eq!(s.schemas().await, ["potter"]);
    let again = s.tenancy.delete_tenant(&slug("thor")).await.unwrap_err();
    assert!(matches!(again, Error::TenantNotFound(_)));
    assert_eq!(again.exit_code(), 3);
}

#[tokio::test]
async fn another_process_sees_a_suspension_within_one_second() {
    let s = setup(4).await;
    s.create("thor").await;
    let other_pool = s.db.pool(2).await;
    let other = Tenancy::connect(
        other_pool,
        support::identification(),
        Migrations::new(Migrator::DEFAULT, support::notes()).unwrap(),
    )
    .await
    .unwrap();
    let cached = other
        .catalog()
        .by_slug(&slug("thor"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.status, TenantStatus::Active);
    let host = HostName::parse("thor.app.test").unwrap();
    assert!(other.catalog().by_domain(&host).await.unwrap().is_some());

    let changed = Instant::now();
    support::set_status(&s.tenancy, "thor", TenantStatus::Suspended).await;
    loop {
        let seen = other.catalog().by_domain(&host).await.unwrap().unwrap();
        if seen.status == TenantStatus::Suspended {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(30),
            "change never seen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.tenancy.delete_tenant(&slug("thor")).await.unwrap();
    let deadline = Instant::now();
    while other.catalog().by_domain(&host).await.unwrap().is_some() {
        assert!(
            deadline.elapsed() < Duration::from_secs(30),
            "deletion never seen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_public_handles_show_themselves_without_secrets() {
    let s = setup(2).await;
    s.create("thor").await;
    let tx = s.tenancy.begin(&slug("thor")).await.unwrap();
    let shown = format!("{:?} {tx:?}", s.tenancy);
    for part in [
        "Tenancy",
        "TenantCatalog",
        "Pools",
        "tenantry_app",
        "TenantTransaction",
        "thor",
    ] {
        assert!(shown.contains(part), "{part} not in {shown}");
    }
    assert!(!shown.contains("password: Some(\""), "{shown}");
}

#[tokio::test]
async fn a_tenants_size_is_what_its_own_tables_take_and_grows_with_its_data() {
    let s = setup(8).await;
    s.create("thor").await;
    s.create_in("odin", tenantry::IsolationMode::Database).await;
    s.create_in("loki", tenantry::IsolationMode::Shared).await;
    let size = async |name: &str| {
        let tenant = s
            .tenancy
            .catalog()
            .details(&slug(name))
            .await
            .unwrap()
            .tenant;
        s.tenancy.tenant_size(&tenant).await.unwrap()
    };
    assert_eq!(
        size("loki").await,
        None,
        "a shared tenant's rows are among others'"
    );
    let database = size("odin").await.unwrap();
    assert!(
        database > 1_000_000,
        "a database has its catalogs: {database}"
    );
    let before = size("thor").await.unwrap();
    for n in 0..500 {
        support::add_note(&s.tenancy, "thor", &format!("note {n} {}", "x".repeat(200))).await;
    }
    let after = size("thor").await.unwrap();
    assert!(after > before, "{before} then {after}");
}
