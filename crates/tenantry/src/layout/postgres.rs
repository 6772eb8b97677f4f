//! What the PostgreSQL layouts share: schemas, transactions in a schema, migrating a tenant
//! schema and reaching it.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, Executor, PgConnection, PgPool};

use super::{Cx, TxRoute};
use crate::catalog::CatalogTx;
use crate::error::{DUPLICATE_SCHEMA, Error, sqlstate};
use crate::migrate::{Applied, migrate_schema};
use crate::pools::Access;
use crate::safe_transaction::{self, SafeTransaction};
use crate::slug::SchemaName;
use crate::tenant::Tenant;
use crate::transaction::TenantTransaction;

/// Opens a transaction on `pool` whose `search_path` is `schema`.
pub(crate) async fn begin_in(
    pool: &PgPool,
    schema: &SchemaName,
) -> Result<SafeTransaction<sqlx::Postgres>, Error> {
    let mut tx = safe_transaction::begin(pool, None).await?;
    tx.execute(AssertSqlSafe(format!(
        "SET LOCAL search_path TO {}",
        schema.quoted()
    )))
    .await?;
    Ok(tx)
}

/// The comment that marks a schema or database as made for this tenant, so that cleaning up
/// after an interrupted move drops nothing else.
pub(super) fn owner_mark(tenant: &Tenant) -> String {
    format!("tenantry tenant {}", tenant.id)
}

/// Creates the tenant's schema in the open transaction `conn`, marks it as the tenant's and
/// applies the tenant migrations in it.
pub(super) async fn create_schema(
    cx: Cx<'_>,
    conn: &mut PgConnection,
    tenant: &Tenant,
) -> Result<Applied, Error> {
    let schema = &tenant.placement.schema;
    let quoted = schema.quoted();
    conn.execute(AssertSqlSafe(format!(
        "CREATE SCHEMA {quoted}; COMMENT ON SCHEMA {quoted} IS '{}'; \
         SET LOCAL search_path TO {quoted}",
        owner_mark(tenant)
    )))
    .await
    .map_err(|e| match sqlstate(&e).as_deref() {
        Some(DUPLICATE_SCHEMA) => Error::ExistsOutsideCatalog(schema.to_string()),
        _ => Error::Database(e),
    })?;
    migrate_schema(conn, schema, cx.migrations, cx.pools.role()).await
}

pub(super) fn drop_schema_sql(schema: &SchemaName) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.quoted()))
}

/// The connection of the catalog's transaction, which in-catalog layouts change tables in.
pub(super) fn catalog_connection(tx: &mut CatalogTx) -> Result<&mut PgConnection, Error> {
    tx.postgres()
        .ok_or_else(|| Error::Incomplete("a PostgreSQL layout in a SQLite catalog".into()))
}

/// A transaction of the pool's tenant, opened with its begin statement.
pub(super) async fn transaction(
    cx: Cx<'_>,
    tenant: &Tenant,
    access: Access,
) -> Result<TxRoute, Error> {
    Ok(TxRoute {
        pool: cx.pools.for_placement(&tenant.placement, access).await?,
        begin: tenant.begin_sql.clone(),
    })
}

/// Applies the pending tenant migrations to the tenant's schema in one transaction (rolled
/// back unless `keep`). In the
/// catalog's own database the catalog record is part of it; elsewhere it follows the commit
/// (a lost record only means the next run visits the tenant again and finds nothing pending).
pub(super) async fn migrate(
    cx: Cx<'_>,
    tenant: &Tenant,
    in_catalog: bool,
    keep: bool,
) -> Result<Applied, Error> {
    let TxRoute { pool, begin } = transaction(cx, tenant, Access::Owner).await?;
    let mut tx = TenantTransaction::begin_with(&pool, Arc::new(tenant.clone()), begin).await?;
    let conn = tx
        .postgres()
        .ok_or_else(|| Error::Migration("not a PostgreSQL tenant".into()))?;
    let applied = migrate_schema(
        conn,
        &tenant.placement.schema,
        cx.migrations,
        cx.pools.role(),
    )
    .await?;
    if !keep {
        tx.rollback().await?;
    } else if in_catalog {
        crate::migrate::record(conn, tenant, cx.migrations, &applied).await?;
        tx.commit().await?;
    } else {
        tx.commit().await?;
        let mut catalog = cx.catalog.begin().await?;
        catalog
            .record(tenant, cx.migrations.tenant_fingerprint(), &applied)
            .await?;
        catalog.commit().await?;
    }
    Ok(applied)
}
