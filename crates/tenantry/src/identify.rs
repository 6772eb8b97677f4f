//! Identification: which tenant a request is for, by composable strategies tried in order.

use std::str::FromStr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, Uri, header, uri::PathAndQuery};

use crate::catalog::TenantCatalog;
use crate::host::{HostError, HostName};
use crate::rejection::TenancyRejection;
use crate::slug::Slug;
use crate::tenant::Tenant;

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

/// Where to find tenants: the base domain and the strategies, in the order they are tried.
#[derive(Debug, Clone)]
pub struct Identification {
    /// The public site's host, e.g. `polls.localhost`; tenants live one label below it.
    pub base_domain: HostName,
    pub strategies: Vec<Strategy>,
}

impl Identification {
    /// Domain, then subdomain, then path prefix; the header strategy is off.
    pub fn new(base_domain: HostName) -> Self {
        Self {
            base_domain,
            strategies: vec![Strategy::Domain, Strategy::Subdomain, Strategy::PathPrefix],
        }
    }
}

/// What a request is for.
pub(crate) enum Identified {
    /// The platform's own site: the base domain with no tenant named.
    Public,
    /// A tenant; `mount` is the path prefix the tenant's routes sit under (`""` or `/t/thor`),
    /// `uri` the request's URI with that prefix removed.
    Tenant {
        tenant: Arc<Tenant>,
        mount: String,
        uri: Option<Uri>,
    },
}

/// The host of a request: the `Host` header, or the URI's authority (HTTP/2).
pub(crate) fn request_host(headers: &HeaderMap, uri: &Uri) -> Result<HostName, HostError> {
    if headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Err(HostError::Duplicate);
    }
    match headers.get(header::HOST) {
        Some(value) => HostName::parse(value.to_str().map_err(|_| HostError::Invalid)?),
        None => HostName::parse(uri.authority().ok_or(HostError::Missing)?.as_str()),
    }
}

/// Splits `/t/<slug>/rest` into the slug and `/rest`.
fn split_path_prefix(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(PATH_PREFIX)?;
    Some(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// The tenant a request names by slug; a label that cannot be a slug names no tenant.
async fn by_label(
    catalog: &TenantCatalog,
    label: &str,
) -> Result<Option<Arc<Tenant>>, crate::Error> {
    match Slug::parse(label) {
        Ok(slug) => catalog.by_slug(&slug).await,
        Err(_) => Ok(None),
    }
}

impl Identification {
    /// The tenant (or the public site) a request is for, looked up in `catalog`.
    pub(crate) async fn identify(
        &self,
        catalog: &TenantCatalog,
        host: &HostName,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Identified, TenancyRejection> {
        let tenant = |tenant| Identified::Tenant {
            tenant,
            mount: String::new(),
            uri: None,
        };
        let on_base = *host == self.base_domain;
        for strategy in &self.strategies {
            match strategy {
                Strategy::Domain => {
                    if let Some(found) = catalog.by_domain(host).await? {
                        return Ok(tenant(found));
                    }
                }
                Strategy::Subdomain => {
                    if let Some(label) = host.subdomain_of(self.base_domain.as_str()) {
                        let found = by_label(catalog, label).await?;
                        return found
                            .map(tenant)
                            .ok_or_else(|| TenancyRejection::NoTenantForHost(host.to_string()));
                    }
                }
                Strategy::PathPrefix if on_base => {
                    if let Some((label, rest)) = split_path_prefix(uri.path()) {
                        let found = by_label(catalog, label).await?;
                        let found = found
                            .ok_or_else(|| TenancyRejection::NoTenantNamed(label.to_owned()))?;
                        let path_and_query = match uri.query() {
                            Some(query) => format!("{rest}?{query}"),
                            None => rest.to_owned(),
                        };
                        let mut parts = uri.clone().into_parts();
                        parts.path_and_query = Some(
                            PathAndQuery::try_from(path_and_query)
                                .map_err(|_| TenancyRejection::NoTenantNamed(label.to_owned()))?,
                        );
                        return Ok(Identified::Tenant {
                            mount: format!("{PATH_PREFIX}{}", found.slug),
                            tenant: found,
                            uri: Uri::from_parts(parts).ok(),
                        });
                    }
                }
                Strategy::Header(name) if on_base => {
                    if let Some(value) = headers.get(name) {
                        let label = value.to_str().unwrap_or_default();
                        let found = by_label(catalog, label).await?;
                        return found
                            .map(tenant)
                            .ok_or_else(|| TenancyRejection::NoTenantNamed(label.to_owned()));
                    }
                }
                Strategy::PathPrefix | Strategy::Header(_) => {}
            }
        }
        if on_base {
            Ok(Identified::Public)
        } else {
            Err(TenancyRejection::NoTenantForHost(host.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_path_prefix() {
        assert_eq!(
            split_path_prefix("/t/thor/polls/"),
            Some(("thor", "/polls/"))
        );
        assert_eq!(split_path_prefix("/t/thor"), Some(("thor", "/")));
        assert_eq!(split_path_prefix("/t/thor/"), Some(("thor", "/")));
        assert_eq!(split_path_prefix("/polls/"), None);
        assert_eq!(split_path_prefix("/tx/thor/"), None);
    }

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
