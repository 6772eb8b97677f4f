//! The nginx configuration: each dedicated tenant's hosts to its own server, everything
//! else to the shared server, as the book's architecture does by hand.

use std::fmt::Write;

use super::dedicated;
use crate::error::Error;
use crate::tenancy::Tenancy;

/// Where the nginx configuration sends requests.
#[derive(Debug, Clone)]
pub struct NginxOptions {
    /// The port nginx listens on.
    pub listen: u16,
    /// The shared server (`host:port`): the public site, pooled tenants, and dedicated
    /// tenants whose server does not answer (it starts them).
    pub shared: String,
}

/// The `http`-level nginx configuration (upstreams and servers) for the catalog as it is:
/// an active dedicated tenant whose server runs on this machine gets its hosts routed to
/// that server, with the shared server as backup; every other host goes to the shared
/// server. Regenerate it after a tenant, domain or server change.
pub async fn nginx(tenancy: &Tenancy, options: &NginxOptions) -> Result<String, Error> {
    let host = crate::dedicated::host_name();
    let servers = tenancy.instances().await?;
    let shared = &options.shared;
    let mut config = header();
    writeln!(
        config,
        "upstream tenantry_shared {{\n    server {shared};\n}}"
    )
    .ok();
    for tenant in dedicated(tenancy).await? {
        let port = servers
            .iter()
            .find(|s| s.tenant_id == tenant.id() && s.host == host)
            .and_then(|s| s.pid.and(s.port));
        let (true, Some(port)) = (tenant.active(), port) else {
            continue;
        };
        let upstream = format!(
            "tenantry_tenant_{}",
            tenant.slug().as_str().replace('-', "_")
        );
        writeln!(
            config,
            "upstream {upstream} {{\n    server 127.0.0.1:{port};\n    server {shared} backup;\n}}"
        )
        .ok();
        config.push_str(&server(
            options.listen,
            &tenant.domains,
            &Proxy::Upstream(&upstream),
        ));
    }
    config.push_str(&server(
        options.listen,
        &[],
        &Proxy::Upstream("tenantry_shared"),
    ));
    Ok(config)
}

fn header() -> String {
    "# Written by `deploy` from the tenant catalog; regenerate it after a change.\n".into()
}

/// Where a server block proxies to.
enum Proxy<'a> {
    /// A named `upstream` block.
    Upstream(&'a str),
    /// `host:port`, resolved when requests come (by the `resolver` the configuration
    /// names), so nginx starts while the host is not up yet.
    Resolved(&'a str),
}

/// A configuration for a container network whose DNS server is `resolver`: the hosts in
/// `routes` to their targets, every other host to `default`.
pub(super) fn resolved(
    listen: u16,
    resolver: &str,
    routes: &[(Vec<String>, String)],
    default: &str,
) -> String {
    let mut config = header();
    writeln!(config, "resolver {resolver} valid=10s;").ok();
    for (names, target) in routes {
        config.push_str(&server(listen, names, &Proxy::Resolved(target)));
    }
    config.push_str(&server(listen, &[], &Proxy::Resolved(default)));
    config
}

/// What nginx answers when it refuses a request itself (a malformed request line or header,
/// such as an invalid `Host`): JSON, as the app's errors are.
pub const ROUTER_REFUSAL: &str =
    r#"{"detail":"Bad request: the router refused its request line or a header (such as Host)."}"#;

/// What nginx answers, with status 503 and `Retry-After`, when no server behind it answers
/// (a tenant's server that died under the request, with the app down too): JSON, as the
/// app's own 503 is.
pub const ROUTER_UNAVAILABLE: &str =
    r#"{"detail":"The server behind the router is not available; retry shortly."}"#;

/// nginx's own refusals and failures, answered in JSON as the app's are: the statuses
/// nginx gives, the page's name, the status answered and its body.
const ERRORS: [(&str, &str, u16, &str); 5] = [
    ("400", "refused", 400, ROUTER_REFUSAL),
    (
        "413",
        "too-large",
        413,
        r#"{"detail":"Request body too large: at most 2 MiB."}"#,
    ),
    (
        "414",
        "uri-too-long",
        414,
        r#"{"detail":"The request URI is too long."}"#,
    ),
    (
        "494",
        "headers-too-large",
        431,
        r#"{"detail":"The request headers are too large."}"#,
    ),
    ("502 504", "unavailable", 503, ROUTER_UNAVAILABLE),
];

/// The `server` block's lines that answer [`ERRORS`] in JSON, and take bodies up to the app's
/// limit (axum's default, 2 MiB) before buffering them. The error pages are internal URIs,
/// not named locations: a request line nginx cannot parse has no URI, and redirecting it to
/// a named location fails with nginx's own 500.
fn errors() -> String {
    let mut lines = String::from("    client_max_body_size 2m;\n");
    for (codes, page, status, _) in ERRORS {
        lines.push_str(&format!(
            "    error_page {codes} ={status} /.tenantry/{page};\n"
        ));
    }
    for (_, page, status, body) in ERRORS {
        let retry = match status {
            503 => "        add_header Retry-After 1 always;\n",
            _ => "",
        };
        lines.push_str(&format!(
            "    location = /.tenantry/{page} {{\n        internal;\n        \
             default_type application/json;\n{retry}        return {status} '{body}';\n    }}\n"
        ));
    }
    lines
}

/// A `server` block for `names` (the default server when empty) that proxies to `proxy`,
/// keeping the host (with its port) as sent and saying who asked.
fn server(listen: u16, names: &[String], proxy: &Proxy) -> String {
    let (listen, names) = match names.is_empty() {
        true => (format!("{listen} default_server"), "_".to_owned()),
        false => (listen.to_string(), names.join(" ")),
    };
    let pass = match proxy {
        Proxy::Upstream(name) => format!("proxy_pass http://{name};"),
        Proxy::Resolved(target) => format!(
            "set $tenantry_upstream {target};\n        proxy_pass http://$tenantry_upstream;"
        ),
    };
    format!(
        "server {{\n    listen {listen};\n    server_name {names};\n{errors}    location / {{\n        \
         {pass}\n        \
         proxy_set_header Host $http_host;\n        \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        \
         proxy_set_header X-Forwarded-Proto $scheme;\n        \
         proxy_set_header X-Forwarded-Prefix \"\";\n        \
         proxy_set_header X-Tenantry-Router \"\";\n        \
         proxy_next_upstream error timeout;\n    }}\n}}\n",
        errors = errors(),
    )
}
