//! [`Tenancy`]: the handle that ties the catalog, identification and migrations together;
//! `postgres.rs` and `sqlite.rs` open it on either engine.

#[cfg(feature = "dedicated")]
mod dedicated;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::connect_options;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::cache::Cache;

use crate::catalog::TenantCatalog;
use crate::db::Db;
#[cfg(feature = "dedicated")]
use crate::dedicated::{DedicatedOptions, Supervisor};
use crate::error::Error;
use crate::files::{Files, NO_FILE_STORE, TenantFiles};
use crate::identify::Identification;
use crate::layout::{Cx, Layout, Layouts, Route, TxRoute};
use crate::migrate::Migrations;
use crate::pooler::Pooler;
use crate::pools::{Access, DatabaseBudget, Pools};
use crate::role::AppRole;
use crate::settings::SettingsSchema;
use crate::slug::Slug;
use crate::tenant::{IsolationMode, Tenant};
use crate::transaction::{JobsWake, TenantTransaction};

/// What an engine opened: the catalog, the pools and the layouts, with the isolation of
/// tenants created without naming one.
struct Opened {
    catalog: TenantCatalog,
    pools: Pools,
    layouts: Layouts,
    default_isolation: IsolationMode,
}

struct Inner {
    catalog: TenantCatalog,
    pools: Pools,
    layouts: Layouts,
    #[cfg(feature = "dedicated")]
    supervisor: Option<Arc<Supervisor>>,
    default_isolation: IsolationMode,
    identification: Identification,
    migrations: Migrations,
    settings: SettingsSchema,
    cache: Cache,
    files: Option<Files>,
    /// Woken when this process commits a job, so its workers look at once.
    jobs_ready: Arc<Notify>,
    jobs_wake: JobsWake,
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
    #[cfg(feature = "dedicated")]
    pub dedicated: Option<DedicatedOptions>,
    /// The settings tenants have: branding and the app's own ([`SettingsSchema::of`]).
    pub settings: SettingsSchema,
    /// Where handlers' `TenantCache` values live.
    pub cache: Cache,
    /// Where tenants' files are kept; without it, asking for a tenant's files is an error.
    pub files: Option<Files>,
}

/// The multi-tenancy runtime of one service. Cheap to clone.
#[derive(Clone)]
pub struct Tenancy {
    inner: Arc<Inner>,
}

impl Tenancy {
    /// Tenancy over what an engine opened, refusing a default isolation it has no layout
    /// for; starts the servers of dedicated tenants if this process supervises them eagerly.
    fn assemble(
        opened: Opened,
        identification: Identification,
        migrations: Migrations,
        options: TenancyOptions,
    ) -> Result<Self, Error> {
        opened.layouts.of(opened.default_isolation)?;
        let jobs_ready = Arc::new(Notify::new());
        let jobs_wake = wake_workers(opened.catalog.clone(), jobs_ready.clone());
        let tenancy = Self {
            inner: Arc::new(Inner {
                #[cfg(feature = "dedicated")]
                supervisor: options
                    .dedicated
                    .map(|dedicated| Supervisor::new(dedicated, opened.catalog.clone())),
                catalog: opened.catalog,
                pools: opened.pools,
                layouts: opened.layouts,
                default_isolation: opened.default_isolation,
                identification,
                migrations,
                settings: options.settings,
                cache: options.cache,
                files: options.files,
                jobs_ready,
                jobs_wake,
            }),
        };
        #[cfg(feature = "dedicated")]
        if tenancy.inner.supervisor.as_ref().is_some_and(|s| s.eager()) {
            tokio::spawn(dedicated::start_all(tenancy.clone()));
        }
        Ok(tenancy)
    }

    /// The tenant catalog.
    pub fn catalog(&self) -> &TenantCatalog {
        &self.inner.catalog
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
    #[cfg(feature = "postgres")]
    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    /// The connections database-mode tenants share (the configured budget, lowered if the
    /// server could not hold it).
    pub fn database_budget(&self) -> DatabaseBudget {
        self.inner.pools.budget()
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
        #[cfg(feature = "dedicated")]
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

    /// How requests are matched to tenants.
    pub fn identification(&self) -> &Identification {
        &self.inner.identification
    }

    /// Where handlers' cached values live.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Where tenants' files are kept, if anywhere.
    pub fn files(&self) -> Option<&Files> {
        self.inner.files.as_ref()
    }

    /// The files of the tenant `slug`.
    pub async fn tenant_files(&self, slug: &Slug) -> Result<TenantFiles, Error> {
        let tenant = self
            .catalog()
            .by_slug(slug)
            .await?
            .ok_or_else(|| Error::TenantNotFound(slug.to_string()))?;
        self.files_of(tenant.id)
    }

    /// The files of tenant `id`; an error if no store is configured.
    pub(crate) fn files_of(&self, id: uuid::Uuid) -> Result<TenantFiles, Error> {
        self.files()
            .map(|files| files.tenant(id))
            .ok_or_else(|| Error::Io(NO_FILE_STORE.into()))
    }

    /// Woken when this process commits a job.
    pub(crate) fn jobs_ready(&self) -> &Arc<Notify> {
        &self.inner.jobs_ready
    }

    /// What a transaction that enqueues jobs calls once it commits.
    pub(crate) fn jobs_wake(&self) -> JobsWake {
        self.inner.jobs_wake.clone()
    }

    /// A transaction in `tenant`'s context (never forwarded), telling the workers of the jobs
    /// it enqueues.
    pub(crate) async fn begin_tenant(
        &self,
        tenant: Arc<Tenant>,
    ) -> Result<TenantTransaction, Error> {
        let TxRoute { pool, begin } = self.transaction(&tenant, Access::Tenant).await?;
        Ok(TenantTransaction::begin_with(&pool, tenant, begin)
            .await?
            .waking(Some(self.jobs_wake())))
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
        self.begin_tenant(tenant).await
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

/// Marks a tenant's jobs due in the catalog and wakes this process's workers.
fn wake_workers(catalog: TenantCatalog, ready: Arc<Notify>) -> JobsWake {
    Arc::new(move |tenant, run_at| {
        let (catalog, ready) = (catalog.clone(), ready.clone());
        Box::pin(async move {
            if let Err(error) = catalog.mark_jobs_due(tenant, run_at).await {
                // The workers' sweep finds the job; until then it waits.
                tracing::warn!(%error, %tenant, "could not mark a tenant's jobs due");
            }
            ready.notify_one();
        })
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
