//! Custom domains a tenant brings: claimed (not routed), verified by a DNS TXT record
//! `_tenantry.<domain>` holding the claim's token, then routed like any of its domains. A
//! check runs on demand ([`Tenancy::check_domain_claim`]) and in the background with backoff
//! ([`DomainChecks`]).

use std::time::Duration;

use chrono::Utc;

use super::every::Every;
use crate::catalog::{DomainClaim, DueClaim};
use crate::dns::DnsResolver;
use crate::error::Error;
use crate::host::HostName;
use crate::secret::random_token;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{Tenant, TenantStatus};

/// How many unverified claims a tenant may hold at once.
pub const MAX_CLAIMS: usize = 20;

/// What a check of a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainCheck {
    /// The record holds the token: the domain is the tenant's and is routed.
    Verified,
    /// No proof yet, and why, as a sentence for the person waiting on it.
    NotYet(String),
}

impl Tenancy {
    /// Claims `domain` for the tenant: it is not routed until
    /// [`check_domain_claim`](Self::check_domain_claim) (or the background [`DomainChecks`])
    /// finds the claim's token in the TXT record `_tenantry.<domain>`. Claiming a domain the
    /// tenant already claims returns that claim, token unchanged.
    pub async fn claim_domain(&self, slug: &Slug, domain: &HostName) -> Result<DomainClaim, Error> {
        self.check_domain(domain)?;
        let details = self.catalog().details(slug).await?;
        if details.domains.iter().any(|d| d.domain == domain.as_str()) {
            return Err(Error::Invalid {
                field: "domain",
                message: format!("'{domain}' is already one of '{slug}''s domains"),
            });
        }
        if let Some(owner) = self.catalog().by_domain(domain).await? {
            debug_assert_ne!(owner.id, details.tenant.id);
            return Err(Error::DomainTaken(domain.to_string()));
        }
        let claims = self.catalog().claims(details.tenant.id).await?;
        if claims.len() >= MAX_CLAIMS && !claims.iter().any(|c| c.domain == domain.as_str()) {
            return Err(Error::Invalid {
                field: "domain",
                message: format!(
                    "'{slug}' has {MAX_CLAIMS} domains waiting for verification: verify or \
                     remove one first"
                ),
            });
        }
        self.catalog()
            .insert_claim(details.tenant.id, domain.as_str(), &random_token())
            .await
    }

    /// The tenant's claims waiting for verification, by domain.
    pub async fn domain_claims(&self, slug: &Slug) -> Result<Vec<DomainClaim>, Error> {
        let details = self.catalog().details(slug).await?;
        self.catalog().claims(details.tenant.id).await
    }

    /// Looks up the TXT record of the tenant's claim of `domain` with `dns` now; if it holds
    /// the claim's token, the domain is routed from the moment this returns.
    pub async fn check_domain_claim(
        &self,
        slug: &Slug,
        domain: &HostName,
        dns: &DnsResolver,
    ) -> Result<DomainCheck, Error> {
        let details = self.catalog().details(slug).await?;
        let Some(claim) = self
            .catalog()
            .claim(details.tenant.id, domain.as_str())
            .await?
        else {
            return match details.domains.iter().any(|d| d.domain == domain.as_str()) {
                true => Ok(DomainCheck::Verified),
                false => Err(Error::DomainNotFound(domain.to_string())),
            };
        };
        self.check_claim(&details.tenant, &claim.domain, &claim.token, dns)
            .await
    }

    async fn check_claim(
        &self,
        tenant: &Tenant,
        domain: &str,
        token: &str,
        dns: &DnsResolver,
    ) -> Result<DomainCheck, Error> {
        let record = format!("_tenantry.{domain}");
        let outcome = match dns.txt(&record).await {
            Ok(texts) if texts.iter().any(|text| text.trim() == token) => {
                self.verify_claim(tenant, domain).await?
            }
            Ok(texts) => DomainCheck::NotYet(format!(
                "the TXT record at {record} holds {}, not this claim's token",
                texts.join(" and ")
            )),
            Err(reason) => DomainCheck::NotYet(reason),
        };
        if let DomainCheck::NotYet(reason) = &outcome {
            self.catalog()
                .record_failed_check(tenant.id, domain, reason)
                .await?;
        }
        Ok(outcome)
    }

    /// Moves a proven claim into the tenant's domains, in one catalog transaction.
    async fn verify_claim(&self, tenant: &Tenant, domain: &str) -> Result<DomainCheck, Error> {
        let mut tx = self.catalog().begin().await?;
        let locked = tx.lock(&tenant.slug).await?;
        if locked.id != tenant.id || !tx.take_claim(&locked, domain).await? {
            // Renamed, deleted, or verified by another check meanwhile.
            return Ok(DomainCheck::NotYet(format!(
                "the claim of {domain} changed while it was checked: check again"
            )));
        }
        match tx.insert_domain(&locked, domain, false).await {
            Ok(()) => {}
            Err(Error::DomainTaken(_)) => {
                return Ok(DomainCheck::NotYet(format!(
                    "{domain} was verified by another tenant first"
                )));
            }
            Err(other) => return Err(other),
        }
        tx.commit().await?;
        self.catalog().invalidate();
        tracing::info!(tenant = %locked.slug, %domain, "custom domain verified");
        #[cfg(feature = "dedicated")]
        self.restart_for_hosts(&locked).await?;
        Ok(DomainCheck::Verified)
    }

    /// Whether `host` may have a TLS certificate issued on demand: one of the platform's own
    /// names (the base domain, `www`, a named site) or a routed domain of an active tenant.
    pub async fn serves_host(&self, host: &HostName) -> Result<bool, Error> {
        let identification = self.identification();
        let base = identification.base_domain.as_str();
        let own = match host.subdomain_of(base) {
            Some(label) => {
                label == "www" || identification.sites.iter().any(|s| s.as_str() == label)
            }
            None => host == &identification.base_domain,
        };
        if own {
            return Ok(true);
        }
        let tenant = self.catalog().by_domain(host).await?;
        Ok(tenant.is_some_and(|t| t.status == TenantStatus::Active))
    }
}

/// When to check claims in the background: soon after they are made, then less and less
/// often while no proof turns up.
#[derive(Debug, Clone, Copy)]
pub struct DomainCheckSchedule {
    /// The wait after the first failed check; it doubles after each.
    pub first_retry: Duration,
    /// The longest wait between two checks.
    pub max_retry: Duration,
    /// How often the sweep looks for claims that are due.
    pub tick: Duration,
}

impl Default for DomainCheckSchedule {
    /// A minute, doubling to at most an hour; due claims looked for every second.
    fn default() -> Self {
        Self {
            first_retry: Duration::from_secs(60),
            max_retry: Duration::from_secs(3600),
            tick: Duration::from_secs(1),
        }
    }
}

impl DomainCheckSchedule {
    /// The wait after `checks` failed checks.
    fn backoff(&self, checks: i32) -> Duration {
        let doublings = u32::try_from(checks).unwrap_or(0).min(20);
        self.first_retry
            .saturating_mul(1 << doublings)
            .min(self.max_retry)
    }
}

/// Checks due claims in the background, each process taking a claim at a time by moving its
/// next check forward first; it stops when dropped.
#[derive(Debug)]
pub struct DomainChecks {
    _task: Every,
}

impl DomainChecks {
    /// Starts the checks on the current Tokio runtime.
    pub fn start(tenancy: Tenancy, dns: DnsResolver, schedule: DomainCheckSchedule) -> Self {
        let round = move || {
            let (tenancy, dns) = (tenancy.clone(), dns.clone());
            async move { check_due(&tenancy, &dns, &schedule).await }
        };
        Self {
            _task: Every::start(schedule.tick, "the check of claimed domains", round),
        }
    }
}

/// One round: every due claim this process manages to take, checked one by one.
async fn check_due(
    tenancy: &Tenancy,
    dns: &DnsResolver,
    schedule: &DomainCheckSchedule,
) -> Result<(), Error> {
    let now = Utc::now().timestamp();
    for claim in tenancy.catalog().due_claims(now, 100).await? {
        let wait = i64::try_from(schedule.backoff(claim.checks).as_secs()).unwrap_or(i64::MAX);
        if !tenancy
            .catalog()
            .lease_claim(&claim, now.saturating_add(wait.max(1)))
            .await?
        {
            continue;
        }
        check_one(tenancy, dns, &claim).await?;
    }
    Ok(())
}

async fn check_one(tenancy: &Tenancy, dns: &DnsResolver, claim: &DueClaim) -> Result<(), Error> {
    let Some(tenant) = tenancy.catalog().current(claim.tenant_id).await? else {
        return Ok(());
    };
    if tenant.status != TenantStatus::Active {
        return Ok(());
    }
    let outcome = tenancy
        .check_claim(&tenant, &claim.domain, &claim.token, dns)
        .await?;
    if outcome == DomainCheck::Verified {
        let target = tenant.slug.as_str();
        tenancy
            .catalog()
            .audit("domain-check", "domain.verify", Some(target), "ok")
            .await?;
    }
    Ok(())
}
