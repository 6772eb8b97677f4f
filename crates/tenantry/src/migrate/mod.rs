//! Migrations: the *shared* set (the catalog, then the app's shared tables) and the *tenant*
//! set (applied to every tenant schema, and once to the shared-mode schema).
//!
//! One definition of the tenant tables serves every layout: each table carries `tenant_id`
//! and Row-Level Security, which a schema or database of one tenant does not need but does no
//! harm to, and which the shared-mode schema cannot do without. After applying the set to a
//! schema the runner checks that every table there is so protected, and grants the
//! [`AppRole`] its use.
//!
//! Each target keeps its own ledger table and takes its own advisory lock, so tenants migrate
//! concurrently. A tenant's pending migrations are applied in one transaction: it ends fully
//! migrated or exactly where it was. The catalog records each tenant's version and a
//! fingerprint of the migration set it is at, so deciding that nothing is pending takes one
//! query, not a visit to every schema (`verify` visits them all).

mod runner;
pub(crate) mod template;

pub(crate) use runner::{Ledger, apply_pending};

use std::time::Instant;

use sha2::{Digest, Sha256};
use sqlx::migrate::{Migration, Migrator};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::error::Error;
use crate::pooler;
use crate::role::AppRole;
use crate::safe_transaction;
use crate::slug::SchemaName;
use crate::tenant::Tenant;

/// The catalog's own migrations, always applied first.
static CATALOG: Migrator = sqlx::migrate!("./migrations/catalog");

/// First key of every advisory lock tenantry takes ("tent").
const LOCK_NAMESPACE: i32 = 0x7465_6e74;

/// The two migration sets of an application.
#[derive(Debug)]
pub struct Migrations {
    shared: Migrator,
    tenant: Migrator,
    tenant_fingerprint: String,
    /// The tenant set for SQLite tenant files, with its fingerprint.
    sqlite_tenant: Option<(Migrator, String)>,
}

impl Migrations {
    /// `shared` runs once with `search_path` `public` (app tables shared by all tenants; the
    /// catalog is tenantry's own and needs no listing); `tenant` runs in every tenant schema.
    ///
    /// Tenant migrations must run inside a transaction (no `-- no-transaction`), since a
    /// tenant is migrated all or nothing.
    ///
    /// ```
    /// use sqlx::migrate::Migrator;
    /// use tenantry::Migrations;
    ///
    /// let migrations = Migrations::new(Migrator::DEFAULT, sqlx::migrate!("./tests/migrations/tenant"))?
    ///     .with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite"))?;
    /// assert_eq!(migrations.tenant_version(), Some(1));
    /// # Ok::<(), tenantry::Error>(())
    /// ```
    pub fn new(shared: Migrator, tenant: Migrator) -> Result<Self, Error> {
        all_transactional(&tenant)?;
        let tenant_fingerprint = fingerprint(&tenant);
        Ok(Self {
            shared,
            tenant,
            tenant_fingerprint,
            sqlite_tenant: None,
        })
    }

    /// Adds the tenant set for SQLite tenants: the same tables in SQLite's dialect. A
    /// deployment whose catalog is SQLite needs it.
    pub fn with_sqlite(mut self, tenant: Migrator) -> Result<Self, Error> {
        all_transactional(&tenant)?;
        let fingerprint = fingerprint(&tenant);
        self.sqlite_tenant = Some((tenant, fingerprint));
        Ok(self)
    }

    /// The SQLite tenant set and its fingerprint.
    pub(crate) fn sqlite_tenant(&self) -> Result<(&Migrator, &str), Error> {
        self.sqlite_tenant
            .as_ref()
            .map(|(m, f)| (m, f.as_str()))
            .ok_or_else(|| {
                Error::Migration(
                    "the app has no SQLite tenant migrations (Migrations::with_sqlite)".into(),
                )
            })
    }

    /// The tenant set.
    pub fn tenant(&self) -> &Migrator {
        &self.tenant
    }

    /// Identifies the tenant set (versions and checksums): a tenant recorded with this
    /// fingerprint has nothing pending.
    pub fn tenant_fingerprint(&self) -> &str {
        &self.tenant_fingerprint
    }

    /// The newest tenant migration, if there is any.
    pub fn tenant_version(&self) -> Option<i64> {
        up(&self.tenant).map(|m| m.version).max()
    }
}

fn all_transactional(tenant: &Migrator) -> Result<(), Error> {
    match tenant.iter().find(|m| m.no_tx) {
        Some(m) => Err(Error::Migration(format!(
            "tenant migration {} ({}) opts out of transactions, which tenant migrations cannot do",
            m.version, m.description
        ))),
        None => Ok(()),
    }
}

pub(crate) fn up(migrator: &Migrator) -> impl Iterator<Item = &Migration> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
}

/// Identifies a migration set: versions and checksums, in order.
fn fingerprint(migrator: &Migrator) -> String {
    let mut hasher = Sha256::new();
    for m in up(migrator) {
        hasher.update(m.version.to_le_bytes());
        hasher.update(&*m.checksum);
    }
    hex::encode(hasher.finalize())
}

/// What applying a set did to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The newest version before the run.
    pub from: Option<i64>,
    /// The newest version after the run.
    pub to: Option<i64>,
    /// How many migrations ran.
    pub count: usize,
}

/// The error of migration `m` failing with `error`.
pub(crate) fn failed(m: &Migration, source: sqlx::Error) -> Error {
    Error::MigrationFailed {
        version: m.version,
        description: m.description.to_string(),
        source,
    }
}

/// Milliseconds since `started`, for a ledger.
pub(crate) fn millis(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// The migrations of `migrator` a ledger holding `applied` (version, checksum) lacks, after
/// checking that every applied one is still in the source, unchanged.
pub(crate) fn pending<'m>(
    migrator: &'m Migrator,
    applied: &[(i64, Vec<u8>)],
) -> Result<Vec<&'m Migration>, Error> {
    for (version, checksum) in applied {
        match up(migrator).find(|m| m.version == *version) {
            None => {
                return Err(Error::Migration(format!(
                    "migration {version} was applied but is missing from the source"
                )));
            }
            Some(m) if *m.checksum != checksum[..] => {
                return Err(Error::Migration(format!(
                    "migration {version} ({}) was changed after it was applied",
                    m.description
                )));
            }
            Some(_) => {}
        }
    }
    Ok(up(migrator)
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

use sqlx::Executor as _;

/// What a schema built from nothing at the newest tenant migration has applied: a tenant
/// created from the template.
pub(crate) fn applied(migrations: &Migrations) -> Applied {
    Applied {
        from: None,
        to: migrations.tenant_version(),
        count: migrations
            .tenant()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count(),
    }
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
