//! Tenantry through a real PgBouncer in transaction mode, keeping one server connection per
//! database and role, so that every tenant of a database shares one server session: named
//! statements, lookups outside transactions, catalog changes, moves and migrations all have
//! to work with sessions they do not own.

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use sqlx::migrate::Migrator;
use support::{add_note, note_bodies, setup_pooled, slug};
use tenantry::lifecycle::MigrateOptions;
use tenantry::lifecycle::MoveTarget;
use tenantry::testing::TestDatabase;
use tenantry::{Error, IsolationMode, Migrations, Pooler, Tenancy, TenancyOptions, TenantStatus};

/// The server session a tenant transaction of `tenant` runs on, and the notes it sees, read
/// with sqlx's own (named) statements as app code would.
async fn session_and_notes(tenancy: &Tenancy, tenant: &str) -> (i32, Vec<String>) {
    let mut tx = tenancy.begin(&slug(tenant)).await.unwrap();
    let conn = tx.postgres().unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let notes: Vec<String> = sqlx::query_scalar("SELECT body FROM notes ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (pid, notes)
}

#[tokio::test]
async fn one_server_session_serves_many_tenants_and_none_sees_another() {
    let s = setup_pooled(4, 1).await;
    let tenants = [
        ("thor", IsolationMode::Schema),
        ("potter", IsolationMode::Schema),
        ("ann", IsolationMode::Shared),
        ("bob", IsolationMode::Shared),
    ];
    s.create_each_with_its_name(tenants).await;
    let rounds = (0..200).map(|i| {
        let tenancy = s.tenancy.clone();
        let (name, _) = tenants[i % tenants.len()];
        async move { (name, session_and_notes(&tenancy, name).await) }
    });
    let mut sessions = BTreeSet::new();
    for (name, (pid, notes)) in join_all(rounds).await {
        assert_eq!(notes, [name], "{name} saw another tenant's rows");
        sessions.insert(pid);
    }
    assert_eq!(
        sessions.len(),
        1,
        "PgBouncer keeps one server connection for the app role, so all four tenants share it"
    );
    let idle_in_transaction: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&s.db.pool(1).await)
    .await
    .unwrap();
    assert_eq!(idle_in_transaction, 0);
}

#[tokio::test]
async fn untenanted_sql_through_pgbouncer_still_fails_closed() {
    let s = setup_pooled(2, 1).await;
    s.create("thor").await;
    add_note(&s.tenancy, "thor", "secret").await;
    // A session PgBouncer opens now reads the roles' empty search_path.
    let bouncer = s.bouncer.as_ref().unwrap();
    let app = Pooler::Transaction
        .connect_options(&bouncer.url(s.db.name()))
        .unwrap()
        .username(tenantry::AppRole::default().name());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&app)
        .await
        .unwrap();
    let found = sqlx::raw_sql("SELECT body FROM notes")
        .fetch_all(&mut conn)
        .await;
    assert!(found.is_err(), "unqualified SQL found a table: {found:?}");
}

#[tokio::test]
async fn a_pooled_tenancy_refuses_to_start_without_the_roles_empty_search_path() {
    let bouncer = tenantry::testing::TestPgBouncer::start(1);
    let mut db = tenantry::testing::TestDatabase::create().await;
    db.reached_through(bouncer.port());
    let pool = sqlx::PgPool::connect_with(
        Pooler::Transaction
            .connect_options(&bouncer.url(db.name()))
            .unwrap(),
    )
    .await
    .unwrap();
    let migrations = Migrations::new(Migrator::DEFAULT, support::notes()).unwrap();
    tenantry::migrate_shared(&pool, &migrations, &tenantry::AppRole::default())
        .await
        .unwrap();
    let refused = Tenancy::connect_with(
        pool,
        support::identification(),
        migrations,
        TenancyOptions {
            pooler: Pooler::Transaction,
            ..TenancyOptions::default()
        },
    )
    .await;
    match refused {
        Err(Error::Invalid { field, message }) => {
            assert_eq!(field, "pool");
            assert!(message.contains("search_path"), "{message}");
        }
        other => panic!("started without the roles' search_path: {:?}", other.err()),
    }
}

#[tokio::test]
async fn a_catalog_change_reaches_another_server_within_a_second() {
    let s = setup_pooled(4, 2).await;
    s.create("thor").await;
    s.create_in("ann", IsolationMode::Shared).await;
    let other = Tenancy::connect_with(
        s.pool.clone(),
        support::identification(),
        Migrations::new(Migrator::DEFAULT, support::notes()).unwrap(),
        TenancyOptions {
            pooler: Pooler::Transaction,
            ..TenancyOptions::default()
        },
    )
    .await
    .unwrap();
    // The other server has both cached.
    for tenant in ["thor", "ann"] {
        assert!(
            other
                .catalog()
                .by_slug(&slug(tenant))
                .await
                .unwrap()
                .is_some()
        );
    }

    let changed = Instant::now();
    support::set_status(&s.tenancy, "thor", TenantStatus::Suspended).await;
    let seen = loop {
        let thor = other
            .catalog()
            .by_slug(&slug("thor"))
            .await
            .unwrap()
            .unwrap();
        if thor.status == TenantStatus::Suspended {
            break changed.elapsed();
        }
        assert!(changed.elapsed() < Duration::from_secs(30), "never seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        seen < Duration::from_secs(1),
        "the suspension took {seen:?}"
    );

    let deleted = Instant::now();
    s.tenancy.delete_tenant(&slug("ann")).await.unwrap();
    let seen = loop {
        if other
            .catalog()
            .by_slug(&slug("ann"))
            .await
            .unwrap()
            .is_none()
        {
            break deleted.elapsed();
        }
        assert!(deleted.elapsed() < Duration::from_secs(30), "never seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(seen < Duration::from_secs(1), "the deletion took {seen:?}");
    assert!(matches!(
        other.begin(&slug("ann")).await,
        Err(Error::TenantNotFound(_))
    ));
}

#[tokio::test]
async fn moves_migrations_and_renames_work_through_pgbouncer() {
    // A move holds a transaction on its source while it writes the target: two sessions.
    let s = setup_pooled(4, 2).await;
    s.create("thor").await;
    s.create("potter").await;
    for i in 0..50 {
        add_note(&s.tenancy, "thor", &format!("note {i}")).await;
    }
    add_note(&s.tenancy, "potter", "potter's").await;
    let before = note_bodies(&s.tenancy, "thor").await;
    for isolation in [
        IsolationMode::Database,
        IsolationMode::Shared,
        IsolationMode::Schema,
    ] {
        let moved = s
            .tenancy
            .move_tenant(
                &slug("thor"),
                MoveTarget {
                    isolation,
                    server: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(moved.tenant.isolation, isolation);
        assert_eq!(note_bodies(&s.tenancy, "thor").await, before);
    }
    support::rename_slug(&s.tenancy, "thor", "odin").await;
    assert_eq!(note_bodies(&s.tenancy, "odin").await, before);

    let v2 = s
        .upgraded(support::notes_then("ALTER TABLE notes ADD COLUMN tag text"))
        .await;
    let report = v2
        .migrate_tenants(
            &MigrateOptions {
                jobs: 4,
                tenant: None,
                verify: true,
                check: false,
                skip_dedicated: false,
            },
            |_| {},
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.failures().count(), 0);
    assert_eq!(report.applied(), 2);
    assert_eq!(note_bodies(&s.tenancy, "potter").await, ["potter's"]);
}

/// A role is the whole server's: deployments (or test databases) preparing the same role for
/// a pooler at the same moment all succeed, where PostgreSQL refuses all but one of
/// concurrent changes to the role ("tuple concurrently updated").
#[tokio::test]
async fn many_databases_prepare_the_same_role_at_once() {
    let databases = join_all((0..4).map(|_| TestDatabase::create())).await;
    let role = tenantry::AppRole::default();
    let migrations = Migrations::new(Migrator::DEFAULT, Migrator::DEFAULT).unwrap();
    let mut pools = Vec::new();
    for db in &databases {
        let pool = db.pool(4).await;
        tenantry::migrate_shared(&pool, &migrations, &role)
            .await
            .unwrap();
        pools.push(pool);
    }
    let prepared = join_all(
        pools
            .iter()
            .flat_map(|pool| (0..6).map(move |_| pool))
            .map(|pool| tenantry::role::prepare_roles(pool, &role)),
    )
    .await;
    for result in prepared {
        result.unwrap();
    }
}
