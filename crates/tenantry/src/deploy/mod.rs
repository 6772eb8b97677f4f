//! Routing and deployment files written from the catalog: an nginx configuration that sends
//! each dedicated tenant's hosts to its own server, as the book's architecture does by hand.

use std::fmt::Write;

use crate::error::Error;
use crate::tenancy::Tenancy;
use crate::tenant::TenantStatus;

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
    let mut config = String::from(
        "# Written by `deploy nginx` from the tenant catalog; regenerate it after a change.\n",
    );
    let shared = &options.shared;
    writeln!(
        config,
        "upstream tenantry_shared {{\n    server {shared};\n}}"
    )
    .ok();
    for details in tenancy.catalog().list().await? {
        let tenant = &details.tenant;
        if tenant.status != TenantStatus::Active || !tenancy.has_own_server(tenant) {
            continue;
        }
        let port = servers
            .iter()
            .find(|s| s.tenant_id == tenant.id && s.host == host)
            .and_then(|s| s.pid.and(s.port));
        let Some(port) = port else {
            continue;
        };
        let names: Vec<&str> = details.domains.iter().map(|d| d.domain.as_str()).collect();
        let upstream = format!("tenantry_tenant_{}", tenant.slug.as_str().replace('-', "_"));
        writeln!(
            config,
            "upstream {upstream} {{\n    server 127.0.0.1:{port};\n    server {shared} backup;\n}}\n\
             server {{\n    listen {listen};\n    server_name {names};\n{location}}}",
            listen = options.listen,
            names = names.join(" "),
            location = location(&upstream),
        )
        .ok();
    }
    writeln!(
        config,
        "server {{\n    listen {} default_server;\n    server_name _;\n{}}}",
        options.listen,
        location("tenantry_shared")
    )
    .ok();
    Ok(config)
}

/// A `location /` that proxies to `upstream`, keeping the host and saying who asked.
fn location(upstream: &str) -> String {
    format!(
        "    location / {{\n        proxy_pass http://{upstream};\n        \
         proxy_set_header Host $host;\n        \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        \
         proxy_set_header X-Forwarded-Proto $scheme;\n        \
         proxy_set_header X-Forwarded-Prefix \"\";\n        \
         proxy_next_upstream error timeout;\n    }}\n"
    )
}
