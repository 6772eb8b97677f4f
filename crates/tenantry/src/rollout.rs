//! Rolling the tenant migrations out: every tenant whose migrations may be pending, a few at a
//! time, each in a transaction of its own, and a report of what each one did.

use std::sync::Arc;

use futures::StreamExt;
use sqlx::PgPool;

use crate::catalog_row::{TenantRow, select_tenants};
use crate::error::Error;
use crate::migrate::{Applied, Migrations, migrate_schema, record};
use crate::pooler;
use crate::pools::{Access, Pools};
use crate::safe_transaction;
use crate::slug::Slug;
use crate::sqlite;
use crate::tenant::Tenant;
use crate::transaction::TenantTransaction;

/// Which tenants a run covers.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// How many tenants migrate at once.
    pub jobs: usize,
    /// Only this tenant.
    pub tenant: Option<Slug>,
    /// Visit every tenant schema, checking its ledger against the source, instead of trusting
    /// the catalog's record of which tenants are current.
    pub verify: bool,
}

/// What a run did to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantOutcome {
    /// Migrations ran.
    Applied(Applied),
    /// Nothing was pending.
    UpToDate,
    /// The tenant's transaction rolled back; it is where it was before the run.
    Failed(String),
}

/// One tenant's line in a [`MigrationReport`].
#[derive(Debug, Clone)]
pub struct TenantMigration {
    pub slug: Slug,
    pub outcome: TenantOutcome,
}

/// The result of a tenant migration run.
#[derive(Debug, Clone, Default)]
pub struct MigrationReport {
    /// Tenants that were visited, in the order they finished.
    pub visited: Vec<TenantMigration>,
    /// Tenants the catalog showed to be current, so not visited.
    pub skipped_current: u64,
}

impl MigrationReport {
    /// Tenants where migrations ran.
    pub fn applied(&self) -> usize {
        self.count(|o| matches!(o, TenantOutcome::Applied(a) if a.count > 0))
    }

    /// Tenants with nothing pending, visited or not.
    pub fn up_to_date(&self) -> u64 {
        self.skipped_current
            + self.count(|o| {
                matches!(o, TenantOutcome::UpToDate)
                    || matches!(o, TenantOutcome::Applied(a) if a.count == 0)
            }) as u64
    }

    /// Tenants whose migration failed.
    pub fn failures(&self) -> impl Iterator<Item = (&Slug, &str)> {
        self.visited.iter().filter_map(|t| match &t.outcome {
            TenantOutcome::Failed(error) => Some((&t.slug, error.as_str())),
            _ => None,
        })
    }

    fn count(&self, pred: impl Fn(&TenantOutcome) -> bool) -> usize {
        self.visited.iter().filter(|t| pred(&t.outcome)).count()
    }
}

/// Migrates tenant schemas, `options.jobs` at a time. One tenant's failure does not stop the
/// others. `started` is told how many tenants will be visited, `progress` each one's outcome.
pub async fn migrate_tenants(
    pools: &Pools,
    migrations: &Migrations,
    options: &MigrateOptions,
    started: impl FnOnce(usize),
    progress: impl Fn(&TenantMigration),
) -> Result<MigrationReport, Error> {
    let slug = options.tenant.as_ref().map(Slug::as_str);
    let (tenants, skipped_current) = match pools.sqlite_home() {
        Some(home) => {
            let fingerprint = migrations.sqlite_tenant()?.1;
            home.to_migrate(fingerprint, options.verify, slug).await?
        }
        None => stale_tenants(pools.catalog()?, migrations, options.verify, slug).await?,
    };
    if let Some(slug) = &options.tenant
        && tenants.is_empty()
        && skipped_current == 0
    {
        return Err(Error::TenantNotFound(slug.to_string()));
    }
    started(tenants.len());
    let mut visited = Vec::with_capacity(tenants.len());
    let mut runs = futures::stream::iter(tenants)
        .map(|tenant| async move {
            let outcome = match migrate_tenant(pools, tenant.clone(), migrations).await {
                Ok(applied) if applied.count == 0 => TenantOutcome::UpToDate,
                Ok(applied) => TenantOutcome::Applied(applied),
                Err(error) => TenantOutcome::Failed(error.to_string()),
            };
            TenantMigration {
                slug: tenant.slug,
                outcome,
            }
        })
        .buffer_unordered(options.jobs.max(1));
    while let Some(result) = runs.next().await {
        progress(&result);
        visited.push(result);
    }
    Ok(MigrationReport {
        visited,
        skipped_current: u64::try_from(skipped_current).unwrap_or_default(),
    })
}

/// Tenants of a PostgreSQL catalog whose migrations may be pending (all with `verify`), and
/// how many are current.
async fn stale_tenants(
    pool: &PgPool,
    migrations: &Migrations,
    verify: bool,
    slug: Option<&str>,
) -> Result<(Vec<Tenant>, i64), Error> {
    let rows: Vec<TenantRow> = pooler::query_as(select_tenants!(
        "WHERE ($1 OR t.migration_fingerprint IS DISTINCT FROM $2) \
         AND ($3::text IS NULL OR t.slug = $3) AND t.isolation <> 'shared' ORDER BY t.slug"
    ))
    .bind(verify)
    .bind(migrations.tenant_fingerprint())
    .bind(slug)
    .fetch_all(pooler::Pinned(pool))
    .await?;
    let skipped_current: i64 = pooler::query_scalar(
        "SELECT count(*) FROM tenantry.tenants WHERE ($3::text IS NULL OR slug = $3) \
         AND (isolation = 'shared' OR (migration_fingerprint = $1 AND NOT $2))",
    )
    .bind(migrations.tenant_fingerprint())
    .bind(verify)
    .bind(slug)
    .fetch_one(pooler::Pinned(pool))
    .await?;
    let tenants = rows
        .into_iter()
        .map(Tenant::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((tenants, skipped_current))
}

/// Migrates one tenant in one transaction. In the catalog's own database the catalog record
/// is part of it; elsewhere it follows the commit (a lost record only means the next
/// run visits the tenant again and finds nothing pending).
async fn migrate_tenant(
    pools: &Pools,
    tenant: Tenant,
    migrations: &Migrations,
) -> Result<Applied, Error> {
    let pool = pools
        .for_placement(&tenant.placement, Access::Owner)
        .await?;
    let mut tx = TenantTransaction::begin(&pool, Arc::new(tenant.clone())).await?;
    if let (Some(home), Some(conn)) = (pools.sqlite_home(), tx.sqlite()) {
        let (migrator, fingerprint) = migrations.sqlite_tenant()?;
        let applied = sqlite::apply_pending(conn, migrator).await?;
        tx.commit().await?;
        home.record(&tenant, fingerprint, &applied).await?;
        return Ok(applied);
    }
    let Some(conn) = tx.postgres() else {
        return Err(Error::Migration("not a PostgreSQL tenant".into()));
    };
    let applied = migrate_schema(conn, &tenant.placement.schema, migrations, pools.role()).await?;
    if tenant.placement.in_catalog_database() {
        record(conn, &tenant, migrations, &applied).await?;
        tx.commit().await?;
    } else {
        tx.commit().await?;
        let mut catalog = safe_transaction::begin(pools.catalog()?, None).await?;
        record(&mut catalog, &tenant, migrations, &applied).await?;
        catalog.commit().await?;
    }
    Ok(applied)
}
