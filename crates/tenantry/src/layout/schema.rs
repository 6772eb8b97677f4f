//! Schema isolation: a PostgreSQL schema per tenant, named after its slug, on the catalog's
//! server or a registered one; each transaction sets its `search_path`.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Executor};
use uuid::Uuid;

use super::postgres::{self, catalog_connection, create_schema, drop_schema_sql};
use super::{Cx, InCatalog, Layout, Outside, Tables, TxRoute};
use crate::catalog::CatalogTx;
use crate::db_server::DbServerName;
use crate::error::Error;
use crate::migrate::Applied;
use crate::pooler;
use crate::pools::Access;
use crate::safe_transaction;
use crate::slug::Slug;
use crate::tenant::{Placement, Tenant};

pub(super) struct Schema;

#[async_trait]
impl Layout for Schema {
    fn place(
        &self,
        slug: &Slug,
        _: Uuid,
        server: Option<&DbServerName>,
        _fresh: bool,
    ) -> Result<Placement, Error> {
        Ok(Placement {
            server: server.cloned(),
            server_url: None,
            database: None,
            schema: slug.schema_name(),
        })
    }

    fn tables(&self, placement: &Placement) -> Tables<'_> {
        match placement.server {
            None => Tables::InCatalog(self),
            Some(_) => Tables::Outside(self),
        }
    }

    async fn discard(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        if tenant.placement.server.is_none() {
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
            Outside::deprovision(self, cx, tenant).await?;
        }
        Ok(())
    }

    fn describe(&self, tenant: &Tenant) -> String {
        format!("schema \"{}\"{}", tenant.placement.schema, on(tenant))
    }

    async fn size(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Option<i64>, Error> {
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        Ok(pooler::query_scalar(
            "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'p')",
        )
        .bind(tenant.placement.schema.as_str())
        .fetch_one(pooler::Pinned(&server))
        .await?)
    }

    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error> {
        postgres::migrate(cx, tenant, tenant.placement.server.is_none(), keep).await
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
impl InCatalog for Schema {
    async fn provision(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        tx: &mut CatalogTx,
    ) -> Result<Applied, Error> {
        create_schema(cx, catalog_connection(tx)?, tenant).await
    }

    async fn rename(
        &self,
        _: Cx<'_>,
        tenant: &Tenant,
        to: &Slug,
        tx: &mut CatalogTx,
    ) -> Result<Placement, Error> {
        let (renamed, sql) = rename_sql(tenant, to);
        catalog_connection(tx)?
            .execute(sql)
            .await
            .map_err(|e| taken(e, &renamed))?;
        Ok(renamed)
    }

    async fn deprovision(
        &self,
        _: Cx<'_>,
        tenant: &Tenant,
        tx: &mut CatalogTx,
    ) -> Result<(), Error> {
        let sql = drop_schema_sql(&tenant.placement.schema);
        catalog_connection(tx)?.execute(sql).await?;
        Ok(())
    }
}

/// A schema on a registered server.
#[async_trait]
impl Outside for Schema {
    async fn provision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Applied, Error> {
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

    async fn rename(&self, cx: Cx<'_>, tenant: &Tenant, to: &Slug) -> Result<Placement, Error> {
        let (renamed, sql) = rename_sql(tenant, to);
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        server.execute(sql).await.map_err(|e| taken(e, &renamed))?;
        Ok(renamed)
    }

    async fn deprovision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        server
            .execute(drop_schema_sql(&tenant.placement.schema))
            .await?;
        Ok(())
    }
}

/// The placement under `to` and the statement that renames the schema to it.
fn rename_sql(tenant: &Tenant, to: &Slug) -> (Placement, AssertSqlSafe<String>) {
    let renamed = Placement {
        schema: to.schema_name(),
        ..tenant.placement.clone()
    };
    let sql = AssertSqlSafe(format!(
        "ALTER SCHEMA {} RENAME TO {}",
        tenant.placement.schema.quoted(),
        renamed.schema.quoted()
    ));
    (renamed, sql)
}

/// A schema name taken by something the catalog does not know is
/// [`Error::ExistsOutsideCatalog`].
fn taken(error: sqlx::Error, renamed: &Placement) -> Error {
    match crate::error::sqlstate(&error).as_deref() {
        Some(crate::error::DUPLICATE_SCHEMA) => {
            Error::ExistsOutsideCatalog(renamed.schema.to_string())
        }
        _ => Error::Database(error),
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
