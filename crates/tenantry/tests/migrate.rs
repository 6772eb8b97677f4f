//! Tenant migrations: concurrent, per-tenant all-or-nothing, one failure does not stop the
//! others, reruns finish what is pending, and "nothing pending" needs no visit.

use crate::support;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};
use support::{notes, setup, slug};
use tenantry::Migrations;
use tenantry::lifecycle::MigrateOptions;
use tenantry::lifecycle::TenantOutcome;

fn migration(version: i64, sql: &'static str) -> Migration {
    Migration::new(
        version,
        format!("v{version}").into(),
        MigrationType::Simple,
        AssertSqlSafe(sql).into_sql_str(),
        false,
    )
}

/// The notes table, then a second migration that fails where a note is empty.
fn with_v2() -> Migrations {
    support::notes_then("ALTER TABLE notes ADD CONSTRAINT body_not_empty CHECK (body <> '')")
}

fn options() -> MigrateOptions {
    MigrateOptions {
        jobs: 4,
        tenant: None,
        verify: false,
        check: false,
        skip_dedicated: false,
    }
}

async fn version(pool: &sqlx::PgPool, s: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT migration_version FROM tenantry.tenants WHERE slug = $1")
        .bind(s)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn one_failing_tenant_leaves_the_others_migrated_and_a_rerun_finishes_it() {
    let s = setup(8).await;
    for name in ["alpha", "bravo", "charlie", "delta", "echo"] {
        s.create(name).await;
    }
    sqlx::raw_sql(
        "INSERT INTO charlie.notes (tenant_id, body) \
         SELECT id, '' FROM tenantry.tenants WHERE slug = 'charlie'",
    )
    .execute(&s.pool)
    .await
    .unwrap();
    let v2 = s.upgraded(with_v2()).await;

    let started = std::sync::Mutex::new(0);
    let report = v2
        .migrate_tenants(&options(), |n| *started.lock().unwrap() = n, |_| {})
        .await
        .unwrap();
    assert_eq!(*started.lock().unwrap(), 5);
    assert_eq!(report.applied(), 4);
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0.as_str(), "charlie");
    assert!(
        failures[0].1.contains("body_not_empty"),
        "{}",
        failures[0].1
    );
    for name in ["alpha", "bravo", "delta", "echo"] {
        assert_eq!(version(&s.pool, name).await, Some(2), "{name}");
    }
    assert_eq!(version(&s.pool, "charlie").await, Some(1));
    let ledger: Vec<i64> = sqlx::query_scalar("SELECT version FROM charlie.tenantry_migrations")
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert_eq!(ledger, [1], "the failed tenant's ledger is untouched");

    sqlx::raw_sql("UPDATE charlie.notes SET body = 'fixed'")
        .execute(&s.pool)
        .await
        .unwrap();
    let rerun = v2
        .migrate_tenants(&options(), |n| assert_eq!(n, 1), |_| {})
        .await
        .unwrap();
    assert_eq!(rerun.visited.len(), 1, "only the pending tenant is visited");
    assert_eq!(rerun.skipped_current, 4);
    assert!(matches!(&rerun.visited[0].outcome, TenantOutcome::Applied(a) if a.count == 1));
    assert_eq!(version(&s.pool, "charlie").await, Some(2));

    let idle = v2
        .migrate_tenants(&options(), |n| assert_eq!(n, 0), |_| {})
        .await
        .unwrap();
    assert!(idle.visited.is_empty());
    assert_eq!(idle.up_to_date(), 5);
}

#[tokio::test]
async fn verify_visits_every_schema_and_catches_an_edited_migration() {
    let s = setup(4).await;
    s.create("alpha").await;
    s.create("bravo").await;
    let verify = MigrateOptions {
        verify: true,
        check: false,
        ..options()
    };
    let current = s
        .upgraded(Migrations::new(Migrator::DEFAULT, notes()).unwrap())
        .await;
    let report = current
        .migrate_tenants(&verify, |n| assert_eq!(n, 2), |_| {})
        .await
        .unwrap();
    assert_eq!(report.up_to_date(), 2);
    assert_eq!(report.failures().count(), 0);

    let edited = Migrations::new(
        Migrator::DEFAULT,
        Migrator::with_migrations(vec![migration(1, "CREATE TABLE notes (id int)")]),
    )
    .unwrap();
    let report = s
        .upgraded(edited)
        .await
        .migrate_tenants(&verify, |_| {}, |_| {})
        .await
        .unwrap();
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 2);
    assert!(
        failures[0].1.contains("changed after it was applied"),
        "{}",
        failures[0].1
    );
}

#[tokio::test]
async fn a_run_can_be_limited_to_one_tenant() {
    let s = setup(4).await;
    s.create("alpha").await;
    s.create("bravo").await;
    let only = MigrateOptions {
        tenant: Some(slug("bravo")),
        ..options()
    };
    let report = s
        .upgraded(with_v2())
        .await
        .migrate_tenants(&only, |_| {}, |_| {})
        .await
        .unwrap();
    assert_eq!(report.visited.len(), 1);
    assert_eq!(version(&s.pool, "bravo").await, Some(2));
    assert_eq!(version(&s.pool, "alpha").await, Some(1));
    let missing = MigrateOptions {
        tenant: Some(slug("nobody")),
        ..options()
    };
    let error = s
        .upgraded(with_v2())
        .await
        .migrate_tenants(&missing, |_| {}, |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 3);
}

#[tokio::test]
async fn shared_migrations_run_once_in_public_and_rerun_as_nothing() {
    let s = setup(4).await;
    let shared = Migrator::with_migrations(vec![migration(
        1,
        "CREATE TABLE plans (id int PRIMARY KEY)",
    )]);
    let migrations = Migrations::new(shared, notes()).unwrap();
    let first = tenantry::migrate_shared(&s.pool, &migrations, &tenantry::AppRole::default())
        .await
        .unwrap();
    assert_eq!(first.count, 1);
    let again = tenantry::migrate_shared(&s.pool, &migrations, &tenantry::AppRole::default())
        .await
        .unwrap();
    assert_eq!(again.count, 0);
    let plans: Option<String> = sqlx::query_scalar("SELECT to_regclass('public.plans')::text")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(plans.as_deref(), Some("public.plans"));
}

#[tokio::test]
async fn tenant_migrations_that_opt_out_of_transactions_are_refused() {
    let mut m = migration(1, "CREATE INDEX CONCURRENTLY x ON notes (body)");
    m.no_tx = true;
    let error = Migrations::new(Migrator::DEFAULT, Migrator::with_migrations(vec![m])).unwrap_err();
    assert!(error.to_string().contains("transactions"), "{error}");
}
