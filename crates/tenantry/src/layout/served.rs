//! A layout whose tenants have an app server of their own (dedicated isolation), over any
//! layout that keeps the data and says what URL reaches it: PostgreSQL's database with a
//! role of its own, or SQLite's file. The server is stopped before its data is renamed or
//! dropped, and requests are forwarded to it; both are the lifecycle's and the router's
//! work, through [`Layout::own_server`].

use async_trait::async_trait;
use uuid::Uuid;

use super::{Cx, Layout, OwnServer, Tables, TxRoute};
use crate::db_server::DbServerName;
use crate::error::Error;
use crate::migrate::Applied;
use crate::pools::Access;
use crate::slug::Slug;
use crate::tenant::{Placement, Tenant};

/// `L`'s tenants, each served by a server of its own started with `L`'s URL.
pub(crate) struct Served<L>(pub(crate) L);

#[async_trait]
impl<L: Layout + OwnServer> Layout for Served<L> {
    fn place(
        &self,
        slug: &Slug,
        id: Uuid,
        server: Option<&DbServerName>,
        fresh: bool,
    ) -> Result<Placement, Error> {
        self.0.place(slug, id, server, fresh)
    }

    fn tables(&self, placement: &Placement) -> Tables<'_> {
        self.0.tables(placement)
    }

    #[cfg(feature = "postgres")]
    async fn discard(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        self.0.discard(cx, tenant).await
    }

    fn own_server(&self) -> Option<&dyn OwnServer> {
        Some(&self.0)
    }

    fn describe(&self, tenant: &Tenant) -> String {
        format!("{} and its server", self.0.describe(tenant))
    }

    async fn size(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Option<i64>, Error> {
        self.0.size(cx, tenant).await
    }

    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error> {
        self.0.migrate(cx, tenant, keep).await
    }

    async fn transaction(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        access: Access,
    ) -> Result<TxRoute, Error> {
        self.0.transaction(cx, tenant, access).await
    }
}
