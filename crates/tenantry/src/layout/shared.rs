//! Shared isolation: the tenant's rows in tables every shared tenant uses (schema
//! `tenantry_shared` in the catalog's database), kept apart by Row-Level Security on
//! `tenant_id`. Creating a tenant builds nothing; deleting it deletes its rows.

use async_trait::async_trait;
use uuid::Uuid;

use super::postgres::{self, begin_in};
use super::{Cx, Layout, Route};
use crate::catalog::CatalogTx;
use crate::error::Error;
use crate::migrate::{Applied, shared_schema_state};
use crate::pools::Access;
use crate::rows;
use crate::servers::ServerName;
use crate::slug::{SchemaName, Slug};
use crate::tenant::{Placement, Tenant};

pub(super) struct Shared;

#[async_trait]
impl Layout for Shared {
    fn place(
        &self,
        _: &Slug,
        _: Uuid,
        server: Option<&ServerName>,
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

    fn in_catalog(&self, _: &Placement) -> bool {
        true
    }

    async fn provision(
        &self,
        cx: Cx<'_>,
        _: &Tenant,
        tx: Option<&mut CatalogTx>,
    ) -> Result<Applied, Error> {
        shared_schema_state(in_catalog(tx)?, cx.migrations).await
    }

    async fn rename(
        &self,
        _: Cx<'_>,
        tenant: &Tenant,
        _: &Slug,
        _: Option<&mut CatalogTx>,
    ) -> Result<Placement, Error> {
        Ok(tenant.placement.clone())
    }

    async fn deprovision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: Option<&mut CatalogTx>,
    ) -> Result<(), Error> {
        let schema = &tenant.placement.schema;
        if let Some(conn) = tx.and_then(CatalogTx::postgres) {
            return rows::delete(conn, schema, tenant.id).await;
        }
        let mut own = begin_in(cx.pools.catalog()?, schema).await?;
        rows::delete(&mut own, schema, tenant.id).await?;
        Ok(own.commit().await?)
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

    async fn route(&self, cx: Cx<'_>, tenant: &Tenant, access: Access) -> Result<Route, Error> {
        postgres::route(cx, tenant, access).await
    }
}

fn in_catalog(tx: Option<&mut CatalogTx>) -> Result<&mut sqlx::PgConnection, Error> {
    tx.and_then(CatalogTx::postgres).ok_or_else(|| {
        Error::Incomplete("shared tenants are made in the catalog's transaction".into())
    })
}
