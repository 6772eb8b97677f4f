//! Identification: how a request names its tenant, by composable strategies tried in order
//! (`http::identify` applies them to requests).

use std::str::FromStr;

use axum::http::HeaderName;

use crate::error::Error;
use crate::host::HostName;
use crate::slug::Slug;

/// The URL path prefix of the [`Strategy::PathPrefix`] strategy: `/t/<slug>/...`.
pub const PATH_PREFIX: &str = "/t/";

/// One way of telling the tenant from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The host is one of a tenant's domains (custom domains, and every primary domain).
    Domain,
    /// The host is `<slug>.<base domain>`.
    Subdomain,
    /// On the base domain, the path starts with `/t/<slug>/`; the rest is routed as the
    /// tenant's path.
    PathPrefix,
    /// On the base domain, a request header names the slug (`X-Tenant: thor`). Off unless
    /// configured.
    Header(HeaderName),
}

impl FromStr for Strategy {
    type Err = String;

    /// Parses `domain`, `subdomain`, `path`, `header` (for `X-Tenant`) or `header:<name>`.
    fn from_str(value: &str) -> Result<Self, String> {
        match value.trim() {
            "domain" => Ok(Self::Domain),
            "subdomain" => Ok(Self::Subdomain),
            "path" => Ok(Self::PathPrefix),
            "header" => Ok(Self::Header(HeaderName::from_static("x-tenant"))),
            other => match other.strip_prefix("header:") {
                Some(name) => HeaderName::from_str(name)
                    .map(Self::Header)
                    .map_err(|_| format!("'{name}' is not a valid header name")),
                None => Err(format!(
                    "unknown strategy '{other}' (expected domain, subdomain, path, header or header:<name>)"
                )),
            },
        }
    }
}

/// Where to find tenants: the base domain and the strategies, in the order they are tried,
/// and the base domain's own sites.
///
/// ```
/// use tenantry::{HostName, Identification, Strategy};
///
/// let base = HostName::parse("polls.localhost")?;
/// let mut identification = Identification::new(base);
/// identification.strategies = vec![Strategy::Subdomain, "header:X-Org".parse()?];
/// assert_eq!(identification.strategies.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Identification {
    /// The public site's host, e.g. `polls.localhost`; tenants live one label below it.
    pub base_domain: HostName,
    /// The strategies, tried in order; the first that names a tenant wins.
    pub strategies: Vec<Strategy>,
    /// The platform's own sites one label below the base domain (`blog`, `help-center`):
    /// `<name>.<base domain>` is that site, never a tenant, and no tenant may take the name.
    /// The public site answers the base domain and `www.<base domain>`.
    pub sites: Vec<Slug>,
}

impl Identification {
    /// Domain, then subdomain, then path prefix; the header strategy is off.
    pub fn new(base_domain: HostName) -> Self {
        Self {
            base_domain,
            strategies: vec![Strategy::Domain, Strategy::Subdomain, Strategy::PathPrefix],
            sites: Vec::new(),
        }
    }

    /// Reserves `name` for a site of the platform's own (served by
    /// [`TenancyLayer::site`](crate::TenancyLayer::site)).
    pub fn with_site(mut self, name: Slug) -> Self {
        self.sites.push(name);
        self
    }

    /// Refuses `slug` for a tenant if a site of the platform has that name.
    pub(crate) fn tenant_may_take(&self, slug: &Slug) -> Result<(), Error> {
        match self.sites.contains(slug) {
            true => Err(Error::Invalid {
                field: "slug",
                message: format!("'{slug}' is the name of one of the platform's own sites"),
            }),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strategies() {
        assert_eq!("path".parse(), Ok(Strategy::PathPrefix));
        assert_eq!(
            "header".parse(),
            Ok(Strategy::Header(HeaderName::from_static("x-tenant")))
        );
        assert_eq!(
            "header:X-Org".parse(),
            Ok(Strategy::Header(HeaderName::from_static("x-org")))
        );
        assert!("cookie".parse::<Strategy>().is_err());
    }
}
