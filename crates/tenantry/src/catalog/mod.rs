//! The tenant catalog: tenants and their domains in schema `tenantry` (or, in a SQLite
//! deployment, in the catalog file), with cached lookups.
//!
//! Lookups by domain and by slug are cached in process. Every catalog change is announced with
//! `NOTIFY tenantry_catalog`; a listener task bumps an epoch that makes every cached entry
//! stale, so another process's change is seen as soon as its notification arrives. While the
//! listener is not connected, lookups bypass the cache rather than risk serving stale state.
//! Through a transaction pooler, which cannot carry `LISTEN`, a task polls the version row
//! every committed change raises (`tenantry.catalog_version`) instead; on SQLite, which has
//! no notifications, it polls the file's `PRAGMA data_version`.
//!
//! This file keeps the cache and the dispatch to the store: `postgres.rs` and `sqlite.rs`
//! read, `tx.rs` writes (one SQL text for both), `row.rs` is the row.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
#[cfg(feature = "sqlite")]
use sqlx::Connection;
#[cfg(feature = "postgres")]
use sqlx::postgres::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use uuid::Uuid;

/// Runs `$sql` with its binds on the catalog's store, finishing with `$finish`
/// (`fetch_all`, ...); `execute` gives the number of rows it changed.
macro_rules! on_store {
    ($store:expr, query, $sql:literal, [$($bind:expr),* $(,)?], execute) => {
        match $store {
            #[cfg(feature = "postgres")]
            $crate::catalog::Store::Postgres(pool) => $crate::pooler::query($sql)
                $(.bind($bind))*
                .execute($crate::pooler::Pinned(pool))
                .await
                .map(|done| done.rows_affected()),
            #[cfg(feature = "sqlite")]
            $crate::catalog::Store::Sqlite(pool) => ::sqlx::query(::sqlx::AssertSqlSafe($sql.replace("tenantry.", "")))
                $(.bind($bind))*
                .execute(pool)
                .await
                .map(|done| done.rows_affected()),
        }
    };
    ($store:expr, $make:ident, $sql:literal, [$($bind:expr),* $(,)?], $finish:ident) => {
        match $store {
            #[cfg(feature = "postgres")]
            $crate::catalog::Store::Postgres(pool) => $crate::pooler::$make($sql)
                $(.bind($bind))*
                .$finish($crate::pooler::Pinned(pool))
                .await,
            #[cfg(feature = "sqlite")]
            $crate::catalog::Store::Sqlite(pool) => ::sqlx::$make(::sqlx::AssertSqlSafe($sql.replace("tenantry.", "")))
                $(.bind($bind))*
                .$finish(pool)
                .await,
        }
    };
}

mod claims;
mod job_due;
mod platform;
#[cfg(feature = "postgres")]
mod postgres;
mod row;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tx;

pub use claims::DomainClaim;
pub(crate) use claims::DueClaim;
pub(crate) use job_due::DueTenant;
pub use platform::{AuditEntry, AuditFilter, Operator, OperatorSession, check_operator_name};
pub use row::{Domain, TenantDetails};
#[cfg(feature = "postgres")]
pub(crate) use row::{TenantRow, select_tenants};
#[cfg(feature = "sqlite")]
pub(crate) use sqlite::file_options;
pub(crate) use tx::CatalogTx;

use crate::error::Error;
#[cfg(feature = "postgres")]
use crate::error::PgOnly;
use crate::host::HostName;
use crate::migrate::Migrations;
use crate::safe_transaction;
use crate::slug::Slug;
use crate::tenant::{IsolationMode, Tenant, TenantStatus};

/// A page of tenants to list, as an operator's console asks for them.
#[derive(Debug, Clone, Default)]
pub struct TenantQuery {
    /// Text the slug, name or one of the domains contains; empty for any.
    pub search: String,
    /// Only tenants of this status.
    pub status: Option<TenantStatus>,
    /// Only tenants of this isolation.
    pub isolation: Option<IsolationMode>,
    /// Tenants skipped, in slug order.
    pub offset: u32,
    /// Tenants on the page: 50 when zero, at most 500.
    pub limit: u32,
}

impl TenantQuery {
    fn limit(&self) -> u32 {
        match self.limit {
            0 => 50,
            n => n.min(500),
        }
    }

    /// The `LIKE` pattern (`''` for none, the search's own `%`, `_` and `\` escaped), the
    /// status and the isolation (`''` for any).
    fn filters(&self) -> (String, &'static str, &'static str) {
        let search = self.search.trim();
        let pattern = match search.is_empty() {
            true => String::new(),
            false => {
                let escaped = search
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                format!("%{escaped}%")
            }
        };
        (
            pattern,
            self.status.map_or("", TenantStatus::as_str),
            self.isolation.map_or("", IsolationMode::as_str),
        )
    }
}

/// A page of tenants and how many match the query in all.
#[derive(Debug, Clone)]
pub struct TenantPage {
    /// The page's tenants, by slug.
    pub tenants: Vec<TenantDetails>,
    /// How many tenants match, on every page.
    pub total: i64,
}

/// How often a poller reads the catalog's version: a change is seen within this, plus the
/// time the read takes.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long one poll of the version may take before the cache is bypassed.
const POLL_TIMEOUT: Duration = Duration::from_millis(700);

#[derive(Clone, Hash, PartialEq, Eq)]
enum LookupKey {
    Domain(String),
    Slug(String),
}

#[derive(Clone)]
struct Cached {
    epoch: u64,
    tenant: Option<Arc<Tenant>>,
}

/// Whether cached entries may be trusted, shared with the listener task.
#[derive(Default)]
struct Freshness {
    epoch: AtomicU64,
    listening: AtomicBool,
}

impl Freshness {
    fn invalidate(&self, cache: &Cache<LookupKey, Cached>) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        cache.invalidate_all();
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where the catalog is kept.
pub(crate) enum Store {
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
}

struct Inner {
    store: Store,
    cache: Cache<LookupKey, Cached>,
    freshness: Arc<Freshness>,
    _listener: AbortOnDrop,
}

/// Reads the tenant catalog. Cheap to clone.
#[derive(Clone)]
pub struct TenantCatalog {
    inner: Arc<Inner>,
}

impl TenantCatalog {
    /// Where the catalog is kept.
    #[cfg(feature = "dedicated")]
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Opens (creating and migrating if needed) a SQLite deployment's catalog,
    /// `<data>/catalog.sqlite3`, and starts following changes made by other processes.
    #[cfg(feature = "sqlite")]
    pub(crate) async fn open_sqlite(data: &std::path::Path) -> Result<Self, Error> {
        let pool = sqlite::open(data).await?;
        let cache = Cache::builder().max_capacity(100_000).build();
        let freshness = Arc::new(Freshness::default());
        // `data_version` changes whenever another connection commits.
        let mut conn = SqliteConnection::connect_with(&pool.connect_options()).await?;
        let read = async move || {
            Ok(sqlx::query_scalar("PRAGMA data_version")
                .fetch_one(&mut conn)
                .await?)
        };
        let task = tokio::spawn(follow_version(read, cache.clone(), freshness.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                store: Store::Sqlite(pool),
                cache,
                freshness,
                _listener: AbortOnDrop(task),
            }),
        })
    }

    /// The PostgreSQL pool the catalog reads from, for `what`, which needs PostgreSQL; an
    /// error naming it in a SQLite deployment.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(&self, operation: PgOnly) -> Result<&PgPool, Error> {
        let pool = match &self.inner.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => Some(pool),
            #[cfg(feature = "sqlite")]
            Store::Sqlite(_) => None,
        };
        pool.ok_or_else(|| operation.refused())
    }

    /// Opens a transaction on the catalog (on SQLite, one that holds the write lock).
    pub(crate) async fn begin(&self) -> Result<CatalogTx, Error> {
        Ok(match &self.inner.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => {
                CatalogTx::Postgres(safe_transaction::begin(pool, None).await?)
            }
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => CatalogTx::Sqlite(
                safe_transaction::begin(
                    pool,
                    Some(sqlx::SqlSafeStr::into_sql_str("BEGIN IMMEDIATE")),
                )
                .await?,
            ),
        })
    }

    /// The fingerprint of the tenant migration set this catalog's tenants are built from.
    pub(crate) fn fingerprint<'m>(&self, migrations: &'m Migrations) -> Result<&'m str, Error> {
        match &self.inner.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => Ok(migrations.tenant_fingerprint()),
            #[cfg(feature = "sqlite")]
            Store::Sqlite(_) => Ok(migrations.sqlite_tenant()?.1),
        }
    }

    /// Tenants whose migrations may be pending (every one with `verify`; one with `slug`),
    /// and how many are known to be current. Shared-mode tenants are migrated with the shared
    /// tables, so they count as current.
    pub(crate) async fn to_migrate(
        &self,
        migrations: &Migrations,
        verify: bool,
        slug: Option<&str>,
    ) -> Result<(Vec<Tenant>, i64), Error> {
        let fingerprint = self.fingerprint(migrations)?;
        match &self.inner.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => postgres::to_migrate(pool, fingerprint, verify, slug).await,
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => sqlite::to_migrate(pool, fingerprint, verify, slug).await,
        }
    }

    /// The tenant that owns `host` in the domains table.
    pub async fn by_domain(&self, host: &HostName) -> Result<Option<Arc<Tenant>>, Error> {
        self.cached(LookupKey::Domain(host.as_str().to_owned()))
            .await
    }

    /// The tenant with this slug.
    pub async fn by_slug(&self, slug: &Slug) -> Result<Option<Arc<Tenant>>, Error> {
        self.cached(LookupKey::Slug(slug.as_str().to_owned())).await
    }

    /// The tenant as the catalog holds it now, read past the cache, after any change of its
    /// row under way has committed or rolled back; `None` once deleted.
    pub(crate) async fn current(&self, id: Uuid) -> Result<Option<Tenant>, Error> {
        match &self.inner.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => postgres::by_id(pool, id).await,
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => sqlite::by_id(pool, id).await,
        }
    }

    /// Whether `seen` is no longer what the catalog holds: deleted, or its slug, status,
    /// placement or move mark changed since it was read (see [`TenantCatalog::current`]).
    pub(crate) async fn changed_since(&self, seen: &Tenant) -> Result<bool, Error> {
        let now = self.current(seen.id).await?;
        Ok(now.is_none_or(|now| {
            (&now.slug, now.status, &now.placement, now.moving)
                != (&seen.slug, seen.status, &seen.placement, seen.moving)
        }))
    }

    /// Forgets every cached lookup; called after this process changes the catalog.
    pub fn invalidate(&self) {
        self.inner.freshness.invalidate(&self.inner.cache);
    }

    async fn cached(&self, key: LookupKey) -> Result<Option<Arc<Tenant>>, Error> {
        let freshness = &self.inner.freshness;
        if !freshness.listening.load(Ordering::Acquire) {
            return self.fetch(&key).await;
        }
        // Read the epoch before querying: an entry filled from a query that raced with a
        // change carries the old epoch and is ignored from then on.
        let epoch = freshness.epoch.load(Ordering::Acquire);
        if let Some(hit) = self.inner.cache.get(&key).await
            && hit.epoch == epoch
        {
            return Ok(hit.tenant);
        }
        let tenant = self.fetch(&key).await?;
        self.inner
            .cache
            .insert(
                key,
                Cached {
                    epoch,
                    tenant: tenant.clone(),
                },
            )
            .await;
        Ok(tenant)
    }

    async fn fetch(&self, key: &LookupKey) -> Result<Option<Arc<Tenant>>, Error> {
        let tenant = match (&self.inner.store, key) {
            #[cfg(feature = "postgres")]
            (Store::Postgres(pool), LookupKey::Domain(domain)) => {
                postgres::by_domain(pool, domain).await?
            }
            #[cfg(feature = "postgres")]
            (Store::Postgres(pool), LookupKey::Slug(slug)) => postgres::by_slug(pool, slug).await?,
            #[cfg(feature = "sqlite")]
            (Store::Sqlite(pool), LookupKey::Domain(domain)) => {
                sqlite::by_domain(pool, domain).await?
            }
            #[cfg(feature = "sqlite")]
            (Store::Sqlite(pool), LookupKey::Slug(slug)) => sqlite::by_slug(pool, slug).await?,
        };
        Ok(tenant.map(Arc::new))
    }

    /// Every tenant with its domains, ordered by slug (uncached); not the pending ones.
    pub async fn list(&self) -> Result<Vec<TenantDetails>, Error> {
        self.list_where(false).await
    }

    /// A page of the tenants `query` asks for (never pending ones), uncached.
    pub async fn page(&self, query: &TenantQuery) -> Result<TenantPage, Error> {
        match &self.inner.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => postgres::page(pool, query).await,
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => sqlite::page(pool, query).await,
        }
    }

    /// The pending tenants (provisioned ahead of signups) with their domains, by slug.
    pub async fn list_pending(&self) -> Result<Vec<TenantDetails>, Error> {
        self.list_where(true).await
    }

    async fn list_where(&self, pending: bool) -> Result<Vec<TenantDetails>, Error> {
        match &self.inner.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => postgres::list(pool, pending).await,
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => sqlite::list(pool, pending).await,
        }
    }

    /// One tenant with its domains (uncached).
    pub async fn details(&self, slug: &Slug) -> Result<TenantDetails, Error> {
        self.details_of(slug, false).await
    }

    /// One tenant with its domains (uncached), a pending one too if `pending`.
    pub(crate) async fn details_of(
        &self,
        slug: &Slug,
        pending: bool,
    ) -> Result<TenantDetails, Error> {
        let not_found = || Error::TenantNotFound(slug.to_string());
        let store = &self.inner.store;
        let tenant = match store {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => postgres::by_slug(pool, slug.as_str()).await?,
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => sqlite::by_slug(pool, slug.as_str()).await?,
        }
        .filter(|tenant| pending || tenant.status != TenantStatus::Pending)
        .ok_or_else(not_found)?;
        let domains = match store {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => postgres::domains(pool, tenant.id).await?,
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => sqlite::domains(pool, tenant.id).await?,
        };
        Ok(TenantDetails { tenant, domains })
    }
}

/// Follows a catalog by polling a version that every committed change moves (`read` reads
/// it): a move makes cached entries stale. Until the first read, and while reads fail, lookups
/// bypass the cache.
async fn follow_version(
    mut read: impl AsyncFnMut() -> Result<i64, Error>,
    cache: Cache<LookupKey, Cached>,
    freshness: Arc<Freshness>,
) {
    let mut seen = None;
    loop {
        match tokio::time::timeout(POLL_TIMEOUT, read()).await {
            Ok(Ok(version)) => {
                if seen != Some(version) {
                    seen = Some(version);
                    freshness.invalidate(&cache);
                }
                freshness.listening.store(true, Ordering::Release);
            }
            failed => {
                if freshness.listening.swap(false, Ordering::AcqRel) {
                    seen = None;
                    let error = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!("no answer within {POLL_TIMEOUT:?}"),
                    };
                    tracing::warn!(%error, "cannot poll the catalog's version; bypassing the cache");
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

impl std::fmt::Debug for TenantCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match &self.inner.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => "postgres",
            #[cfg(feature = "sqlite")]
            Store::Sqlite(_) => "sqlite",
        };
        f.debug_struct("TenantCatalog")
            .field("store", &store)
            .field("cached", &self.inner.cache.entry_count())
            .field(
                "following",
                &self.inner.freshness.listening.load(Ordering::Acquire),
            )
            .finish()
    }
}
