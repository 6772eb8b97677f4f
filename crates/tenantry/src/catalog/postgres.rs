//! The PostgreSQL store: following changes by `LISTEN` (or by polling the version row through
//! a transaction pooler), and reads from schema `tenantry`, every statement unnamed and pinned
//! to one session ([`pooler::Pinned`]), so that a transaction pooler can stand in front.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use moka::future::Cache;
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use uuid::Uuid;

use super::row::assemble;
use super::{AbortOnDrop, Cached, Domain, Freshness, Inner, LookupKey, Store};
use super::{TenantCatalog, TenantDetails, TenantPage, TenantQuery, TenantRow};
use super::{follow_version, select_tenants};
use crate::error::Error;
use crate::pooler::{self, Pooler};
use crate::tenant::Tenant;

/// The channel catalog triggers notify on.
const CHANNEL: &str = "tenantry_catalog";

impl TenantCatalog {
    /// Opens the catalog on `pool`, reached through `pooler`, and starts following changes
    /// made by other processes.
    pub async fn connect(pool: PgPool, pooler: Pooler) -> Result<Self, Error> {
        let cache = Cache::builder().max_capacity(100_000).build();
        let freshness = Arc::new(Freshness::default());
        let task = match pooler {
            Pooler::None => {
                let listener = listen(&pool).await?;
                freshness.listening.store(true, Ordering::Release);
                tokio::spawn(follow_changes(
                    pool.clone(),
                    listener,
                    cache.clone(),
                    freshness.clone(),
                ))
            }
            Pooler::Transaction => {
                // One simple query, which a transaction pooler carries whole.
                let pool = pool.clone();
                let read = async move || {
                    let row = sqlx::raw_sql("SELECT version FROM tenantry.catalog_version")
                        .fetch_one(&pool)
                        .await?;
                    Ok(row.try_get(0)?)
                };
                tokio::spawn(follow_version(read, cache.clone(), freshness.clone()))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store: Store::Postgres(pool),
                cache,
                freshness,
                _listener: AbortOnDrop(task),
            }),
        })
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, Error> {
    // A pool of its own, so the listening connection never takes a slot from request work.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(pool.connect_options().as_ref().clone());
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn follow_changes(
    pool: PgPool,
    mut listener: PgListener,
    cache: Cache<LookupKey, Cached>,
    freshness: Arc<Freshness>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => freshness.invalidate(&cache),
            Ok(None) | Err(_) => {
                freshness.listening.store(false, Ordering::Release);
                freshness.invalidate(&cache);
                tracing::warn!(
                    "lost the catalog change listener; bypassing the cache until it is back"
                );
                listener = loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(l) = listen(&pool).await {
                        break l;
                    }
                };
                // Changes made while disconnected were never announced to us.
                freshness.invalidate(&cache);
                freshness.listening.store(true, Ordering::Release);
            }
        }
    }
}

pub(super) async fn by_domain(pool: &PgPool, domain: &str) -> Result<Option<Tenant>, Error> {
    let row: Option<TenantRow> = pooler::query_as(select_tenants!(
        "JOIN tenantry.domains d ON d.tenant_id = t.id WHERE d.domain = $1"
    ))
    .bind(domain)
    .fetch_optional(pooler::Pinned(pool))
    .await?;
    row.map(Tenant::try_from).transpose()
}

/// The tenant with this id, once any change of its row under way has committed or rolled
/// back (`FOR SHARE`).
pub(super) async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Tenant>, Error> {
    let row: Option<TenantRow> =
        pooler::query_as(select_tenants!("WHERE t.id = $1 FOR SHARE OF t"))
            .bind(id)
            .fetch_optional(pooler::Pinned(pool))
            .await?;
    row.map(Tenant::try_from).transpose()
}

pub(super) async fn by_slug(pool: &PgPool, slug: &str) -> Result<Option<Tenant>, Error> {
    let row: Option<TenantRow> = pooler::query_as(select_tenants!("WHERE t.slug = $1"))
        .bind(slug)
        .fetch_optional(pooler::Pinned(pool))
        .await?;
    row.map(Tenant::try_from).transpose()
}

/// Every tenant with its domains, by slug: the pending ones, or all the others.
pub(super) async fn list(pool: &PgPool, pending: bool) -> Result<Vec<TenantDetails>, Error> {
    let rows: Vec<TenantRow> = pooler::query_as(select_tenants!(
        "WHERE (t.status = 'pending') = $1 ORDER BY t.slug"
    ))
    .bind(pending)
    .fetch_all(pooler::Pinned(pool))
    .await?;
    let domains = pooler::query_as(
        "SELECT tenant_id, domain, is_primary FROM tenantry.domains \
         ORDER BY is_primary DESC, domain",
    )
    .fetch_all(pooler::Pinned(pool))
    .await?;
    assemble(rows.into_iter().map(Tenant::try_from), domains)
}

/// A tenant's domains, primary first.
pub(super) async fn domains(pool: &PgPool, id: Uuid) -> Result<Vec<Domain>, Error> {
    Ok(pooler::query_as(
        "SELECT domain, is_primary FROM tenantry.domains WHERE tenant_id = $1 \
         ORDER BY is_primary DESC, domain",
    )
    .bind(id)
    .fetch_all(pooler::Pinned(pool))
    .await?)
}

/// Tenants whose migrations may be pending (all with `verify`), and how many are current.
/// Shared-mode tenants are migrated with the shared tables, so they count as current.
pub(super) async fn to_migrate(
    pool: &PgPool,
    fingerprint: &str,
    verify: bool,
    slug: Option<&str>,
) -> Result<(Vec<Tenant>, i64), Error> {
    let rows: Vec<TenantRow> = pooler::query_as(select_tenants!(
        "WHERE ($1 OR t.migration_fingerprint IS DISTINCT FROM $2) \
         AND ($3::text IS NULL OR t.slug = $3) AND t.isolation <> 'shared' ORDER BY t.slug"
    ))
    .bind(verify)
    .bind(fingerprint)
    .bind(slug)
    .fetch_all(pooler::Pinned(pool))
    .await?;
    let current: i64 = pooler::query_scalar(
        "SELECT count(*) FROM tenantry.tenants WHERE ($3::text IS NULL OR slug = $3) \
         AND (isolation = 'shared' OR (migration_fingerprint = $1 AND NOT $2))",
    )
    .bind(fingerprint)
    .bind(verify)
    .bind(slug)
    .fetch_one(pooler::Pinned(pool))
    .await?;
    let tenants = rows
        .into_iter()
        .map(Tenant::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((tenants, current))
}

/// The `WHERE` clause of a [`TenantQuery`]: `$1` the pattern, `$2` the status, `$3` the
/// isolation (`''` for any).
macro_rules! page_filter {
    () => {
        "WHERE t.status <> 'pending' AND ($1 = '' OR t.slug LIKE $1 ESCAPE '\\' \
         OR t.name ILIKE $1 ESCAPE '\\' OR EXISTS (SELECT 1 FROM tenantry.domains d \
         WHERE d.tenant_id = t.id AND d.domain LIKE $1 ESCAPE '\\')) \
         AND ($2 = '' OR t.status = $2) AND ($3 = '' OR t.isolation = $3) "
    };
}

/// A page of the tenants `query` asks for, with their domains, and how many match in all.
pub(super) async fn page(pool: &PgPool, query: &TenantQuery) -> Result<TenantPage, Error> {
    let (pattern, status, isolation) = query.filters();
    let rows: Vec<TenantRow> = pooler::query_as(select_tenants!(concat!(
        page_filter!(),
        "ORDER BY t.slug LIMIT $4 OFFSET $5"
    )))
    .bind(&pattern)
    .bind(status)
    .bind(isolation)
    .bind(i64::from(query.limit()))
    .bind(i64::from(query.offset))
    .fetch_all(pooler::Pinned(pool))
    .await?;
    let tenants: Vec<Tenant> = rows
        .into_iter()
        .map(Tenant::try_from)
        .collect::<Result<_, _>>()?;
    let ids: Vec<Uuid> = tenants.iter().map(|t| t.id).collect();
    let domains = pooler::query_as(
        "SELECT tenant_id, domain, is_primary FROM tenantry.domains \
         WHERE tenant_id = ANY($1) ORDER BY is_primary DESC, domain",
    )
    .bind(ids)
    .fetch_all(pooler::Pinned(pool))
    .await?;
    let total: i64 = pooler::query_scalar(concat!(
        "SELECT count(*) FROM tenantry.tenants t ",
        page_filter!()
    ))
    .bind(&pattern)
    .bind(status)
    .bind(isolation)
    .fetch_one(pooler::Pinned(pool))
    .await?;
    let tenants = assemble(tenants.into_iter().map(Ok), domains)?;
    Ok(TenantPage { tenants, total })
}
