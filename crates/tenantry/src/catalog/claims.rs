//! Claims of custom domains: a tenant has asked for a domain and not yet shown, by a DNS TXT
//! record holding the claim's token, that it owns it. A claim is never routed; verifying it
//! moves the domain into the domains table ([`CatalogTx::take_claim`](super::CatalogTx)).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::TenantCatalog;
use crate::error::Error;

/// A custom domain waiting for its owner to show the DNS record that proves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct DomainClaim {
    /// The domain asked for.
    pub domain: String,
    /// What the TXT record at [`DomainClaim::record_name`] must hold.
    pub token: String,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// How many checks have found no proof yet.
    pub checks: i32,
    /// When the background check next looks (Unix seconds).
    pub next_check_at: i64,
    /// When it was last checked.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Why the last check found no proof.
    pub last_error: Option<String>,
}

impl DomainClaim {
    /// The name of the TXT record that proves the claim: `_tenantry.<domain>`.
    pub fn record_name(&self) -> String {
        format!("_tenantry.{}", self.domain)
    }
}

/// A claim the background check is due to look at.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DueClaim {
    pub tenant_id: Uuid,
    pub domain: String,
    pub token: String,
    pub checks: i32,
    pub next_check_at: i64,
}

impl TenantCatalog {
    /// Records `tenant`'s claim of `domain` with `token`, due for a check at once; a claim the
    /// tenant already holds is kept as it is. Returns the claim as stored.
    pub(crate) async fn insert_claim(
        &self,
        tenant: Uuid,
        domain: &str,
        token: &str,
    ) -> Result<DomainClaim, Error> {
        on_store!(
            &self.inner.store,
            query,
            "INSERT INTO tenantry.domain_claims (tenant_id, domain, token, created_at, \
             next_check_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            [tenant, domain, token, Utc::now(), Utc::now().timestamp()],
            execute
        )?;
        self.claim(tenant, domain)
            .await?
            .ok_or_else(|| Error::DomainNotFound(domain.to_owned()))
    }

    /// `tenant`'s claim of `domain`, if it holds one.
    pub(crate) async fn claim(
        &self,
        tenant: Uuid,
        domain: &str,
    ) -> Result<Option<DomainClaim>, Error> {
        Ok(on_store!(
            &self.inner.store,
            query_as,
            "SELECT domain, token, created_at, checks, next_check_at, last_checked_at, \
             last_error FROM tenantry.domain_claims WHERE tenant_id = $1 AND domain = $2",
            [tenant, domain],
            fetch_optional
        )?)
    }

    /// The claims `tenant` holds, by domain.
    pub(crate) async fn claims(&self, tenant: Uuid) -> Result<Vec<DomainClaim>, Error> {
        Ok(on_store!(
            &self.inner.store,
            query_as,
            "SELECT domain, token, created_at, checks, next_check_at, last_checked_at, \
             last_error FROM tenantry.domain_claims WHERE tenant_id = $1 ORDER BY domain",
            [tenant],
            fetch_all
        )?)
    }

    /// Withdraws `tenant`'s claim of `domain`; whether there was one.
    pub(crate) async fn delete_claim(&self, tenant: Uuid, domain: &str) -> Result<bool, Error> {
        let done = on_store!(
            &self.inner.store,
            query,
            "DELETE FROM tenantry.domain_claims WHERE tenant_id = $1 AND domain = $2",
            [tenant, domain],
            execute
        )?;
        Ok(done > 0)
    }

    /// Up to `limit` claims whose next check is due at `now` (Unix seconds), the longest
    /// waiting first.
    pub(crate) async fn due_claims(&self, now: i64, limit: i64) -> Result<Vec<DueClaim>, Error> {
        Ok(on_store!(
            &self.inner.store,
            query_as,
            "SELECT tenant_id, domain, token, checks, next_check_at \
             FROM tenantry.domain_claims WHERE next_check_at <= $1 \
             ORDER BY next_check_at LIMIT $2",
            [now, limit],
            fetch_all
        )?)
    }

    /// Takes `claim` for one check by moving its next check to `next` (Unix seconds), unless
    /// another process took it first; whether this one did.
    pub(crate) async fn lease_claim(&self, claim: &DueClaim, next: i64) -> Result<bool, Error> {
        let done = on_store!(
            &self.inner.store,
            query,
            "UPDATE tenantry.domain_claims SET next_check_at = $1 \
             WHERE tenant_id = $2 AND domain = $3 AND next_check_at = $4",
            [next, claim.tenant_id, &claim.domain, claim.next_check_at],
            execute
        )?;
        Ok(done > 0)
    }

    /// Records a check of `tenant`'s claim of `domain` that found no proof, and why.
    pub(crate) async fn record_failed_check(
        &self,
        tenant: Uuid,
        domain: &str,
        error: &str,
    ) -> Result<(), Error> {
        on_store!(
            &self.inner.store,
            query,
            "UPDATE tenantry.domain_claims SET checks = checks + 1, last_checked_at = $1, \
             last_error = $2 WHERE tenant_id = $3 AND domain = $4",
            [Utc::now(), error, tenant, domain],
            execute
        )?;
        Ok(())
    }
}
