//! Dedicated tenants' own database roles: a role reaches its tenant's database and nothing
//! else, whatever it is asked for.

use crate::support;

use sqlx::{Connection, PgConnection};
use support::{add_note, setup, slug};
use tenantry::IsolationMode;

#[tokio::test]
async fn a_dedicated_tenants_role_reaches_its_own_database_and_nothing_else() {
    let s = setup(4).await;
    s.create_each_with_its_name([
        ("loki", IsolationMode::Dedicated),
        ("owner", IsolationMode::Database),
        ("sharer", IsolationMode::Shared),
        ("schemer", IsolationMode::Schema),
    ])
    .await;
    add_note(&s.tenancy, "loki", "loki's second").await;
    let catalog = s.tenancy.catalog();
    let loki = catalog.details(&slug("loki")).await.unwrap().tenant;
    let owner = catalog.details(&slug("owner")).await.unwrap().tenant;
    let role = format!("tenantry_t_{}", &loki.id.simple().to_string()[..20]);
    let as_loki = s.db.options().username(&role);
    let database = |tenant: &tenantry::Tenant| {
        tenant
            .placement
            .database
            .as_ref()
            .unwrap()
            .as_str()
            .to_owned()
    };

    let mut own =
        PgConnection::connect_with(&as_loki.clone().database(&database(&loki)).options([
            ("search_path", "tenant"),
            ("app.tenant_id", &loki.id.to_string()),
        ]))
        .await
        .expect("the role connects to its own database");
    let notes: Vec<String> = sqlx::query_scalar("SELECT body FROM notes ORDER BY id")
        .fetch_all(&mut own)
        .await
        .unwrap();
    assert_eq!(notes, ["loki", "loki's second"]);
    // It owns its tables (its own migration step runs as it), and Row-Level Security,
    // forced, binds it all the same: under another tenant's id it sees nothing.
    let ledger: i64 = sqlx::query_scalar("SELECT count(*) FROM tenantry_migrations")
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert!(ledger > 0);
    let mut astray =
        PgConnection::connect_with(&as_loki.clone().database(&database(&loki)).options([
            ("search_path", "tenant"),
            ("app.tenant_id", &owner.id.to_string()),
        ]))
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut astray)
        .await
        .unwrap();
    assert_eq!(seen, 0, "row-level security binds the tables' owner");

    // The catalog's database (which holds the catalog, the shared tables and the schema
    // tenants) and another tenant's database refuse the role at the door.
    for (what, target) in [
        ("the catalog's database", s.db.name().to_owned()),
        ("another tenant's database", database(&owner)),
    ] {
        let refused = PgConnection::connect_with(&as_loki.clone().database(&target))
            .await
            .err()
            .unwrap_or_else(|| panic!("{what} let the tenant's role in"));
        assert!(
            refused
                .to_string()
                .contains("permission denied for database"),
            "{what}: {refused}"
        );
    }
}

#[tokio::test]
async fn deleting_a_dedicated_tenant_drops_its_database_and_its_role() {
    let s = setup(4).await;
    s.create_in("loki", IsolationMode::Dedicated).await;
    let loki = s
        .tenancy
        .catalog()
        .details(&slug("loki"))
        .await
        .unwrap()
        .tenant;
    let role = format!("tenantry_t_{}", &loki.id.simple().to_string()[..20]);
    let database = loki
        .placement
        .database
        .as_ref()
        .unwrap()
        .as_str()
        .to_owned();
    let exists = async || -> (bool, bool) {
        sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), \
             EXISTS (SELECT 1 FROM pg_database WHERE datname = $2)",
        )
        .bind(&role)
        .bind(&database)
        .fetch_one(&s.pool)
        .await
        .unwrap()
    };
    assert_eq!(exists().await, (true, true));
    let drops = s.tenancy.what_deleting_drops(&loki).unwrap();
    assert!(
        drops.contains(&role) && drops.contains(&database),
        "{drops}"
    );
    s.tenancy.delete_tenant(&slug("loki")).await.unwrap();
    assert_eq!(exists().await, (false, false));
}
