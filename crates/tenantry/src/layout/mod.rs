//! Isolation layouts: where a tenant's tables are, and how they are made, renamed, dropped,
//! migrated and reached. Each layout is one [`Layout`] in a file of its own; [`Layouts::of`]
//! is the one place that picks a layout from the isolation mode and the engine.
//!
//! Where a layout keeps the tables ([`Tables`]) is a type: tables in the catalog's own
//! database ([`InCatalog`]) change inside the catalog's transaction, so a change and its
//! catalog row commit together; tables elsewhere ([`Outside`]) change on their own and are
//! undone by the inverse change if the catalog's transaction then fails. A layout with an app
//! server of its own answers [`Layout::own_server`]; `served.rs` makes one of any layout.

#[cfg(feature = "postgres")]
mod database;
#[cfg(all(feature = "postgres", feature = "dedicated"))]
mod database_role;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod schema;
#[cfg(feature = "dedicated")]
mod served;
#[cfg(feature = "postgres")]
mod shared;
#[cfg(feature = "sqlite")]
mod sqlite_file;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::catalog::{CatalogTx, TenantCatalog};
use crate::db_server::DbServerName;
use crate::error::Error;
#[cfg(feature = "sqlite")]
use crate::error::PgOnly;
use crate::migrate::{Applied, Migrations};
use crate::pools::{Access, PoolLease, Pools};
use crate::slug::Slug;
use crate::tenant::{IsolationMode, Placement, Tenant};

#[cfg(all(feature = "postgres", feature = "dedicated"))]
use database_role::DatabaseWithRole;
#[cfg(feature = "testing")]
pub(crate) use database_role::role_name_of;
#[cfg(feature = "deploy")]
pub(crate) use database_role::{new_password, own_database_of, role_name, set_password};
#[cfg(feature = "postgres")]
pub(crate) use postgres::begin_in;
#[cfg(feature = "dedicated")]
use served::Served;
#[cfg(feature = "sqlite")]
pub(crate) use sqlite_file::SqliteFiles;

/// What a layout works with.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub(crate) catalog: &'a TenantCatalog,
    pub(crate) pools: &'a Pools,
    pub(crate) migrations: &'a Migrations,
}

/// A transaction's way to a tenant's tables: `pool`, opened with `begin` (a statement
/// tenantry built).
pub(crate) struct TxRoute {
    pub(crate) pool: PoolLease,
    pub(crate) begin: Arc<str>,
}

/// How a request reaches a tenant.
pub(crate) enum Route {
    /// A transaction on its tables.
    Transaction(TxRoute),
    /// Forwarded to the tenant's own server at this address.
    #[cfg(feature = "dedicated")]
    Forward(std::net::SocketAddr),
}

/// Where a layout keeps a tenant's tables, which decides how a change to them commits with
/// the catalog's rows (`lifecycle/commit.rs` is the one place that acts on it).
#[derive(Clone, Copy)]
pub(crate) enum Tables<'a> {
    /// In the catalog's own database: changed in the catalog's transaction.
    #[cfg_attr(not(feature = "postgres"), expect(dead_code))]
    InCatalog(&'a dyn InCatalog),
    /// Elsewhere: each change commits on its own and is undone by its inverse if the
    /// catalog's transaction then fails.
    Outside(&'a dyn Outside),
}

/// A layout's changes to tables in the catalog's own database, made in its transaction.
#[async_trait]
pub(crate) trait InCatalog: Send + Sync {
    /// Builds the tenant's tables at the newest tenant migration. Never touches what exists
    /// already: a name in use is [`Error::ExistsOutsideCatalog`].
    async fn provision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: &mut CatalogTx,
    ) -> Result<Applied, Error>;

    /// Renames what carries the slug; returns the placement under `to`.
    async fn rename(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        to: &Slug,
        tx: &mut CatalogTx,
    ) -> Result<Placement, Error>;

    /// Drops the tenant's tables or rows.
    async fn deprovision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: &mut CatalogTx,
    ) -> Result<(), Error>;
}

/// A layout's changes to tables outside the catalog's database, each committed on its own.
#[async_trait]
pub(crate) trait Outside: Send + Sync {
    /// Whether provisioning runs before the catalog's transaction opens: for a layout that
    /// needs a connection of the catalog's own pool (or pooler), which the open transaction
    /// could leave it waiting for forever. Its names must then be the tenant's own (from its
    /// id), since the catalog has not yet settled who has the slug. Otherwise it runs once
    /// the catalog's row has won the slug.
    fn provision_first(&self) -> bool {
        false
    }

    /// Builds the tenant's tables at the newest tenant migration; undone by
    /// [`deprovision`](Self::deprovision). Never touches what exists already: a name in use
    /// is [`Error::ExistsOutsideCatalog`].
    async fn provision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Applied, Error>;

    /// Renames what carries the slug and returns the placement under `to` (renaming back
    /// undoes it).
    async fn rename(&self, cx: Cx<'_>, tenant: &Tenant, to: &Slug) -> Result<Placement, Error>;

    /// Drops the tenant's tables.
    async fn deprovision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error>;
}

/// A layout whose tenants' requests are served by an app server of their own.
#[cfg(feature = "dedicated")]
#[async_trait]
pub(crate) trait OwnServer: Send + Sync {
    /// The database URL the tenant's own server is started with: its data and nothing
    /// else, with credentials made for this start.
    async fn server_url(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<String, Error>;
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
        server: Option<&DbServerName>,
        fresh: bool,
    ) -> Result<Placement, Error>;

    /// Where the tables at `placement` are, and so how they are made, renamed and dropped.
    fn tables(&self, placement: &Placement) -> Tables<'_>;

    /// Drops what an interrupted move left of `tenant` at its placement (which the catalog
    /// never pointed at), if it is marked as made for this tenant; nothing else.
    #[cfg(feature = "postgres")]
    async fn discard(&self, _: Cx<'_>, _: &Tenant) -> Result<(), Error> {
        // Built in the catalog's transaction: an interrupted move left nothing.
        Ok(())
    }

    /// The tenant's own app server, for a layout that gives it one.
    #[cfg(feature = "dedicated")]
    fn own_server(&self) -> Option<&dyn OwnServer> {
        None
    }

    /// What deprovisioning drops, for a person to confirm.
    fn describe(&self, tenant: &Tenant) -> String;

    /// The bytes the tenant's own tables take (with their indexes), where they are its
    /// alone; `None` where its rows sit among other tenants'.
    async fn size(&self, _: Cx<'_>, _: &Tenant) -> Result<Option<i64>, Error> {
        Ok(None)
    }

    /// Applies the tenant's pending migrations and records them in the catalog; with
    /// `keep` false, applies them in a transaction that is rolled back, to check them.
    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error>;

    /// A transaction's way to the tenant's tables as `access` says, even for a tenant whose
    /// requests go to its own server.
    async fn transaction(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        access: Access,
    ) -> Result<TxRoute, Error>;
}

/// The layouts of one deployment.
pub(crate) enum Layouts {
    /// PostgreSQL: shared, schema, database and dedicated isolation.
    #[cfg(feature = "postgres")]
    Postgres,
    /// SQLite: a file per tenant, served in process or by a server of its own.
    #[cfg(feature = "sqlite")]
    Sqlite {
        files: SqliteFiles,
        #[cfg(feature = "dedicated")]
        dedicated: Served<SqliteFiles>,
    },
}

impl Layouts {
    /// The layouts of a SQLite deployment under `data`.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite(data: &std::path::Path) -> Result<Self, Error> {
        let files = SqliteFiles::open(data)?;
        Ok(Self::Sqlite {
            #[cfg(feature = "dedicated")]
            dedicated: Served(files.clone()),
            files,
        })
    }

    /// The modes a SQLite deployment has, which [`of`](Self::of) gives layouts for.
    pub(crate) const SQLITE_MODES: &[IsolationMode] =
        &[IsolationMode::Database, IsolationMode::Dedicated];

    /// The layout that keeps tenants of `mode`: the one place a mode and an engine choose
    /// code.
    pub(crate) fn of(&self, mode: IsolationMode) -> Result<&dyn Layout, Error> {
        match (self, mode) {
            #[cfg(feature = "postgres")]
            (Self::Postgres, IsolationMode::Shared) => Ok(&shared::Shared),
            #[cfg(feature = "postgres")]
            (Self::Postgres, IsolationMode::Schema) => Ok(&schema::Schema),
            #[cfg(feature = "postgres")]
            (Self::Postgres, IsolationMode::Database) => Ok(&database::Database),
            #[cfg(all(feature = "postgres", feature = "dedicated"))]
            (Self::Postgres, IsolationMode::Dedicated) => Ok(&Served(DatabaseWithRole)),
            #[cfg(feature = "sqlite")]
            (Self::Sqlite { files, .. }, IsolationMode::Database) => Ok(files),
            #[cfg(all(feature = "sqlite", feature = "dedicated"))]
            (Self::Sqlite { dedicated, .. }, IsolationMode::Dedicated) => Ok(dedicated),
            #[cfg(not(feature = "dedicated"))]
            (_, IsolationMode::Dedicated) => Err(Error::Invalid {
                field: "isolation",
                message: "dedicated isolation needs tenantry's `dedicated` feature, which this \
                          build leaves out"
                    .into(),
            }),
            #[cfg(feature = "sqlite")]
            (Self::Sqlite { .. }, mode) => Err(PgOnly::Isolation(mode.as_str()).refused()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_deployment_has_a_layout_for_exactly_its_modes() {
        let data = tempfile::tempdir().unwrap();
        let layouts = Layouts::sqlite(data.path()).unwrap();
        for mode in [
            IsolationMode::Shared,
            IsolationMode::Schema,
            IsolationMode::Database,
            IsolationMode::Dedicated,
        ] {
            let has = Layouts::SQLITE_MODES.contains(&mode);
            assert_eq!(layouts.of(mode).is_ok(), has, "{mode:?}");
        }
    }
}
