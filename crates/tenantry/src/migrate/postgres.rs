//! Migrating on PostgreSQL: the catalog and the app's shared set, tenant schemas, the
//! shared-mode schema and own databases, each checked for Row-Level Security.

use sqlx::{AssertSqlSafe, Executor as _, PgConnection, PgPool};

use super::{Applied, LOCK_NAMESPACE, Ledger, Migrations, applied, apply_pending, up};
use crate::error::Error;
use crate::slug::SchemaName;
use crate::tenant::Tenant;

/// The catalog's own migrations, always applied first.
static CATALOG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/catalog");
use crate::pooler;
use crate::role::AppRole;
use crate::safe_transaction;

/// How many migrations [`migrate_shared`] would apply, applying nothing: the catalog's, the
/// app's shared set and the tenant set in the shared-mode schema, each against its ledger.
pub async fn pending_shared(pool: &PgPool, migrations: &Migrations) -> Result<usize, Error> {
    let shared_mode = format!("{}.tenantry_migrations", SchemaName::shared().quoted());
    let mut pending = 0;
    for (ledger, migrator) in [
        ("tenantry.catalog_migrations", &CATALOG),
        ("tenantry.shared_migrations", &migrations.shared),
        (shared_mode.as_str(), &migrations.tenant),
    ] {
        let mut tx = safe_transaction::begin(pool, None).await?;
        let exists: bool = pooler::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(ledger)
            .fetch_one(&mut *tx)
            .await?;
        let applied: Vec<i64> = match exists {
            true => {
                pooler::query_scalar(AssertSqlSafe(format!("SELECT version FROM {ledger}")))
                    .fetch_all(&mut *tx)
                    .await?
            }
            false => Vec::new(),
        };
        tx.commit().await?;
        pending += up(migrator)
            .filter(|m| !applied.contains(&m.version))
            .count();
    }
    Ok(pending)
}

/// Applies the catalog's migrations, the app's shared set, then the tenant set to the
/// shared-mode schema, recording every shared-mode tenant as migrated. Creates `role` first if
/// it does not exist.
pub async fn migrate_shared(
    pool: &PgPool,
    migrations: &Migrations,
    role: &AppRole,
) -> Result<Applied, Error> {
    role.ensure(pool).await?;
    let mut tx = safe_transaction::begin(pool, None).await?;
    // Serialize concurrent first runs before the schema exists.
    pooler::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LOCK_NAMESPACE)
        .execute(&mut *tx)
        .await?;
    tx.execute("CREATE SCHEMA IF NOT EXISTS tenantry; SET LOCAL search_path TO tenantry")
        .await?;
    let catalog = apply_pending(&mut *tx, &Ledger::catalog(), &CATALOG).await?;
    tx.commit().await?;

    let mut tx = safe_transaction::begin(pool, None).await?;
    tx.execute("SET LOCAL search_path TO public").await?;
    let shared = apply_pending(&mut *tx, &Ledger::shared(), &migrations.shared).await?;
    tx.commit().await?;

    let mut tx = safe_transaction::begin(pool, None).await?;
    let schema = SchemaName::shared();
    tx.execute(AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {0}; SET LOCAL search_path TO {0}",
        schema.quoted()
    )))
    .await?;
    let tenants = migrate_schema(&mut tx, &schema, migrations, role).await?;
    pooler::query(
        "UPDATE tenantry.tenants SET migration_version = $1, migration_fingerprint = $2, \
         migrated_at = now() WHERE isolation = 'shared' \
         AND migration_fingerprint IS DISTINCT FROM $2",
    )
    .bind(tenants.to)
    .bind(&migrations.tenant_fingerprint)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Applied {
        from: shared.from,
        to: shared.to,
        count: catalog.count + shared.count + tenants.count,
    })
}

/// Applies the tenant set in the open transaction `conn`, whose `search_path` is `schema`,
/// then, if anything ran, checks that Row-Level Security guards every table and grants
/// `role` their use. A schema with nothing pending was checked and granted when its last
/// migration ran, so `migrate --verify` does not redo that for every tenant.
pub(crate) async fn migrate_schema(
    conn: &mut PgConnection,
    schema: &SchemaName,
    migrations: &Migrations,
    role: &AppRole,
) -> Result<Applied, Error> {
    let applied = apply_checked(conn, schema, migrations).await?;
    if applied.count > 0 {
        role.grant(conn, schema).await?;
    }
    Ok(applied)
}

/// Applies the tenant set in `conn`, whose `search_path` is `schema`, then, if anything
/// ran, checks that Row-Level Security guards every table.
async fn apply_checked(
    conn: &mut PgConnection,
    schema: &SchemaName,
    migrations: &Migrations,
) -> Result<Applied, Error> {
    let applied = apply_pending(conn, &Ledger::tenant(schema), &migrations.tenant).await?;
    if applied.count > 0 {
        check_guarded(conn, schema).await?;
    }
    Ok(applied)
}

/// Applies the tenant set to a dedicated tenant's own database through `pool`, which
/// connects as the tenant's own role (the owner of its tables), as a deployment's one-shot
/// migration step does where the catalog is out of reach (Compose, Kubernetes).
pub async fn migrate_own_database(
    pool: &PgPool,
    migrations: &Migrations,
) -> Result<Applied, Error> {
    let schema = SchemaName::own_database();
    let mut tx = safe_transaction::begin(pool, None).await?;
    pooler::query("SELECT pg_advisory_xact_lock($1, 1)")
        .bind(LOCK_NAMESPACE)
        .execute(&mut *tx)
        .await?;
    // Creating the schema takes CREATE on the database, which a role given the database
    // by `tenants create` does not have (it owns the schema instead).
    let exists: bool =
        pooler::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema.as_str())
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        tx.execute(AssertSqlSafe(format!("CREATE SCHEMA {}", schema.quoted())))
            .await?;
    }
    tx.execute(AssertSqlSafe(format!(
        "SET LOCAL search_path TO {}",
        schema.quoted()
    )))
    .await?;
    let applied = apply_checked(&mut tx, &schema, migrations).await?;
    tx.commit().await?;
    Ok(applied)
}

/// Fails unless every table in `schema` but the ledger has a `tenant_id uuid NOT NULL`
/// column and Row-Level Security enabled, forced and with a policy.
async fn check_guarded(conn: &mut PgConnection, schema: &SchemaName) -> Result<(), Error> {
    let tables: Vec<(String, bool, bool, bool)> = pooler::query_as(
        "SELECT c.relname::text, \
             EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                 AND a.attname = 'tenant_id' AND a.atttypid = 'uuid'::regtype \
                 AND a.attnotnull AND NOT a.attisdropped), \
             c.relrowsecurity AND c.relforcerowsecurity, \
             EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> 'tenantry_migrations' \
         ORDER BY 1",
    )
    .bind(schema.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut faults = Vec::new();
    for (table, tenant_id, forced, policy) in tables {
        let missing: Vec<&str> = [
            (!tenant_id).then_some("a tenant_id uuid NOT NULL column"),
            (!forced).then_some("row-level security enabled and forced"),
            (!policy).then_some("a policy"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !missing.is_empty() {
            faults.push(format!("{table} lacks {}", missing.join(", ")));
        }
    }
    if faults.is_empty() {
        return Ok(());
    }
    Err(Error::Migration(format!(
        "every tenant table must keep tenants apart by itself: {}",
        faults.join("; ")
    )))
}

/// Applies the tenant set to a freshly created schema inside the creating transaction, whose
/// `search_path` is already that schema.
pub(crate) async fn migrate_new_schema(
    conn: &mut PgConnection,
    schema: &SchemaName,
    migrations: &Migrations,
    role: &AppRole,
) -> Result<Applied, Error> {
    migrate_schema(conn, schema, migrations, role).await
}

/// What the shared-mode schema has applied; an error unless that is the whole tenant set
/// (`migrate` brings it there).
pub(crate) async fn shared_schema_state(
    conn: &mut PgConnection,
    migrations: &Migrations,
) -> Result<Applied, Error> {
    let table = format!("{}.tenantry_migrations", SchemaName::shared().quoted());
    // Checked first: a query on a missing table would abort the transaction.
    let exists: bool = pooler::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    let ledger: Option<(i64, Option<i64>)> = match exists {
        true => Some(
            pooler::query_as(AssertSqlSafe(format!(
                "SELECT count(*), max(version) FROM {table}"
            )))
            .fetch_one(&mut *conn)
            .await?,
        ),
        false => None,
    };
    let applied = applied(migrations);
    match ledger {
        Some((count, to))
            if usize::try_from(count).ok() == Some(applied.count) && to == applied.to =>
        {
            Ok(applied)
        }
        _ => Err(Error::Migration(
            "the shared-mode schema is not at the newest tenant migration; run migrate first"
                .into(),
        )),
    }
}

/// Records in the catalog that `tenant` is at the newest tenant migration.
pub(crate) async fn record(
    conn: &mut PgConnection,
    tenant: &Tenant,
    migrations: &Migrations,
    applied: &Applied,
) -> Result<(), Error> {
    pooler::query(
        "UPDATE tenantry.tenants SET migration_version = $1, migration_fingerprint = $2, \
         migrated_at = now() WHERE id = $3",
    )
    .bind(applied.to)
    .bind(&migrations.tenant_fingerprint)
    .bind(tenant.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
