//! [`Pools`]: the connection pools to wherever tenants live, opened lazily.
//!
//! Schema-mode tenants share their server's pool. Each database-mode tenant has a small pool
//! of its own; together they stay within a [`DatabaseBudget`]. When a new tenant database
//! needs a pool and the budget is spent, the least recently used idle pool is closed first.
//! When every pool is busy, the caller waits at most [`DatabaseBudget::wait`] and then gets
//! [`Error::Busy`] (503 with `Retry-After` over HTTP).
//!
//! Every PostgreSQL pool exists per [`Access`]: tenant transactions connect as the
//! [`AppRole`], which Row-Level Security holds; migrations and moves as the owning role.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[cfg(feature = "postgres")]
use {
    crate::db_server::DbServerName,
    crate::db_servers::DbServers,
    sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    std::sync::RwLock,
};

use crate::db::{Db, DbPool};
use crate::db_server::DbServerUrl;
use crate::error::{Error, PgOnly};
use crate::pooler::Pooler;
use crate::role::AppRole;
use crate::slug::DatabaseName;
use crate::tenant::Placement;

/// How many connections all database-mode tenants may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseBudget {
    /// Connections across every tenant database pool.
    pub connections: u32,
    /// Connections one tenant database pool may open.
    pub per_tenant: u32,
    /// How long a request waits for room before it is refused.
    pub wait: Duration,
}

impl Default for DatabaseBudget {
    fn default() -> Self {
        Self {
            connections: 40,
            per_tenant: 2,
            wait: Duration::from_secs(2),
        }
    }
}

impl DatabaseBudget {
    /// How many tenant database pools may be open at once.
    fn pools(&self) -> usize {
        (self.connections / self.per_tenant.max(1)).max(1) as usize
    }
}

/// Which role a pool connects as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// The [`AppRole`]: tenant transactions, to which Row-Level Security applies.
    Tenant,
    /// The role of the configured URL, which owns the tables: migrations and moves.
    Owner,
}

/// A pool that reaches a tenant, with a claim on it while a database-mode tenant's pool is in
/// use: a pool with a live claim is never closed to make room.
#[derive(Clone)]
pub(crate) struct PoolLease {
    pool: DbPool,
    pooler: Pooler,
    _claim: Option<Arc<()>>,
}

impl PoolLease {
    /// Opens a transaction with `begin`, a statement tenantry built (never request input).
    pub(crate) async fn begin(&self, begin: Arc<str>) -> Result<Db, sqlx::Error> {
        self.pool.begin(begin, self.pooler).await
    }

    /// A lease on a pool nothing claims (it is never closed to make room).
    pub(crate) fn unclaimed(pool: DbPool, pooler: Pooler) -> Self {
        Self {
            pool,
            pooler,
            _claim: None,
        }
    }

    /// The PostgreSQL pool, for work only PostgreSQL tenants have.
    #[cfg(feature = "postgres")]
    pub(crate) fn pg(&self) -> Result<&PgPool, Error> {
        self.pool
            .postgres()
            .ok_or_else(|| PgOnly::AppWork.refused())
    }
}

struct TenantPool {
    pool: DbPool,
    claim: Arc<()>,
    last_used: Instant,
}

impl TenantPool {
    fn idle(&self) -> bool {
        Arc::strong_count(&self.claim) == 1
    }

    fn lease(&mut self, pooler: Pooler) -> PoolLease {
        self.last_used = Instant::now();
        PoolLease {
            pool: self.pool.clone(),
            pooler,
            _claim: Some(self.claim.clone()),
        }
    }
}

/// A tenant database's pool: who it connects as, its server's URL, and its name.
type DatabaseKey = (Access, String, DatabaseName);

#[derive(Default)]
struct DatabasePools {
    open: HashMap<DatabaseKey, TenantPool>,
    /// Pools being closed to make room; their connections still count.
    closing: usize,
}

/// The catalog's PostgreSQL pools and the servers it registers.
#[cfg(feature = "postgres")]
#[derive(Clone)]
struct Catalog {
    owner: PgPool,
    /// The catalog database as the app role: what most requests use, so made once.
    app: PgPool,
    servers: DbServers,
}

/// A pool per server and per tenant database. Every pool copies the catalog pool's
/// settings. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Pools {
    /// `None` in a SQLite deployment.
    #[cfg(feature = "postgres")]
    catalog: Option<Catalog>,
    role: AppRole,
    pooler: Pooler,
    budget: DatabaseBudget,
    #[cfg(feature = "postgres")]
    by_url: Arc<RwLock<HashMap<(Access, String), PgPool>>>,
    databases: Arc<Mutex<DatabasePools>>,
}

impl Pools {
    /// Pools for the tenants registered in the catalog behind `catalog` (a pool of the
    /// owning role, reached through `pooler`), whose transactions run as `role`.
    #[cfg(feature = "postgres")]
    pub(crate) fn new(
        catalog: PgPool,
        budget: DatabaseBudget,
        role: AppRole,
        pooler: Pooler,
    ) -> Self {
        let app = catalog
            .options()
            .clone()
            .connect_lazy_with(role.options(&catalog.connect_options()));
        Self {
            catalog: Some(Catalog {
                servers: DbServers::new(catalog.clone(), pooler),
                app,
                owner: catalog,
            }),
            ..Self::at(budget, role, pooler)
        }
    }

    /// Pools for the tenant files of a SQLite deployment, which has no server.
    #[cfg(feature = "sqlite")]
    pub(crate) fn without_servers(budget: DatabaseBudget) -> Self {
        Self::at(budget, AppRole::default(), Pooler::None)
    }

    fn at(budget: DatabaseBudget, role: AppRole, pooler: Pooler) -> Self {
        Self {
            #[cfg(feature = "postgres")]
            catalog: None,
            role,
            pooler,
            budget,
            #[cfg(feature = "postgres")]
            by_url: Arc::default(),
            databases: Arc::default(),
        }
    }

    /// The catalog's pool, which also serves tenants placed on no server; an error in a
    /// SQLite deployment.
    #[cfg(feature = "postgres")]
    pub(crate) fn catalog(&self) -> Result<&PgPool, Error> {
        self.postgres(PgOnly::AppWork).map(|c| &c.owner)
    }

    /// The server registry; an error in a SQLite deployment.
    #[cfg(feature = "postgres")]
    pub(crate) fn db_servers(&self) -> Result<&DbServers, Error> {
        self.postgres(PgOnly::DbServers).map(|c| &c.servers)
    }

    #[cfg(feature = "postgres")]
    fn postgres(&self, operation: PgOnly) -> Result<&Catalog, Error> {
        self.catalog.as_ref().ok_or_else(|| operation.refused())
    }

    /// The role tenant transactions run as.
    #[cfg(feature = "postgres")]
    pub(crate) fn role(&self) -> &AppRole {
        &self.role
    }

    /// The budget database-mode tenants share.
    pub(crate) fn budget(&self) -> DatabaseBudget {
        self.budget
    }

    /// How many tenant database pools are open.
    pub(crate) fn open_databases(&self) -> usize {
        self.databases.lock().expect("database pools").open.len()
    }

    /// The PostgreSQL pool that reaches a tenant with this placement as `access` says.
    #[cfg(feature = "postgres")]
    pub(crate) async fn for_placement(
        &self,
        placement: &Placement,
        access: Access,
    ) -> Result<PoolLease, Error> {
        let url = self.server_url(placement).await?;
        if placement.database.is_none() {
            return Ok(PoolLease::unclaimed(
                DbPool::Postgres(self.server_pool(url.as_ref(), access)?),
                self.pooler,
            ));
        }
        self.database_pool(placement, access, || {
            let database = placement.database.as_ref().map_or("", |d| d.as_str());
            Ok(DbPool::Postgres(
                PgPoolOptions::new()
                    .max_connections(self.budget.per_tenant)
                    .acquire_timeout(self.budget.wait)
                    .test_before_acquire(false)
                    .connect_lazy_with(
                        self.server_options(url.as_ref(), access)?
                            .database(database),
                    ),
            ))
        })
        .await
    }

    /// The owning role's pool on a registered server; the catalog's own for `None`.
    #[cfg(feature = "postgres")]
    pub(crate) async fn for_server(&self, server: Option<&DbServerName>) -> Result<PgPool, Error> {
        match server {
            None => Ok(self.catalog()?.clone()),
            Some(name) => {
                self.server_pool(Some(&self.db_servers()?.url(name).await?), Access::Owner)
            }
        }
    }

    #[cfg(feature = "postgres")]
    fn server_pool(&self, url: Option<&DbServerUrl>, access: Access) -> Result<PgPool, Error> {
        let catalog = self.postgres(PgOnly::Placement)?;
        let Some(url) = url else {
            return Ok(match access {
                Access::Owner => catalog.owner.clone(),
                Access::Tenant => catalog.app.clone(),
            });
        };
        let key = (access, url.expose().to_owned());
        if let Some(pool) = self.by_url.read().expect("pool map").get(&key) {
            return Ok(pool.clone());
        }
        let pool = catalog
            .owner
            .options()
            .clone()
            .connect_lazy_with(self.server_options(Some(url), access)?);
        let mut pools = self.by_url.write().expect("pool map");
        Ok(pools.entry(key).or_insert(pool).clone())
    }

    /// The connect options of a server (the catalog's for `None`) as `access` says.
    #[cfg(feature = "postgres")]
    fn server_options(
        &self,
        url: Option<&DbServerUrl>,
        access: Access,
    ) -> Result<PgConnectOptions, Error> {
        let owner = match url {
            Some(url) => self.pooler.connect_options(url.expose())?,
            None => self.catalog()?.connect_options().as_ref().clone(),
        };
        Ok(match access {
            Access::Owner => owner,
            Access::Tenant => self.role.options(&owner),
        })
    }

    /// The open pool of a tenant's own database, or a new one from `open` once the budget has
    /// room; `open` runs only then, so a request to an open pool does no setup work.
    pub(crate) async fn database_pool(
        &self,
        placement: &Placement,
        access: Access,
        open: impl Fn() -> Result<DbPool, Error>,
    ) -> Result<PoolLease, Error> {
        let key = self.key(placement, access).await?;
        let deadline = Instant::now() + self.budget.wait;
        loop {
            let victim = {
                let mut pools = self.databases.lock().expect("database pools");
                if let Some(open) = pools.open.get_mut(&key) {
                    return Ok(open.lease(self.pooler));
                }
                if pools.open.len() + pools.closing < self.budget.pools() {
                    let open = pools.open.entry(key).or_insert(TenantPool {
                        pool: open()?,
                        claim: Arc::new(()),
                        last_used: Instant::now(),
                    });
                    return Ok(open.lease(self.pooler));
                }
                let lru = pools
                    .open
                    .iter()
                    .filter(|(_, p)| p.idle())
                    .min_by_key(|(_, p)| p.last_used)
                    .map(|(k, _)| k.clone());
                lru.and_then(|k| pools.open.remove(&k))
                    .inspect(|_| pools.closing += 1)
            };
            match victim {
                Some(victim) => {
                    victim.pool.close().await;
                    self.databases.lock().expect("database pools").closing -= 1;
                }
                None if Instant::now() >= deadline => return Err(Error::Busy),
                None => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }

    /// Closes a tenant database's pools, if open, so the database can be dropped.
    pub(crate) async fn close_database(&self, placement: &Placement) -> Result<(), Error> {
        if placement.database.is_none() {
            return Ok(());
        }
        let mut keys = Vec::new();
        for access in [Access::Tenant, Access::Owner] {
            keys.push(self.key(placement, access).await?);
        }
        let open: Vec<TenantPool> = {
            let mut pools = self.databases.lock().expect("database pools");
            keys.iter().filter_map(|k| pools.open.remove(k)).collect()
        };
        for open in open {
            open.pool.close().await;
        }
        Ok(())
    }

    /// The key of a tenant database's pool: who it connects as, its server's URL (empty for
    /// the catalog's server, or a deployment with none) and the database.
    async fn key(&self, placement: &Placement, access: Access) -> Result<DatabaseKey, Error> {
        let url = self.server_url(placement).await?;
        let database = placement.database.clone().ok_or_else(|| {
            Error::CorruptCatalog("a tenant database's placement without a database".into())
        })?;
        Ok((
            access,
            url.map_or_else(String::new, |u| u.expose().to_owned()),
            database,
        ))
    }

    async fn server_url(&self, placement: &Placement) -> Result<Option<DbServerUrl>, Error> {
        Ok(match (&placement.server, &placement.server_url) {
            (None, _) => None,
            (Some(_), Some(url)) => Some(url.clone()),
            #[cfg(feature = "postgres")]
            (Some(name), None) => Some(self.db_servers()?.url(name).await?),
            #[cfg(not(feature = "postgres"))]
            (Some(_), None) => return Err(PgOnly::Placement.refused()),
        })
    }
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("role", &self.role)
            .field("pooler", &self.pooler)
            .field("budget", &self.budget)
            .field("open_databases", &self.open_databases())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PoolLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolLease")
            .field("backend", &self.pool.backend())
            .field("pooler", &self.pooler)
            .finish_non_exhaustive()
    }
}
