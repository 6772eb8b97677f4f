//! Isolation layouts: where a tenant's tables are, and how they are made, renamed, dropped,
//! migrated and reached. Each layout is one [`Layout`] in a file of its own; [`Layouts::of`]
//! is the one place that picks a layout from the isolation mode and the engine.
//!
//! A layout whose tables are in the catalog's own database does its work inside the catalog's
//! transaction, so a change and its catalog row commit together. Any other layout commits its
//! side first (the lifecycle opens the catalog's transaction only afterwards, so no operation
//! holds one connection of a pool while it waits for another) and is undone by the inverse
//! call if the catalog then fails.

mod database;
mod dedicated;
mod postgres;
mod schema;
mod shared;
mod sqlite_dedicated;
mod sqlite_file;
pub(crate) mod supervisor;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::catalog::{CatalogTx, TenantCatalog};
use crate::error::{Error, needs_postgres};
use crate::migrate::{Applied, Migrations};
use crate::pools::{Access, PoolLease, Pools};
use crate::servers::ServerName;
use crate::slug::Slug;
use crate::tenant::{IsolationMode, Placement, Tenant};

#[cfg(feature = "testing")]
pub(crate) use dedicated::role_name_of;
pub(crate) use dedicated::{new_password, own_database_of, role_name, set_password};
pub(crate) use postgres::begin_in;
use sqlite_dedicated::SqliteDedicated;
pub(crate) use sqlite_file::SqliteFiles;
pub(crate) use supervisor::Supervisor;

/// What a layout works with.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub(crate) catalog: &'a TenantCatalog,
    pub(crate) pools: &'a Pools,
    pub(crate) migrations: &'a Migrations,
    /// The dedicated tenants' servers, in a process that serves requests.
    pub(crate) servers: Option<&'a Arc<Supervisor>>,
}

/// How a request or job reaches a tenant.
pub(crate) enum Route {
    /// A transaction on `pool`, opened with `begin` (a statement tenantry built).
    Transaction { pool: PoolLease, begin: Arc<str> },
    /// Forwarded to the tenant's own server at this address.
    Forward(std::net::SocketAddr),
}

impl Route {
    /// The pool and begin statement of a transaction route; what needs a transaction (a
    /// migration, a move, a job) asks for one.
    pub(crate) fn transaction(self) -> Result<(PoolLease, Arc<str>), Error> {
        match self {
            Self::Transaction { pool, begin } => Ok((pool, begin)),
            Self::Forward(_) => Err(Error::Incomplete(
                "the tenant's requests go to its own server; ask for a transaction".into(),
            )),
        }
    }
}

/// One way of keeping a tenant's tables apart from other tenants'.
#[async_trait]
pub(crate) trait Layout: Send + Sync {
    /// Where a tenant's tables go. `fresh` asks for names no existing database has, for a
    /// move's target: the tenant's usual names may be in use by its live data.
    fn place(
        &self,
        slug: &Slug,
        id: Uuid,
        server: Option<&ServerName>,
        fresh: bool,
    ) -> Result<Placement, Error>;

    /// Whether the tables are in the catalog's own database: then they are made, renamed and
    /// dropped in the catalog's transaction, passed as `tx`.
    fn in_catalog(&self, placement: &Placement) -> bool;

    /// Builds the tenant's tables at the newest tenant migration, in `tx` when
    /// [`in_catalog`](Self::in_catalog), otherwise committed on their own
    /// ([`deprovision`](Self::deprovision) undoes it). Never touches what exists already:
    /// a name in use is [`Error::ExistsOutsideCatalog`].
    async fn provision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: Option<&mut CatalogTx>,
    ) -> Result<Applied, Error>;

    /// Whether [`provision`](Self::provision), outside the catalog's database, runs before
    /// the catalog's transaction opens: for a layout that needs a connection of the catalog's
    /// own pool (or pooler), which the open transaction could leave it waiting for forever.
    /// Its names must then be the tenant's own (from its id), since the catalog has not yet
    /// settled who has the slug. Otherwise it runs once the catalog row has won the slug.
    fn provision_before_catalog(&self) -> bool {
        false
    }

    /// Renames what carries the slug and returns the placement under `to`: in `tx` when
    /// [`in_catalog`](Self::in_catalog), otherwise committed (renaming back undoes it).
    async fn rename(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        to: &Slug,
        tx: Option<&mut CatalogTx>,
    ) -> Result<Placement, Error>;

    /// Drops the tenant's tables or rows, in `tx` if given, otherwise on their own.
    async fn deprovision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: Option<&mut CatalogTx>,
    ) -> Result<(), Error>;

    /// Drops what an interrupted move left of `tenant` at its placement (which the catalog
    /// never pointed at), if it is marked as made for this tenant; nothing else.
    async fn discard(&self, _: Cx<'_>, _: &Tenant) -> Result<(), Error> {
        // Built in the catalog's transaction: an interrupted move left nothing.
        Ok(())
    }

    /// Whether the tenant's requests are served by a server of its own.
    fn own_server(&self) -> bool {
        false
    }

    /// The database URL the tenant's own server is started with: its data and nothing
    /// else, with credentials made for this start. Only for [`own_server`](Self::own_server)
    /// layouts.
    async fn server_url(&self, _: Cx<'_>, tenant: &Tenant) -> Result<String, Error> {
        Err(Error::Incomplete(format!(
            "tenant '{}' has no server of its own",
            tenant.slug
        )))
    }

    /// What [`deprovision`](Self::deprovision) drops, for a person to confirm.
    fn describe(&self, tenant: &Tenant) -> String;

    /// Applies the tenant's pending migrations and records them in the catalog; with
    /// `keep` false, applies them in a transaction that is rolled back, to check them.
    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error>;

    /// How to reach the tenant as `access` says.
    async fn route(&self, cx: Cx<'_>, tenant: &Tenant, access: Access) -> Result<Route, Error>;
}

/// The layouts of one deployment.
pub(crate) enum Layouts {
    /// PostgreSQL: shared, schema, database and dedicated isolation.
    Postgres,
    /// SQLite: a file per tenant, served in process or by a server of its own.
    Sqlite {
        files: SqliteFiles,
        dedicated: SqliteDedicated,
    },
}

impl Layouts {
    /// The layouts of a SQLite deployment under `data`.
    pub(crate) fn sqlite(data: &Path) -> Result<Self, Error> {
        let files = SqliteFiles::open(data)?;
        Ok(Self::Sqlite {
            dedicated: SqliteDedicated(files.clone()),
            files,
        })
    }

    /// The isolation of tenants created without naming one, unless configured: the only
    /// one SQLite has.
    pub(crate) fn default_mode(&self) -> IsolationMode {
        match self {
            Self::Postgres => IsolationMode::default(),
            Self::Sqlite { .. } => IsolationMode::Database,
        }
    }

    /// The layout that keeps tenants of `mode`: the one place a mode and an engine choose
    /// code.
    pub(crate) fn of(&self, mode: IsolationMode) -> Result<&dyn Layout, Error> {
        match (self, mode) {
            (Self::Postgres, IsolationMode::Shared) => Ok(&shared::Shared),
            (Self::Postgres, IsolationMode::Schema) => Ok(&schema::Schema),
            (Self::Postgres, IsolationMode::Database) => Ok(&database::Database),
            (Self::Postgres, IsolationMode::Dedicated) => Ok(&dedicated::Dedicated),
            (Self::Sqlite { files, .. }, IsolationMode::Database) => Ok(files),
            (Self::Sqlite { dedicated, .. }, IsolationMode::Dedicated) => Ok(dedicated),
            (Self::Sqlite { .. }, mode) => Err(needs_postgres(
                "isolation",
                &format!("{} isolation", mode.as_str()),
            )),
        }
    }
}
