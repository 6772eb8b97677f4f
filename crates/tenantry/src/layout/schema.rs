//! Schema isolation: a PostgreSQL schema per tenant, named after its slug, on the catalog's
//! server or a registered one; each transaction sets its `search_path`.

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::postgres::{self, create_schema, drop_schema_sql, execute_at};
use super::{Cx, Layout, Route};
use crate::catalog::CatalogTx;
use crate::error::Error;
use crate::migrate::Applied;
use crate::pooler;
use crate::pools::Access;
use crate::safe_transaction;
use crate::servers::ServerName;
use crate::slug::Slug;
use crate::tenant::{Placement, Tenant};

pub(super) struct Schema;

#[async_trait]
impl Layout for Schema {
    fn place(
        &self,
        slug: &Slug,
        _: Uuid,
        server: Option<&ServerName>,
        _fresh: bool,
    ) -> Result<Placement, Error> {
        Ok(Placement {
            server: server.cloned(),
            server_url: None,
            database: None,
            schema: slug.schema_name(),
        })
    }

    fn in_catalog(&self, placement: &Placement) -> bool {
        placement.server.is_none()
    }

    async fn provision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: Option<&mut CatalogTx>,
    ) -> Result<Applied, Error> {
        if let Some(conn) = tx.and_then(CatalogTx::postgres) {
            return create_schema(cx, conn, tenant).await;
        }
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        cx.pools.role().ensure(&server).await?;
        let mut remote = safe_transaction::begin(&server, None).await?;
        let applied = create_schema(cx, &mut remote, tenant).await?;
        remote.commit().await?;
        Ok(applied)
    }

    async fn rename(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        to: &Slug,
        tx: Option<&mut CatalogTx>,
    ) -> Result<Placement, Error> {
        let renamed = Placement {
            schema: to.schema_name(),
            ..tenant.placement.clone()
        };
        let sql = AssertSqlSafe(format!(
            "ALTER SCHEMA {} RENAME TO {}",
            tenant.placement.schema.quoted(),
            renamed.schema.quoted()
        ));
        execute_at(cx, tenant, tx, sql).await.map_err(|e| match e {
            Error::Database(db)
                if crate::error::sqlstate(&db).as_deref()
                    == Some(crate::error::DUPLICATE_SCHEMA) =>
            {
                Error::ExistsOutsideCatalog(renamed.schema.to_string())
            }
            other => other,
        })?;
        Ok(renamed)
    }

    async fn deprovision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: Option<&mut CatalogTx>,
    ) -> Result<(), Error> {
        execute_at(cx, tenant, tx, drop_schema_sql(&tenant.placement.schema)).await
    }

    async fn discard(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        if self.in_catalog(&tenant.placement) {
            return Ok(());
        }
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        let mark: Option<Option<String>> = pooler::query_scalar(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1",
        )
        .bind(tenant.placement.schema.as_str())
        .fetch_optional(pooler::Pinned(&server))
        .await?;
        if mark.flatten() == Some(postgres::owner_mark(tenant)) {
            self.deprovision(cx, tenant, None).await?;
        }
        Ok(())
    }

    fn describe(&self, tenant: &Tenant) -> String {
        format!("schema \"{}\"{}", tenant.placement.schema, on(tenant))
    }

    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error> {
        postgres::migrate(cx, tenant, self.in_catalog(&tenant.placement), keep).await
    }

    async fn route(&self, cx: Cx<'_>, tenant: &Tenant, access: Access) -> Result<Route, Error> {
        postgres::route(cx, tenant, access).await
    }
}

/// " on server 'x'" for a tenant on a registered server.
pub(super) fn on(tenant: &Tenant) -> String {
    tenant
        .placement
        .server
        .as_ref()
        .map_or_else(String::new, |server| format!(" on server '{server}'"))
}
