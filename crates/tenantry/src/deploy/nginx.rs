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
    let host = crate::layout::supervisor::host_name();
    let servers = tenancy.dedicated_servers().await?;
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

macro_rules! refusal {
    () => {
        r#"{"detail":"Bad request: the router refused its request line or a header (such as Host)."}"#
    };
}

macro_rules! too_large {
    () => {
        r#"{"detail":"Request body too large: at most 2 MiB."}"#
    };
}

macro_rules! unreachable_upstream {
    () => {
        r#"{"detail":"The server behind the router is not available; retry shortly."}"#
    };
}

/// What nginx answers when it refuses a request itself (a malformed request line or header,
/// such as an invalid `Host`): JSON, as the app's errors are.
pub const ROUTER_REFUSAL: &str = refusal!();

/// What nginx answers, with status 503 and `Retry-After`, when no server behind it answers
/// (a tenant's server that died under the request, with the app down too): JSON, as the
/// app's own 503 is.
pub const ROUTER_UNAVAILABLE: &str = unreachable_upstream!();

/// nginx's own refusals and failures as [`ROUTER_REFUSAL`] and [`ROUTER_UNAVAILABLE`], and
/// bodies over the app's limit (axum's default, 2 MiB) refused as JSON before they are
/// buffered.
const ERRORS: &str = concat!(
    "    client_max_body_size 2m;\n",
    "    error_page 400 @tenantry_refused;\n",
    "    error_page 413 @tenantry_too_large;\n",
    "    error_page 502 504 =503 @tenantry_unavailable;\n",
    "    location @tenantry_refused {\n",
    "        default_type application/json;\n",
    "        return 400 '",
    refusal!(),
    "';\n    }\n",
    "    location @tenantry_too_large {\n",
    "        default_type application/json;\n",
    "        return 413 '",
    too_large!(),
    "';\n    }\n",
    "    location @tenantry_unavailable {\n",
    "        default_type application/json;\n",
    "        add_header Retry-After 1 always;\n",
    "        return 503 '",
    unreachable_upstream!(),
    "';\n    }\n",
);

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
        "server {{\n    listen {listen};\n    server_name {names};\n{ERRORS}    location / {{\n        \
         {pass}\n        \
         proxy_set_header Host $http_host;\n        \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        \
         proxy_set_header X-Forwarded-Proto $scheme;\n        \
         proxy_set_header X-Forwarded-Prefix \"\";\n        \
         proxy_set_header X-Tenantry-Router \"\";\n        \
         proxy_next_upstream error timeout;\n    }}\n}}\n"
    )
}
