//! Shared isolation: the tenant's rows in tables every shared tenant uses (schema
//! `tenantry_shared` in the catalog's database), kept apart by Row-Level Security on
//! `tenant_id`. Creating a tenant builds nothing; deleting it deletes its rows.

use async_trait::async_trait;
use uuid::Uuid;

use super::postgres::{self, catalog_connection};
use super::{Cx, InCatalog, Layout, Tables, TxRoute};
use crate::catalog::CatalogTx;
use crate::db_server::DbServerName;
use crate::error::Error;
use crate::migrate::{Applied, shared_schema_state};
use crate::pools::Access;
use crate::rows;
use crate::slug::{SchemaName, Slug};
use crate::tenant::{Placement, Tenant};

pub(super) struct Shared;

#[async_trait]
impl Layout for Shared {
    fn place(
        &self,
        _: &Slug,
        _: Uuid,
        server: Option<&DbServerName>,
        _fresh: bool,
    ) -> Result<Placement, Error> {
        if server.is_some() {
            return Err(Error::Invalid {
                field: "server",
                message: "shared-mode tenants live in the catalog's database; servers hold \
                          schema and database tenants"
                    .into(),
            });
        }
        Ok(Placement {
            server: None,
            server_url: None,
            database: None,
            schema: SchemaName::shared(),
        })
    }

    fn tables(&self, _: &Placement) -> Tables<'_> {
        Tables::InCatalog(self)
    }

    fn describe(&self, tenant: &Tenant) -> String {
        format!(
            "its rows in the shared tables (schema \"{}\")",
            tenant.placement.schema
        )
    }

    /// The shared tables are migrated once for every shared tenant, by `migrate_shared`.
    async fn migrate(&self, cx: Cx<'_>, _: &Tenant, _keep: bool) -> Result<Applied, Error> {
        let mut tx = crate::safe_transaction::begin(cx.pools.catalog()?, None).await?;
        let applied = shared_schema_state(&mut tx, cx.migrations).await?;
        tx.rollback().await?;
        Ok(Applied {
            count: 0,
            ..applied
        })
    }

    async fn transaction(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        access: Access,
    ) -> Result<TxRoute, Error> {
        postgres::transaction(cx, tenant, access).await
    }
}

#[async_trait]
impl InCatalog for Shared {
    async fn provision(
        &self,
        cx: Cx<'_>,
        _: &Tenant,
        tx: &mut CatalogTx,
    ) -> Result<Applied, Error> {
        shared_schema_state(catalog_connection(tx)?, cx.migrations).await
    }

    async fn rename(
        &self,
        _: Cx<'_>,
        tenant: &Tenant,
        _: &Slug,
        _: &mut CatalogTx,
    ) -> Result<Placement, Error> {
        Ok(tenant.placement.clone())
    }

    async fn deprovision(
        &self,
        _: Cx<'_>,
        tenant: &Tenant,
        tx: &mut CatalogTx,
    ) -> Result<(), Error> {
        let schema = &tenant.placement.schema;
        rows::delete(catalog_connection(tx)?, schema, tenant.id).await
    }
}
