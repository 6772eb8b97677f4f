//! Database isolation on PostgreSQL: a database per tenant, copied from the template (kept at
//! the newest tenant migration), on the catalog's server or a registered one. Its tables are
//! in schema `tenant`, so the begin statement and migrations are the schema layout's.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Executor};
use uuid::Uuid;

use super::postgres::{self, owner_mark};
use super::schema::on;
use super::{Cx, Layout, Outside, Tables, TxRoute};
use crate::db_server::DbServerName;
use crate::error::{DUPLICATE_DATABASE, Error, sqlstate};
use crate::migrate::template::{drop_database, ensure_template};
use crate::migrate::{Applied, applied};
use crate::pooler;
use crate::pools::Access;
use crate::slug::{DatabaseName, SchemaName, Slug};
use crate::tenant::{Placement, Tenant};

pub(super) struct Database;

#[async_trait]
impl Layout for Database {
    fn place(
        &self,
        slug: &Slug,
        id: Uuid,
        server: Option<&DbServerName>,
        fresh: bool,
    ) -> Result<Placement, Error> {
        Ok(Placement {
            server: server.cloned(),
            server_url: None,
            database: Some(match fresh {
                true => DatabaseName::for_move(slug, id),
                false => DatabaseName::for_tenant(slug, id),
            }),
            schema: SchemaName::own_database(),
        })
    }

    /// Its tables are in a database of its own, even on the catalog's server.
    fn tables(&self, _: &Placement) -> Tables<'_> {
        Tables::Outside(self)
    }

    async fn discard(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        let database = own_database(tenant)?;
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        let mark: Option<Option<String>> = pooler::query_scalar(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
        )
        .bind(database.as_str())
        .fetch_optional(pooler::Pinned(&server))
        .await?;
        if mark.flatten() == Some(owner_mark(tenant)) {
            Outside::deprovision(self, cx, tenant).await?;
        }
        Ok(())
    }

    fn describe(&self, tenant: &Tenant) -> String {
        match &tenant.placement.database {
            Some(database) => format!("database \"{database}\"{}", on(tenant)),
            None => "no database (the catalog lacks its name)".into(),
        }
    }

    async fn size(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Option<i64>, Error> {
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        Ok(pooler::query_scalar("SELECT pg_database_size($1)")
            .bind(own_database(tenant)?.as_str())
            .fetch_optional(pooler::Pinned(&server))
            .await?)
    }

    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error> {
        postgres::migrate(cx, tenant, false, keep).await
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
impl Outside for Database {
    /// `CREATE DATABASE` takes a connection of the server's pool, which on the catalog's
    /// server is the catalog's; the database's name carries the tenant's id.
    fn provision_first(&self) -> bool {
        true
    }

    async fn provision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Applied, Error> {
        let database = own_database(tenant)?;
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        if tenant.placement.server.is_some() {
            cx.pools.role().ensure(&server).await?;
        }
        let catalog = cx.pools.catalog()?.connect_options();
        let template = ensure_template(&server, &catalog, cx.migrations, cx.pools.role()).await?;
        server
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE {} TEMPLATE \"{template}\"",
                database.quoted()
            )))
            .await
            .map_err(|e| match sqlstate(&e).as_deref() {
                Some(DUPLICATE_DATABASE) => Error::ExistsOutsideCatalog(database.to_string()),
                _ => Error::Database(e),
            })?;
        // Marked as this tenant's, and reachable by the app role only (and its owner): no
        // other tenant's role may connect.
        let marked = server
            .execute(AssertSqlSafe(format!(
                "COMMENT ON DATABASE {db} IS '{}'; \
                 REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC; \
                 GRANT CONNECT ON DATABASE {db} TO \"{}\"",
                owner_mark(tenant),
                cx.pools.role().name(),
                db = database.quoted(),
            )))
            .await;
        if let Err(error) = marked {
            drop_database(&server, database.as_str()).await?;
            return Err(error.into());
        }
        Ok(applied(cx.migrations))
    }

    /// The database's name does not follow the slug.
    async fn rename(&self, _: Cx<'_>, tenant: &Tenant, _: &Slug) -> Result<Placement, Error> {
        Ok(tenant.placement.clone())
    }

    async fn deprovision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        let database = own_database(tenant)?;
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        cx.pools.close_database(&tenant.placement).await?;
        drop_database(&server, database.as_str()).await
    }
}

pub(super) fn own_database(tenant: &Tenant) -> Result<&DatabaseName, Error> {
    tenant.placement.database.as_ref().ok_or_else(|| {
        Error::CorruptCatalog(format!("database tenant {} has no database", tenant.id))
    })
}
