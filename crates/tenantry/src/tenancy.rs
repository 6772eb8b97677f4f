//! [`Tenancy`]: the handle that ties the catalog, identification and migrations together.

use std::path::Path;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::catalog::TenantCatalog;
use crate::db::Db;
use crate::db_servers::DbServers;
use crate::dedicated::{self, DedicatedOptions, Instance, Supervisor};
use crate::error::{Error, PgOnly};
use crate::identify::Identification;
use crate::layout::{Cx, Layout, Layouts, Route, TxRoute};
use crate::migrate::Migrations;
use crate::pooler::{self, Pooler};
use crate::pools::{Access, DatabaseBudget, Pools};
use crate::role::{self, AppRole};
use crate::settings::SettingsSchema;
use crate::slug::Slug;
use crate::tenant::{IsolationMode, Tenant};
use crate::transaction::TenantTransaction;

/// Connection options for a pool tenantry can use, straight to PostgreSQL: `url` with an
/// empty `search_path`, so that SQL run outside a tenant transaction finds no tables at all
/// (fail closed). Through a transaction pooler, use [`Pooler::connect_options`].
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Pooler::None.connect_options(url)
}

struct Inner {
    catalog: TenantCatalog,
    pools: Pools,
    layouts: Layouts,
    supervisor: Option<Arc<Supervisor>>,
    default_isolation: IsolationMode,
    identification: Identification,
    migrations: Migrations,
    settings: SettingsSchema,
}

/// Settings of a [`Tenancy`] beyond its pool, identification and migrations.
#[derive(Debug, Clone, Default)]
pub struct TenancyOptions {
    /// The isolation of tenants created without naming one; `None`: schema on PostgreSQL,
    /// database on SQLite. A mode the engine lacks is refused when tenancy opens.
    pub default_isolation: Option<IsolationMode>,
    /// The connections database-mode tenants share.
    pub budget: DatabaseBudget,
    /// The role tenant transactions run as.
    pub role: AppRole,
    /// What stands between tenantry and PostgreSQL; the pool must have been built with its
    /// [`Pooler::connect_options`].
    pub pooler: Pooler,
    /// How this process runs the servers of dedicated tenants, if it serves them.
    pub dedicated: Option<DedicatedOptions>,
    /// The settings tenants have: branding and the app's own ([`SettingsSchema::of`]).
    pub settings: SettingsSchema,
}

/// The multi-tenancy runtime of one service. Cheap to clone.
#[derive(Clone)]
pub struct Tenancy {
    inner: Arc<Inner>,
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
        let tenancy = Self {
            inner: Arc::new(Inner {
                pools: Pools::new(pool.clone(), budget, options.role, options.pooler),
                layouts: Layouts::Postgres,
                supervisor: options
                    .dedicated
                    .map(|dedicated| Supervisor::new(dedicated, catalog.clone())),
                default_isolation: options.default_isolation.unwrap_or_default(),
                catalog,
                identification,
                migrations,
                settings: options.settings,
            }),
        };
        if tenancy.inner.supervisor.as_ref().is_some_and(|s| s.eager()) {
            tokio::spawn(start_dedicated(tenancy.clone()));
        }
        Ok(tenancy)
    }

    /// Starts tenancy with no database server: the catalog in `<data>/catalog.sqlite3`
    /// (created and migrated if needed) and every tenant in its own SQLite file under
    /// `<data>/tenants`. Only database isolation exists there, so that is the default, and
    /// `migrations` needs its SQLite set ([`Migrations::with_sqlite`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sqlx::migrate::Migrator;
    /// use tenantry::{DatabaseBudget, HostName, Identification, IsolationMode, Migrations};
    /// use tenantry::{NewTenant, Slug, Tenancy};
    ///
    /// let data = tempfile::tempdir()?;
    /// let migrations = Migrations::new(Migrator::DEFAULT, Migrator::DEFAULT)?
    ///     .with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite"))?;
    /// let identification = Identification::new(HostName::parse("app.localhost")?);
    /// let budget = DatabaseBudget::default();
    /// let tenancy = Tenancy::open_sqlite(data.path(), identification, migrations, budget).await?;
    /// let thor = Slug::parse("thor")?;
    /// tenancy.create_tenant(NewTenant::new(thor, IsolationMode::Database)).await?;
    /// assert!(data.path().join("tenants/thor.sqlite3").exists());
    /// # Ok(()) }
    /// ```
    pub async fn open_sqlite(
        data: &Path,
        identification: Identification,
        migrations: Migrations,
        budget: DatabaseBudget,
    ) -> Result<Self, Error> {
        let options = TenancyOptions {
            budget,
            ..TenancyOptions::default()
        };
        Self::open_sqlite_with(data, identification, migrations, options).await
    }

    /// [`Tenancy::open_sqlite`] with options: the budget, the dedicated tenants' servers
    /// (each given its tenant's file) and, when it is `dedicated`, the default isolation
    /// (otherwise `database`). The role and pooler have no meaning there.
    pub async fn open_sqlite_with(
        data: &Path,
        identification: Identification,
        migrations: Migrations,
        options: TenancyOptions,
    ) -> Result<Self, Error> {
        migrations.sqlite_tenant()?;
        let layouts = Layouts::sqlite(data)?;
        let default_isolation = match options.default_isolation {
            None => IsolationMode::Database,
            Some(mode) => {
                layouts.of(mode)?;
                mode
            }
        };
        let catalog = TenantCatalog::open_sqlite(data).await?;
        let tenancy = Self {
            inner: Arc::new(Inner {
                supervisor: options
                    .dedicated
                    .map(|dedicated| Supervisor::new(dedicated, catalog.clone())),
                catalog,
                pools: Pools::without_servers(options.budget),
                default_isolation,
                layouts,
                identification,
                migrations,
                settings: options.settings,
            }),
        };
        if tenancy.inner.supervisor.as_ref().is_some_and(|s| s.eager()) {
            tokio::spawn(start_dedicated(tenancy.clone()));
        }
        Ok(tenancy)
    }

    /// The tenant catalog.
    pub fn catalog(&self) -> &TenantCatalog {
        &self.inner.catalog
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

    /// The isolation modes a SQLite deployment has: a file per tenant, served in process or
    /// by a server of its own. The others need PostgreSQL.
    pub fn sqlite_modes() -> &'static [IsolationMode] {
        Layouts::SQLITE_MODES
    }

    /// The isolation of tenants created without naming one.
    pub fn default_isolation(&self) -> IsolationMode {
        self.inner.default_isolation
    }

    /// The pools reaching every tenant.
    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    /// The connections database-mode tenants share (the configured budget, lowered if the
    /// server could not hold it).
    pub fn database_budget(&self) -> DatabaseBudget {
        self.inner.pools.budget()
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
            .for_placement(placement, Access::Tenant)
            .await?;
        Ok(lease.pg()?.clone())
    }

    /// Starts `tenant`'s own server again after it failed to answer; where it listens now.
    pub(crate) async fn restart_instance(
        &self,
        tenant: &Tenant,
    ) -> Result<std::net::SocketAddr, Error> {
        let own = self.layout(tenant)?.own_server();
        match (&self.inner.supervisor, own) {
            (Some(supervisor), Some(own)) => supervisor.restart(self.cx(), tenant, own).await,
            _ => Err(Error::InstanceUnavailable(tenant.slug.to_string())),
        }
    }

    /// Stops `tenant`'s own server on this machine, whichever process supervises it.
    pub(crate) async fn stop_instance(&self, tenant: &Tenant) -> Result<(), Error> {
        let supervisor = self.inner.supervisor.as_deref();
        dedicated::stop_everywhere(supervisor, self.catalog(), tenant).await
    }

    /// The mark this process's router puts on the requests it forwards to the dedicated
    /// servers it started, which take settings changes only under it.
    pub(crate) fn router_secret(&self) -> Option<&str> {
        self.inner
            .supervisor
            .as_ref()
            .and_then(|s| s.router_secret())
    }

    /// Whether `tenant`'s requests are served by a server of its own (dedicated tenants).
    pub fn has_own_server(&self, tenant: &Tenant) -> bool {
        self.layout(tenant)
            .is_ok_and(|layout| layout.own_server().is_some())
    }

    /// The dedicated tenants' servers, as the processes supervising them published them
    /// (none in a SQLite deployment).
    pub async fn instances(&self) -> Result<Vec<Instance>, Error> {
        self.inner.catalog.published_instances().await
    }

    /// How many tenant database pools are open (they share [`TenancyOptions::budget`]).
    pub fn open_database_pools(&self) -> usize {
        self.inner.pools.open_databases()
    }

    /// What layouts work with.
    pub(crate) fn cx(&self) -> Cx<'_> {
        Cx {
            catalog: &self.inner.catalog,
            pools: &self.inner.pools,
            migrations: &self.inner.migrations,
        }
    }

    /// The layout keeping `tenant`.
    pub(crate) fn layout(&self, tenant: &Tenant) -> Result<&dyn Layout, Error> {
        self.inner.layouts.of(tenant.isolation)
    }

    /// The layout keeping tenants of `mode`.
    pub(crate) fn layout_of(&self, mode: IsolationMode) -> Result<&dyn Layout, Error> {
        self.inner.layouts.of(mode)
    }

    /// How a request reaches `tenant`: forwarded to its own server where it has one and this
    /// process routes to it, otherwise a transaction.
    pub(crate) async fn route(&self, tenant: &Tenant, access: Access) -> Result<Route, Error> {
        let layout = self.layout(tenant)?;
        if let (Some(own), Some(supervisor), Access::Tenant) =
            (layout.own_server(), &self.inner.supervisor, access)
        {
            return Ok(Route::Forward(
                supervisor.address(self.cx(), tenant, own).await?,
            ));
        }
        let route = layout.transaction(self.cx(), tenant, access).await?;
        Ok(Route::Transaction(route))
    }

    /// A transaction's way to `tenant`'s tables, never a forward: for migrations, moves,
    /// exports and work outside requests.
    pub(crate) async fn transaction(
        &self,
        tenant: &Tenant,
        access: Access,
    ) -> Result<TxRoute, Error> {
        self.layout(tenant)?
            .transaction(self.cx(), tenant, access)
            .await
    }

    /// Gives `tenant`'s own server, if it runs here with another name or settings than the
    /// tenant now has, the ones it has.
    pub(crate) async fn refresh_instance(&self, tenant: &Tenant) {
        let own = self.layout(tenant).ok().and_then(|l| l.own_server());
        if let (Some(supervisor), Some(own)) = (&self.inner.supervisor, own) {
            supervisor.refresh(self.cx(), tenant, own).await;
        }
    }

    /// How requests are matched to tenants.
    pub fn identification(&self) -> &Identification {
        &self.inner.identification
    }

    /// The shared and tenant migration sets.
    pub fn migrations(&self) -> &Migrations {
        &self.inner.migrations
    }

    /// The settings tenants have, which every change is checked against.
    pub fn settings(&self) -> &SettingsSchema {
        &self.inner.settings
    }

    /// Opens a transaction in the context of the tenant with this slug, outside any request:
    /// for jobs, commands and scripts.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let data = tempfile::tempdir()?;
    /// # let migrations = tenantry::Migrations::new(sqlx::migrate::Migrator::DEFAULT, sqlx::migrate::Migrator::DEFAULT)?
    /// #     .with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite"))?;
    /// # let identification = tenantry::Identification::new(tenantry::HostName::parse("app.localhost")?);
    /// # let tenancy = tenantry::Tenancy::open_sqlite(data.path(), identification, migrations, Default::default()).await?;
    /// # use tenantry::{IsolationMode, NewTenant, Slug};
    /// # let thor = Slug::parse("thor")?;
    /// # tenancy.create_tenant(NewTenant::new(thor.clone(), IsolationMode::Database)).await?;
    /// let mut tx = tenancy.begin(&thor).await?;
    /// tx.query("INSERT INTO notes (body) VALUES ($1)").bind("kept").execute().await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&self, slug: &Slug) -> Result<TenantTransaction, Error> {
        let tenant = self
            .catalog()
            .by_slug(slug)
            .await?
            .ok_or_else(|| Error::TenantNotFound(slug.to_string()))?;
        // A transaction of its own, even for a tenant whose requests go to its own server.
        let TxRoute { pool, begin } = self.transaction(&tenant, Access::Tenant).await?;
        Ok(TenantTransaction::begin_with(&pool, tenant, begin).await?)
    }

    /// Runs `work` in a transaction in the tenant's context, committing if it returns `Ok` and
    /// rolling back otherwise.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let data = tempfile::tempdir()?;
    /// # let migrations = tenantry::Migrations::new(sqlx::migrate::Migrator::DEFAULT, sqlx::migrate::Migrator::DEFAULT)?
    /// #     .with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite"))?;
    /// # let identification = tenantry::Identification::new(tenantry::HostName::parse("app.localhost")?);
    /// # let tenancy = tenantry::Tenancy::open_sqlite(data.path(), identification, migrations, Default::default()).await?;
    /// # use tenantry::{IsolationMode, NewTenant, Slug};
    /// # let thor = Slug::parse("thor")?;
    /// # tenancy.create_tenant(NewTenant::new(thor.clone(), IsolationMode::Database)).await?;
    /// let notes: i64 = tenancy
    ///     .in_tenant(&thor, async |db| -> Result<i64, tenantry::Error> {
    ///         db.query("INSERT INTO notes (body) VALUES ($1)").bind("hello").execute().await?;
    ///         Ok(db.query("SELECT count(*) FROM notes").fetch_scalar().await?)
    ///     })
    ///     .await?;
    /// assert_eq!(notes, 1);
    /// # Ok(()) }
    /// ```
    pub async fn in_tenant<T, E>(
        &self,
        slug: &Slug,
        work: impl AsyncFnOnce(&mut Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let mut tx = self.begin(slug).await?;
        let value = work(&mut tx).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(value)
    }
}

/// Starts the server of every active tenant that has one.
async fn start_dedicated(tenancy: Tenancy) {
    let tenants = match tenancy.catalog().list().await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(%error, "cannot list the dedicated tenants to start their servers");
            return;
        }
    };
    for details in tenants {
        let tenant = details.tenant;
        if tenant.status == crate::tenant::TenantStatus::Active
            && tenancy.has_own_server(&tenant)
            && let Err(error) = tenancy.route(&tenant, Access::Tenant).await
        {
            tracing::warn!(tenant = %tenant.slug, %error, "cannot start the tenant's server");
        }
    }
}

/// Connects as `role` and refuses it if Row-Level Security would not hold it.
async fn check_role(pool: &PgPool, role: &AppRole) -> Result<(), Error> {
    let options = role.options(&pool.connect_options());
    let mut conn = PgConnection::connect_with(&options).await.map_err(|e| {
        Error::UnsafeRole(format!(
            "cannot connect as role '{}', which tenant transactions run as ({e}); the migrate \
             command creates it",
            role.name()
        ))
    })?;
    let mut tx = conn.begin().await?;
    let checked = role.check(&mut tx).await;
    tx.rollback().await?;
    conn.close().await?;
    checked
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

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("catalog", &self.inner.catalog)
            .field("pools", &self.inner.pools)
            .field("default_isolation", &self.inner.default_isolation)
            .field("identification", &self.inner.identification)
            .finish_non_exhaustive()
    }
}
