//! Tenancy on PostgreSQL: connecting, the checks that the pool and role keep tenants apart,
//! and the pools only PostgreSQL has.

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};

use super::{Opened, Tenancy, TenancyOptions};
use crate::catalog::TenantCatalog;
use crate::db_servers::DbServers;
use crate::error::{Error, PgOnly};
use crate::identify::Identification;
use crate::layout::Layouts;
use crate::migrate::Migrations;
use crate::pooler::{self, Pooler};
use crate::pools::{DatabaseBudget, Pools};
use crate::role::{self, AppRole};

/// Connection options for a pool tenantry can use, straight to PostgreSQL: `url` with an
/// empty `search_path`, so that SQL run outside a tenant transaction finds no tables at all
/// (fail closed). Through a transaction pooler, use [`Pooler::connect_options`].
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Pooler::None.connect_options(url)
}

impl Tenancy {
    /// Starts tenancy on `pool`, which must have been built with [`connect_options`] and whose
    /// catalog must have been migrated ([`crate::migrate_shared`] or `migrate` on the CLI).
    /// The pool's role owns the tables; tenant transactions run as the options' [`AppRole`],
    /// and this refuses to start ([`Error::UnsafeRole`]) if Row-Level Security would not
    /// hold that role.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let database = tenantry::testing::TestDatabase::create().await;
    /// # let url = database.url();
    /// use sqlx::migrate::Migrator;
    /// use tenantry::{AppRole, HostName, Identification, Migrations, Tenancy};
    ///
    /// let pool = sqlx::PgPool::connect_with(tenantry::connect_options(&url)?).await?;
    /// let migrations = Migrations::new(Migrator::DEFAULT, sqlx::migrate!("./tests/migrations/tenant"))?;
    /// tenantry::migrate_shared(&pool, &migrations, &AppRole::default()).await?;
    /// let identification = Identification::new(HostName::parse("app.localhost")?);
    /// let tenancy = Tenancy::connect(pool, identification, migrations).await?;
    /// assert!(tenancy.catalog().list().await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        pool: PgPool,
        identification: Identification,
        migrations: Migrations,
    ) -> Result<Self, Error> {
        Self::connect_with(pool, identification, migrations, TenancyOptions::default()).await
    }

    /// [`Tenancy::connect`] with options.
    pub async fn connect_with(
        pool: PgPool,
        identification: Identification,
        migrations: Migrations,
        options: TenancyOptions,
    ) -> Result<Self, Error> {
        let (schemas, catalog): (i32, bool) = pooler::query_as(
            "SELECT cardinality(current_schemas(false)), \
             to_regclass('tenantry.tenants') IS NOT NULL",
        )
        .fetch_one(pooler::Pinned(&pool))
        .await?;
        if !catalog {
            return Err(Error::Migration(
                "the tenant catalog does not exist yet; run the migrate command first".into(),
            ));
        }
        match options.pooler {
            Pooler::None if schemas != 0 => {
                return Err(Error::Invalid {
                    field: "pool",
                    message: "its connections have a search_path; build it with \
                              tenantry::connect_options so untenanted SQL fails closed"
                        .into(),
                });
            }
            Pooler::None => {}
            Pooler::Transaction => role::check_roles(&pool, &options.role).await?,
        }
        check_role(&pool, &options.role).await?;
        let budget = within_server_limit(&pool, options.budget).await?;
        let catalog = TenantCatalog::connect(pool.clone(), options.pooler).await?;
        let opened = Opened {
            pools: Pools::new(pool.clone(), budget, options.role.clone(), options.pooler),
            layouts: Layouts::Postgres,
            default_isolation: options.default_isolation.unwrap_or_default(),
            catalog,
        };
        Self::assemble(opened, identification, migrations, options)
    }

    /// The catalog's PostgreSQL pool (owning role), which also serves tenants placed on no
    /// server: for app work across tenants, such as reports. An error in a SQLite
    /// deployment.
    pub fn postgres(&self) -> Result<&PgPool, Error> {
        self.postgres_for(PgOnly::AppWork)
    }

    /// The catalog's PostgreSQL pool for `operation`: in a SQLite deployment, the refusal
    /// that names it, at the operation's entry.
    pub(crate) fn postgres_for(&self, operation: PgOnly) -> Result<&PgPool, Error> {
        self.inner.catalog.postgres(operation)
    }

    /// The registered servers; an error in a SQLite deployment.
    pub fn db_servers(&self) -> Result<&DbServers, Error> {
        self.inner.pools.db_servers()
    }

    /// The PostgreSQL pool requests of a tenant with this placement use (the app role's).
    #[cfg(feature = "testing")]
    pub async fn request_pool(
        &self,
        placement: &crate::tenant::Placement,
    ) -> Result<PgPool, Error> {
        let lease = self
            .inner
            .pools
            .for_placement(placement, crate::pools::Access::Tenant)
            .await?;
        Ok(lease.pg()?.clone())
    }
}

/// Connects as `role` and refuses it if Row-Level Security would not hold it.
async fn check_role(pool: &PgPool, role: &AppRole) -> Result<(), Error> {
    let options = role.options(&pool.connect_options());
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| unreachable_role(role, &e))?;
    let mut tx = conn.begin().await?;
    let checked = role.check(&mut tx).await;
    tx.rollback().await?;
    conn.close().await?;
    checked
}

/// Why tenant transactions cannot connect as `role`, and what to do about it.
fn unreachable_role(role: &AppRole, error: &sqlx::Error) -> Error {
    let name = role.name();
    let refusal = error.as_database_error();
    let code = refusal.and_then(|e| e.code());
    Error::UnsafeRole(match (code.as_deref(), role.password()) {
        // invalid_password: the server asked for one.
        (Some("28P01"), None) => format!(
            "the server asks role '{name}', which tenant transactions run as, for a password, \
             and none is configured for it: configure one and run migrate again, which gives \
             the role that password"
        ),
        (Some("28P01"), Some(_)) => format!(
            "the server refused the configured password of role '{name}', which tenant \
             transactions run as: run migrate again, which gives the role that password"
        ),
        (Some(_), _) => format!(
            "cannot connect as role '{name}', which tenant transactions run as: {}; migrate \
             creates the role",
            refusal.map_or_else(String::new, |e| e.message().to_owned())
        ),
        (None, _) => {
            format!("cannot connect as role '{name}', which tenant transactions run as: {error}")
        }
    })
}

/// The budget, lowered if the server could not hold it next to the catalog pools: connections
/// the server allows, less those reserved for superusers and those the catalog's owner and
/// app pools may open.
async fn within_server_limit(
    pool: &PgPool,
    budget: DatabaseBudget,
) -> Result<DatabaseBudget, Error> {
    let (max, reserved): (String, String) = pooler::query_as(
        "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections')",
    )
    .fetch_one(pooler::Pinned(pool))
    .await?;
    let parse = |v: &str| v.parse::<u32>().unwrap_or(0);
    let room = parse(&max)
        .saturating_sub(parse(&reserved))
        .saturating_sub(2 * pool.options().get_max_connections());
    if budget.connections <= room {
        return Ok(budget);
    }
    tracing::warn!(
        budget = budget.connections,
        room,
        "the database connection budget exceeds what the server allows; lowering it"
    );
    Ok(DatabaseBudget {
        connections: room.max(budget.per_tenant),
        ..budget
    })
}
