//! The catalog of a SQLite deployment: the PostgreSQL catalog's tables in
//! `<data>/catalog.sqlite3`, read with the same queries minus the servers (a SQLite deployment
//! has none).

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use uuid::Uuid;

use super::row::{Domain, TenantDetails, TenantRow, assemble, tenant_columns};
use super::{TenantPage, TenantQuery};
use crate::error::Error;
use crate::slug::DatabaseName;
use crate::tenant::{IsolationMode, Tenant};

static CATALOG: Migrator = sqlx::migrate!("./migrations/catalog-sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Selects tenants as `t`, with `$tail` appended.
macro_rules! select_tenants {
    ($tail:expr) => {
        concat!("SELECT ", tenant_columns!(), " FROM tenants t ", $tail)
    };
}

/// Options for a SQLite file tenantry uses: WAL, a busy timeout, foreign keys on.
pub(crate) fn file_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
}

/// Opens (creating if needed) `<data>/catalog.sqlite3` and migrates it: it belongs to this
/// deployment alone, so there is no one to coordinate with.
pub(crate) async fn open(data: &Path) -> Result<SqlitePool, Error> {
    std::fs::create_dir_all(data)
        .map_err(|e| Error::Incomplete(format!("{}: {e}", data.display())))?;
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(file_options(&data.join("catalog.sqlite3")).create_if_missing(true))
        .await?;
    CATALOG
        .run(&pool)
        .await
        .map_err(|e| Error::Migration(format!("the SQLite catalog: {e}")))?;
    Ok(pool)
}

/// A catalog row as a tenant, with a file stem for a database name.
pub(super) fn tenant(row: TenantRow) -> Result<Tenant, Error> {
    row.into_tenant(DatabaseName::sqlite_file_from_catalog)
}

pub(super) async fn by_domain(pool: &SqlitePool, domain: &str) -> Result<Option<Tenant>, Error> {
    let row: Option<TenantRow> = sqlx::query_as(select_tenants!(
        "JOIN domains d ON d.tenant_id = t.id WHERE d.domain = $1"
    ))
    .bind(domain)
    .fetch_optional(pool)
    .await?;
    row.map(tenant).transpose()
}

pub(super) async fn by_id(pool: &SqlitePool, id: Uuid) -> Result<Option<Tenant>, Error> {
    let row: Option<TenantRow> = sqlx::query_as(select_tenants!("WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(tenant).transpose()
}

pub(super) async fn by_slug(pool: &SqlitePool, slug: &str) -> Result<Option<Tenant>, Error> {
    let row: Option<TenantRow> = sqlx::query_as(select_tenants!("WHERE t.slug = $1"))
        .bind(slug)
        .fetch_optional(pool)
        .await?;
    row.map(tenant).transpose()
}

/// Every tenant with its domains, by slug: the pending ones, or all the others.
pub(super) async fn list(pool: &SqlitePool, pending: bool) -> Result<Vec<TenantDetails>, Error> {
    let rows: Vec<TenantRow> = sqlx::query_as(select_tenants!(
        "WHERE (t.status = 'pending') = $1 ORDER BY t.slug"
    ))
    .bind(pending)
    .fetch_all(pool)
    .await?;
    let domains = sqlx::query_as(
        "SELECT tenant_id, domain, is_primary FROM domains ORDER BY is_primary DESC, domain",
    )
    .fetch_all(pool)
    .await?;
    assemble(rows.into_iter().map(tenant), domains)
}

/// A tenant's domains, primary first.
pub(super) async fn domains(pool: &SqlitePool, id: Uuid) -> Result<Vec<Domain>, Error> {
    Ok(sqlx::query_as(
        "SELECT domain, is_primary FROM domains WHERE tenant_id = $1 \
         ORDER BY is_primary DESC, domain",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// Tenants whose migrations may be pending (all with `verify`), and how many are current.
pub(super) async fn to_migrate(
    pool: &SqlitePool,
    fingerprint: &str,
    verify: bool,
    slug: Option<&str>,
) -> Result<(Vec<Tenant>, i64), Error> {
    let rows: Vec<TenantRow> = sqlx::query_as(select_tenants!(
        "WHERE ($1 OR t.migration_fingerprint IS NOT $2) AND ($3 IS NULL OR t.slug = $3) \
         ORDER BY t.slug"
    ))
    .bind(verify)
    .bind(fingerprint)
    .bind(slug)
    .fetch_all(pool)
    .await?;
    let current = sqlx::query_scalar(
        "SELECT count(*) FROM tenants \
         WHERE migration_fingerprint = $1 AND NOT $2 AND ($3 IS NULL OR slug = $3)",
    )
    .bind(fingerprint)
    .bind(verify)
    .bind(slug)
    .fetch_one(pool)
    .await?;
    Ok((
        rows.into_iter().map(tenant).collect::<Result<_, _>>()?,
        current,
    ))
}

/// Locks the tenant with this slug for a change in `tx` (which began `IMMEDIATE`).
pub(super) async fn by_slug_in(
    tx: &mut sqlx::SqliteConnection,
    slug: &str,
) -> Result<Option<Tenant>, Error> {
    let row: Option<TenantRow> = sqlx::query_as(select_tenants!("WHERE t.slug = $1"))
        .bind(slug)
        .fetch_optional(&mut *tx)
        .await?;
    row.map(tenant).transpose()
}

/// The oldest pending tenant of `isolation`, for a take in `tx` (which began `IMMEDIATE`, so
/// no other writer runs until it ends).
pub(super) async fn oldest_pending_in(
    tx: &mut sqlx::SqliteConnection,
    isolation: IsolationMode,
) -> Result<Option<Tenant>, Error> {
    let row: Option<TenantRow> = sqlx::query_as(select_tenants!(
        "WHERE t.status = 'pending' AND t.isolation = $1 ORDER BY t.created_at LIMIT 1"
    ))
    .bind(isolation.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    row.map(tenant).transpose()
}

/// The `WHERE` clause of a [`TenantQuery`]: `$1` the pattern, `$2` the status, `$3` the
/// isolation (`''` for any).
macro_rules! page_filter {
    () => {
        "WHERE t.status <> 'pending' AND ($1 = '' OR t.slug LIKE $1 ESCAPE '\\' \
         OR t.name LIKE $1 ESCAPE '\\' OR EXISTS (SELECT 1 FROM domains d \
         WHERE d.tenant_id = t.id AND d.domain LIKE $1 ESCAPE '\\')) \
         AND ($2 = '' OR t.status = $2) AND ($3 = '' OR t.isolation = $3) "
    };
}

/// A page of the tenants `query` asks for, with their domains, and how many match in all
/// (SQLite's `LIKE` ignores the case of ASCII letters).
pub(super) async fn page(pool: &SqlitePool, query: &TenantQuery) -> Result<TenantPage, Error> {
    let (pattern, status, isolation) = query.filters();
    let rows: Vec<TenantRow> = sqlx::query_as(select_tenants!(concat!(
        page_filter!(),
        "ORDER BY t.slug LIMIT $4 OFFSET $5"
    )))
    .bind(&pattern)
    .bind(status)
    .bind(isolation)
    .bind(i64::from(query.limit()))
    .bind(i64::from(query.offset))
    .fetch_all(pool)
    .await?;
    let mut tenants = Vec::with_capacity(rows.len());
    for row in rows {
        let tenant = tenant(row)?;
        let domains = domains(pool, tenant.id).await?;
        tenants.push(TenantDetails { tenant, domains });
    }
    let total: i64 = sqlx::query_scalar(concat!("SELECT count(*) FROM tenants t ", page_filter!()))
        .bind(&pattern)
        .bind(status)
        .bind(isolation)
        .fetch_one(pool)
        .await?;
    Ok(TenantPage { tenants, total })
}
