//! The one commit protocol: a change to a tenant's tables and the catalog's rows that record
//! it, all or nothing, whichever layout keeps the tables ([`Tables`]).
//!
//! - Tables in the catalog's database change inside the catalog's transaction.
//! - Tables elsewhere that are built or renamed change on their own and are undone by the
//!   inverse change if the catalog's transaction then fails: before it opens (a build that
//!   needs a connection the open transaction could hold, or a move's target, whose names are
//!   fresh), or while it is open, once its rows have won the slug.
//! - Tables elsewhere that are dropped go after the catalog's commit, which no longer names
//!   them: a failure leaves tables to drop by hand, never a tenant without its data.
//!
//! A tenant with an app server of its own has it stopped before its data is renamed or
//! dropped.

use async_trait::async_trait;

use crate::catalog::CatalogTx;
use crate::error::Error;
use crate::layout::{Cx, InCatalog, Layout, Outside, Tables};
use crate::migrate::Applied;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{Placement, Tenant};

/// When a change to tables outside the catalog's database commits.
pub(crate) enum When {
    /// Before the catalog's transaction opens; undone if it fails.
    Before,
    /// While it is open, before it commits; undone if it fails.
    During,
    /// After it committed; never undone.
    After,
}

/// One change to a tenant's tables, as each kind of layout makes it.
#[async_trait]
pub(crate) trait Change: Send + Sync {
    /// What the change did, for the catalog's record.
    type Done: Send + Sync;
    /// Whether the tenant's own server is stopped first.
    #[cfg(feature = "dedicated")]
    const STOPS_SERVER: bool;

    fn tenant(&self) -> &Tenant;
    fn when(&self, tables: &dyn Outside) -> When;
    async fn in_catalog(
        &self,
        cx: Cx<'_>,
        tables: &dyn InCatalog,
        tx: &mut CatalogTx,
    ) -> Result<Self::Done, Error>;
    async fn outside(&self, cx: Cx<'_>, tables: &dyn Outside) -> Result<Self::Done, Error>;
    /// Undoes an [`outside`](Self::outside) change whose catalog record failed.
    async fn undo(&self, cx: Cx<'_>, tables: &dyn Outside, done: &Self::Done) -> Result<(), Error>;
}

/// Builds the tenant's tables at the newest tenant migration.
pub(crate) struct Provision<'a> {
    pub(crate) tenant: &'a Tenant,
    /// For a move's target: its names are fresh, so it is built before the catalog's
    /// transaction opens.
    pub(crate) fresh: bool,
    /// Whether a failed record drops what was built (not after a simulated crash).
    pub(crate) undo: bool,
}

#[async_trait]
impl Change for Provision<'_> {
    type Done = Applied;
    #[cfg(feature = "dedicated")]
    const STOPS_SERVER: bool = false;

    fn tenant(&self) -> &Tenant {
        self.tenant
    }

    fn when(&self, tables: &dyn Outside) -> When {
        match self.fresh || tables.provision_first() {
            true => When::Before,
            false => When::During,
        }
    }

    async fn in_catalog(
        &self,
        cx: Cx<'_>,
        tables: &dyn InCatalog,
        tx: &mut CatalogTx,
    ) -> Result<Applied, Error> {
        tables.provision(cx, self.tenant, tx).await
    }

    async fn outside(&self, cx: Cx<'_>, tables: &dyn Outside) -> Result<Applied, Error> {
        tables.provision(cx, self.tenant).await
    }

    async fn undo(&self, cx: Cx<'_>, tables: &dyn Outside, _: &Applied) -> Result<(), Error> {
        match self.undo {
            true => tables.deprovision(cx, self.tenant).await,
            false => Ok(()),
        }
    }
}

/// Renames what carries the tenant's slug to `to`.
pub(crate) struct Rename<'a> {
    pub(crate) tenant: &'a Tenant,
    pub(crate) to: &'a Slug,
}

#[async_trait]
impl Change for Rename<'_> {
    type Done = Placement;
    #[cfg(feature = "dedicated")]
    const STOPS_SERVER: bool = true;

    fn tenant(&self) -> &Tenant {
        self.tenant
    }

    fn when(&self, _: &dyn Outside) -> When {
        When::During
    }

    async fn in_catalog(
        &self,
        cx: Cx<'_>,
        tables: &dyn InCatalog,
        tx: &mut CatalogTx,
    ) -> Result<Placement, Error> {
        tables.rename(cx, self.tenant, self.to, tx).await
    }

    async fn outside(&self, cx: Cx<'_>, tables: &dyn Outside) -> Result<Placement, Error> {
        tables.rename(cx, self.tenant, self.to).await
    }

    async fn undo(
        &self,
        cx: Cx<'_>,
        tables: &dyn Outside,
        placement: &Placement,
    ) -> Result<(), Error> {
        let renamed = Tenant {
            slug: self.to.clone(),
            placement: placement.clone(),
            ..self.tenant.clone()
        };
        tables
            .rename(cx, &renamed, &self.tenant.slug)
            .await
            .map(drop)
    }
}

/// Drops the tenant's tables (a shared tenant's rows).
pub(crate) struct Deprovision<'a> {
    pub(crate) tenant: &'a Tenant,
}

#[async_trait]
impl Change for Deprovision<'_> {
    type Done = ();
    #[cfg(feature = "dedicated")]
    const STOPS_SERVER: bool = true;

    fn tenant(&self) -> &Tenant {
        self.tenant
    }

    fn when(&self, _: &dyn Outside) -> When {
        When::After
    }

    async fn in_catalog(
        &self,
        cx: Cx<'_>,
        tables: &dyn InCatalog,
        tx: &mut CatalogTx,
    ) -> Result<(), Error> {
        tables.deprovision(cx, self.tenant, tx).await
    }

    async fn outside(&self, cx: Cx<'_>, tables: &dyn Outside) -> Result<(), Error> {
        tables.deprovision(cx, self.tenant).await
    }

    async fn undo(&self, _: Cx<'_>, _: &dyn Outside, _: &()) -> Result<(), Error> {
        Ok(())
    }
}

impl Tenancy {
    /// Makes `change` to the tables `layout` keeps and commits it with the catalog's
    /// transaction that `open` opens (having written the rows it needs first) and `record`
    /// completes with what the change did, as the module documentation says. A change made
    /// after the catalog's commit has nothing to record: `open` is the catalog's whole part.
    pub(crate) async fn commit<C: Change>(
        &self,
        layout: &dyn Layout,
        change: C,
        open: impl AsyncFnOnce() -> Result<CatalogTx, Error>,
        record: impl AsyncFnOnce(&mut CatalogTx, &C::Done) -> Result<(), Error>,
    ) -> Result<C::Done, Error> {
        let (cx, tenant) = (self.cx(), change.tenant());
        #[cfg(feature = "dedicated")]
        if C::STOPS_SERVER && layout.own_server().is_some() {
            self.stop_instance(tenant).await?;
        }
        let tables = match layout.tables(&tenant.placement) {
            Tables::InCatalog(tables) => {
                let mut tx = open().await?;
                let done = change.in_catalog(cx, tables, &mut tx).await?;
                record(&mut tx, &done).await?;
                tx.commit().await?;
                return Ok(done);
            }
            Tables::Outside(tables) => tables,
        };
        let (done, recorded) = match change.when(tables) {
            When::Before => {
                let done = change.outside(cx, tables).await?;
                let recorded = async {
                    let mut tx = open().await?;
                    record(&mut tx, &done).await?;
                    tx.commit().await
                };
                let recorded = recorded.await;
                (done, recorded)
            }
            When::During => {
                let mut tx = open().await?;
                let done = change.outside(cx, tables).await?;
                let recorded = async {
                    record(&mut tx, &done).await?;
                    tx.commit().await
                };
                let recorded = recorded.await;
                (done, recorded)
            }
            When::After => {
                open().await?.commit().await?;
                self.catalog().invalidate();
                let done = change
                    .outside(cx, tables)
                    .await
                    .map_err(|e| leftover(tenant, &layout.describe(tenant), e))?;
                return Ok(done);
            }
        };
        if let Err(error) = recorded {
            change.undo(cx, tables, &done).await?;
            return Err(error);
        }
        Ok(done)
    }
}

impl Tenancy {
    /// Drops tables the catalog no longer points at (a moved tenant's old ones), in a
    /// transaction of their own; the tenant's own server is stopped first.
    #[cfg(feature = "postgres")]
    pub(crate) async fn drop_tables(
        &self,
        layout: &dyn Layout,
        tenant: &Tenant,
    ) -> Result<(), Error> {
        #[cfg(feature = "dedicated")]
        if layout.own_server().is_some() {
            self.stop_instance(tenant).await?;
        }
        match layout.tables(&tenant.placement) {
            Tables::InCatalog(tables) => {
                let mut tx = self.catalog().begin().await?;
                tables.deprovision(self.cx(), tenant, &mut tx).await?;
                tx.commit().await
            }
            Tables::Outside(tables) => tables.deprovision(self.cx(), tenant).await,
        }
    }
}

fn leftover(tenant: &Tenant, what: &str, error: Error) -> Error {
    Error::Unfinished {
        done: format!("tenant '{}' is deleted", tenant.slug),
        left: format!("its {what} could not be dropped"),
        remedy: "drop it by hand",
        source: Box::new(error),
    }
}
