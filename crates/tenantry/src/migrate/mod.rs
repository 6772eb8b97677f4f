//! Migrations: the *shared* set (the catalog, then the app's shared tables) and the *tenant*
//! set (applied to every tenant schema, and once to the shared-mode schema).
//!
//! One definition of the tenant tables serves every layout: each table carries `tenant_id`
//! and Row-Level Security, which a schema or database of one tenant does not need but does no
//! harm to, and which the shared-mode schema cannot do without. After applying the set to a
//! schema the runner checks that every table there is so protected, and grants the
//! [`AppRole`](crate::AppRole) its use.
//!
//! Each target keeps its own ledger table and takes its own advisory lock, so tenants migrate
//! concurrently. A tenant's pending migrations are applied in one transaction: it ends fully
//! migrated or exactly where it was. The catalog records each tenant's version and a
//! fingerprint of the migration set it is at, so deciding that nothing is pending takes one
//! query, not a visit to every schema (`verify` visits them all).

#[cfg(feature = "postgres")]
mod postgres;
mod runner;
#[cfg(feature = "postgres")]
pub(crate) mod template;

#[cfg(feature = "postgres")]
pub(crate) use postgres::{migrate_new_schema, migrate_schema, record, shared_schema_state};
#[cfg(feature = "postgres")]
pub use postgres::{migrate_own_database, migrate_shared, pending_shared};
pub(crate) use runner::{Ledger, apply_pending};

use std::time::Instant;

use sha2::{Digest, Sha256};
use sqlx::migrate::{Migration, Migrator};

use crate::error::Error;

/// First key of every advisory lock tenantry takes ("tent").
#[cfg(feature = "postgres")]
const LOCK_NAMESPACE: i32 = 0x7465_6e74;

/// The two migration sets of an application.
#[derive(Debug)]
pub struct Migrations {
    shared: Migrator,
    tenant: Migrator,
    tenant_fingerprint: String,
    /// The tenant set for SQLite tenant files, with its fingerprint.
    #[cfg(feature = "sqlite")]
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
            #[cfg(feature = "sqlite")]
            sqlite_tenant: None,
        })
    }

    /// Adds the tenant set for SQLite tenants: the same tables in SQLite's dialect. A
    /// deployment whose catalog is SQLite needs it.
    #[cfg(feature = "sqlite")]
    pub fn with_sqlite(mut self, tenant: Migrator) -> Result<Self, Error> {
        all_transactional(&tenant)?;
        let fingerprint = fingerprint(&tenant);
        self.sqlite_tenant = Some((tenant, fingerprint));
        Ok(self)
    }

    /// The SQLite tenant set and its fingerprint.
    #[cfg(feature = "sqlite")]
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

    /// The shared set.
    pub fn shared(&self) -> &Migrator {
        &self.shared
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

/// What a schema built from nothing at the newest tenant migration has applied: a tenant
/// created from the template.
#[cfg(feature = "postgres")]
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
