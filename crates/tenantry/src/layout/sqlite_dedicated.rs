//! Dedicated isolation in a SQLite deployment: the tenant's file, kept as the file layout
//! keeps it, served by a server process of its own that is given that file's path and
//! nothing else. SQLite has no roles: the process boundary and the one path it is given
//! keep it to its data, not a credential the database checks.

use async_trait::async_trait;
use uuid::Uuid;

use super::supervisor::stop_everywhere;
use super::{Cx, Layout, Route, SqliteFiles};
use crate::catalog::CatalogTx;
use crate::error::Error;
use crate::migrate::Applied;
use crate::pools::Access;
use crate::servers::ServerName;
use crate::slug::Slug;
use crate::tenant::{Placement, Tenant};

pub(crate) struct SqliteDedicated(pub(crate) SqliteFiles);

#[async_trait]
impl Layout for SqliteDedicated {
    fn place(
        &self,
        slug: &Slug,
        id: Uuid,
        server: Option<&ServerName>,
        fresh: bool,
    ) -> Result<Placement, Error> {
        self.0.place(slug, id, server, fresh)
    }

    fn in_catalog(&self, placement: &Placement) -> bool {
        self.0.in_catalog(placement)
    }

    async fn provision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: Option<&mut CatalogTx>,
    ) -> Result<Applied, Error> {
        self.0.provision(cx, tenant, tx).await
    }

    /// The file is renamed under its server, which is stopped first.
    async fn rename(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        to: &Slug,
        tx: Option<&mut CatalogTx>,
    ) -> Result<Placement, Error> {
        stop_everywhere(cx, tenant).await?;
        self.0.rename(cx, tenant, to, tx).await
    }

    async fn deprovision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: Option<&mut CatalogTx>,
    ) -> Result<(), Error> {
        stop_everywhere(cx, tenant).await?;
        self.0.deprovision(cx, tenant, tx).await
    }

    async fn discard(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        self.0.discard(cx, tenant).await
    }

    fn own_server(&self) -> bool {
        true
    }

    fn describe(&self, tenant: &Tenant) -> String {
        format!("{} and its server", self.0.describe(tenant))
    }

    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error> {
        self.0.migrate(cx, tenant, keep).await
    }

    async fn server_url(&self, _: Cx<'_>, tenant: &Tenant) -> Result<String, Error> {
        let file = self.0.file_of(tenant)?;
        let file = std::path::absolute(&file)
            .map_err(|e| Error::Io(format!("{}: {e}", file.display())))?;
        Ok(format!("sqlite://{}", file.display()))
    }

    async fn route(&self, cx: Cx<'_>, tenant: &Tenant, access: Access) -> Result<Route, Error> {
        if access == Access::Tenant
            && let Some(servers) = cx.servers
        {
            return Ok(Route::Forward(servers.address(cx, tenant, self).await?));
        }
        self.0.route(cx, tenant, access).await
    }
}
