//! The PostgreSQL store's reads: schema `tenantry`, every statement unnamed and pinned to
//! one session ([`pooler::Pinned`]), so that a transaction pooler can stand in front.

use sqlx::PgPool;
use uuid::Uuid;

use super::row::assemble;
use super::{Domain, TenantDetails, TenantRow, select_tenants};
use crate::error::Error;
use crate::pooler;
use crate::tenant::Tenant;

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

/// Every tenant with its domains, by slug.
pub(super) async fn list(pool: &PgPool) -> Result<Vec<TenantDetails>, Error> {
    let rows: Vec<TenantRow> = pooler::query_as(select_tenants!("ORDER BY t.slug"))
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
