//! Custom domains: the site's addresses, and the domains its staff claim, each routed once
//! its DNS TXT record shows the token this page gives.

use askama::Template;
use axum::Extension;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tenantry::catalog::{Domain, DomainClaim};
use tenantry::dns::DnsResolver;
use tenantry::http::TenantDomains;
use tenantry::lifecycle::DomainCheck;
use tenantry::{HostName, TenantDb};

use super::{AdminError, CheckedForm, Chrome, Done, Site, Staff, done, page};

#[derive(Template)]
#[template(path = "admin/domains.html")]
struct DomainsPage {
    chrome: Chrome,
    editable: bool,
    domains: Vec<Domain>,
    claims: Vec<DomainClaim>,
    /// What the last change or check said; empty if nothing.
    error: String,
}

async fn domains_page(
    chrome: Chrome,
    domains: &TenantDomains,
    (status, error): (StatusCode, String),
) -> Result<Response, AdminError> {
    let (listed, claims) = match domains.available() {
        true => domains.list().await.map_err(api)?,
        false => Default::default(),
    };
    Ok(page(
        status,
        &DomainsPage {
            chrome,
            editable: domains.available(),
            domains: listed,
            claims,
            error,
        },
    ))
}

/// The page again after a change, saying what it did not do.
async fn again(
    staff: &Staff,
    site: &Site,
    domains: &TenantDomains,
    db: &mut TenantDb,
    said: (StatusCode, String),
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(site, staff, db).await?;
    domains_page(chrome, domains, said).await
}

fn api(error: tenantry::Error) -> AdminError {
    AdminError::Tenancy(error.into())
}

/// `GET /admin/domains`.
pub(super) async fn list(
    staff: Staff,
    site: Site,
    domains: TenantDomains,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(&site, &staff, &mut db).await?;
    domains_page(chrome, &domains, (StatusCode::OK, String::new())).await
}

#[derive(Deserialize)]
pub(super) struct DomainForm {
    #[serde(default)]
    op: String,
    #[serde(default)]
    domain: String,
}

/// The form's domain, or the page again saying why it is none.
fn parse(form: &DomainForm) -> Result<HostName, String> {
    let domain = form.domain.trim();
    HostName::parse_domain(domain).map_err(|_| {
        format!(
            "'{domain}' is not a domain name: letters, digits and '-' in labels separated by \
             dots, such as polls.example.com"
        )
    })
}

/// What a refused change says on the page, and with which status.
fn refused(error: tenantry::Error) -> Result<(StatusCode, String), AdminError> {
    match error.kind() {
        tenantry::ErrorKind::Invalid
        | tenantry::ErrorKind::Conflict
        | tenantry::ErrorKind::NotFound => Ok((StatusCode::BAD_REQUEST, error.to_string())),
        _ => Err(api(error)),
    }
}

/// `POST /admin/domains`: `claim` (the default), `check` (looks the claim's record up now)
/// or `remove` (a custom domain, or a claim) the form's domain, as `op` says.
pub(super) async fn change(
    staff: Staff,
    site: Site,
    domains: TenantDomains,
    Extension(dns): Extension<DnsResolver>,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<DomainForm>,
) -> Result<Response, AdminError> {
    let host = match parse(&form) {
        Ok(host) => host,
        Err(message) => {
            let refusal = (StatusCode::BAD_REQUEST, message);
            return again(&staff, &site, &domains, &mut db, refusal).await;
        }
    };
    let outcome = match form.op.as_str() {
        "" | "claim" => domains.claim(&host).await.map(|_| Done::DomainClaimed),
        "check" => match domains.check(&host, &dns).await {
            Ok(DomainCheck::Verified) => Ok(Done::DomainVerified),
            Ok(DomainCheck::NotYet(why)) => {
                let said = format!("{host} is not verified yet: {why}.");
                return again(&staff, &site, &domains, &mut db, (StatusCode::OK, said)).await;
            }
            Err(error) => Err(error),
        },
        "remove" => domains.remove(&host).await.map(|()| Done::DomainRemoved),
        _ => return Err(AdminError::NotFound),
    };
    match outcome {
        Ok(what) => Ok(done(&site, "/admin/domains", what)),
        Err(error) => again(&staff, &site, &domains, &mut db, refused(error)?).await,
    }
}
