//! Identifying a request: the host it names, then the tenant (or the public site) the
//! [`Identification`] strategies find for it in the catalog.

use std::sync::Arc;

use axum::http::{HeaderMap, Uri, header, uri::PathAndQuery};

use super::rejection::TenancyRejection;
use crate::catalog::TenantCatalog;
use crate::host::{HostError, HostName};
use crate::identify::{Identification, PATH_PREFIX, Strategy};
use crate::slug::Slug;
use crate::tenant::Tenant;

/// What a request is for.
pub(crate) enum Identified {
    /// The platform's own site: the base domain (or `www`) with no tenant named.
    Public,
    /// One of the platform's own sites, `<name>.<base domain>`.
    Site(Slug),
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
        let label = host.subdomain_of(self.base_domain.as_str());
        if let Some(site) = self.sites.iter().find(|site| Some(site.as_str()) == label) {
            return Ok(Identified::Site(site.clone()));
        }
        // `www.<base>` is the base domain under another name.
        let www = label == Some("www");
        let on_base = *host == self.base_domain || www;
        for strategy in &self.strategies {
            match strategy {
                Strategy::Domain => {
                    if let Some(found) = catalog.by_domain(host).await? {
                        return Ok(tenant(found));
                    }
                }
                Strategy::Subdomain => {
                    if let Some(label) = label.filter(|_| !www) {
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
}
