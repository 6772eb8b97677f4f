//! [`TenantDomains`]: a handler's view of its own tenant's domains, to claim, check and
//! remove custom ones from the tenant's own pages.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::catalog::{Domain, DomainClaim};
use crate::dns::DnsResolver;
use crate::error::Error;
use crate::host::HostName;
use crate::http::rejection::TenancyRejection;
use crate::http::scope::{RequestScope, SettingsWriter};
use crate::lifecycle::DomainCheck;
use crate::tenancy::Tenancy;
use crate::tenant::Tenant;

/// The request's own tenant's domains: never another tenant's. A dedicated tenant's own
/// server cannot reach the catalog; there [`available`](Self::available) is false and its
/// operator manages its domains.
pub struct TenantDomains {
    tenant: Arc<Tenant>,
    tenancy: Option<Tenancy>,
}

impl<S: Send + Sync> FromRequestParts<S> for TenantDomains {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let scope = RequestScope::of(parts)?;
        let tenancy = match &scope.settings {
            SettingsWriter::Catalog(tenancy) => Some(tenancy.clone()),
            SettingsWriter::Router(_) | SettingsWriter::None => None,
        };
        Ok(Self {
            tenant: scope.tenant.clone(),
            tenancy,
        })
    }
}

impl TenantDomains {
    /// Whether this server can change the tenant's domains.
    pub fn available(&self) -> bool {
        self.tenancy.is_some()
    }

    fn tenancy(&self) -> Result<&Tenancy, Error> {
        self.tenancy.as_ref().ok_or_else(|| Error::Invalid {
            field: "domain",
            message: "this server cannot change the tenant's domains: its operator does".into(),
        })
    }

    /// The tenant's routed domains (the primary one first) and its claims waiting for
    /// their DNS record.
    pub async fn list(&self) -> Result<(Vec<Domain>, Vec<DomainClaim>), Error> {
        let tenancy = self.tenancy()?;
        let slug = &self.tenant.slug;
        let domains = tenancy.catalog().details(slug).await?.domains;
        Ok((domains, tenancy.domain_claims(slug).await?))
    }

    /// Claims `domain` ([`Tenancy::claim_domain`]).
    pub async fn claim(&self, domain: &HostName) -> Result<DomainClaim, Error> {
        self.tenancy()?
            .claim_domain(&self.tenant.slug, domain)
            .await
    }

    /// Checks the claim of `domain` now ([`Tenancy::check_domain_claim`]).
    pub async fn check(&self, domain: &HostName, dns: &DnsResolver) -> Result<DomainCheck, Error> {
        let tenancy = self.tenancy()?;
        tenancy
            .check_domain_claim(&self.tenant.slug, domain, dns)
            .await
    }

    /// Removes a custom domain or withdraws a claim ([`Tenancy::remove_domain`]).
    pub async fn remove(&self, domain: &HostName) -> Result<(), Error> {
        self.tenancy()?
            .remove_domain(&self.tenant.slug, domain)
            .await
    }
}
