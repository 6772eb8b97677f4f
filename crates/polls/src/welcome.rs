//! What a browser gets at a tenant's root and at the public site's: a short page with the
//! ways in. API clients, which do not ask for HTML, keep their JSON.

use askama::Template;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Whether the request is a browser's: it asks for HTML before JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .unwrap_or_default();
    let position = |kind: &str| accept.find(kind);
    match (position("text/html"), position("application/json")) {
        (Some(html), Some(json)) => html < json,
        (html, _) => html.is_some(),
    }
}

/// The request's own `Host` header (with its port), or `fallback`.
fn host<'h>(headers: &'h HeaderMap, fallback: &'h str) -> &'h str {
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or(fallback)
}

/// The URL of the site the request reached, under `mount`.
fn base(headers: &HeaderMap, mount: &str) -> String {
    format!("http://{}{mount}", host(headers, "localhost"))
}

#[derive(Template)]
#[template(path = "welcome/tenant.html")]
struct TenantPage<'a> {
    name: &'a str,
    mount: &'a str,
    base: String,
}

/// A tenant's root page, named `name`, mounted at `mount`.
pub fn tenant(headers: &HeaderMap, name: &str, mount: &str) -> Response {
    let base = base(headers, mount);
    render(&TenantPage { name, mount, base })
}

#[derive(Template)]
#[template(path = "welcome/public.html")]
struct PublicPage<'a> {
    host: &'a str,
    base: String,
    /// Whether signup is open, to link to it.
    signup: bool,
}

/// The public site's root page, on the base domain `domain`; `signup` if it is open.
pub fn public(headers: &HeaderMap, domain: &str, signup: bool) -> Response {
    let base = base(headers, "");
    let host = host(headers, domain);
    render(&PublicPage { host, base, signup })
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a welcome page did not render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
