//! [`site_url`]: where a tenant's site is, as a client of the public site reaches it.

use axum::http::{HeaderMap, header};

use crate::catalog::TenantDetails;
use crate::identify::{PATH_PREFIX, Strategy};
use crate::tenancy::Tenancy;

/// The address of `tenant`'s site, for a client that reached the public site with
/// `headers` (its scheme and port): `http://thor.polls.localhost:8000`, or
/// `http://polls.localhost:8000/t/thor` where tenants are told by path alone. For the
/// links signup and the console send a browser to.
pub fn site_url(tenancy: &Tenancy, tenant: &TenantDetails, headers: &HeaderMap) -> String {
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let scheme = if https { "https" } else { "http" };
    let port = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.rsplit_once(':'))
        .map(|(_, port)| port)
        .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let identification = tenancy.identification();
    let by_host = identification
        .strategies
        .iter()
        .any(|s| matches!(s, Strategy::Domain | Strategy::Subdomain));
    let slug = &tenant.tenant.slug;
    match by_host {
        true => {
            let host = tenant
                .domains
                .iter()
                .find(|d| d.is_primary)
                .map_or_else(|| tenancy.primary_domain(slug), |d| d.domain.clone());
            format!("{scheme}://{host}{port}")
        }
        false => format!(
            "{scheme}://{}{port}{PATH_PREFIX}{slug}",
            identification.base_domain
        ),
    }
}
