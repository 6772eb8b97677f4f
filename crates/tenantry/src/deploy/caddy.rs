//! The Caddyfile: Caddy in front of the app, with a certificate issued on demand for each
//! name the app confirms, so that tenants' custom domains get HTTPS once they are verified.

use std::fmt::Write;

use crate::http::TLS_ASK_PATH;
use crate::tenancy::Tenancy;

/// How Caddy runs in front of the app.
#[derive(Debug, Clone)]
pub struct CaddyOptions {
    /// The app's server (`host:port`) every request goes to.
    pub upstream: String,
    /// The loopback port on which Caddy asks the app whether a name may have a certificate.
    pub ask_port: u16,
    /// Certificates from Caddy's own CA instead of a public one (ACME): for a test or an
    /// internal network, whose clients trust that CA's root.
    pub internal_ca: bool,
    /// The ACME account's email, for the CA's notices.
    pub email: Option<String>,
    /// Caddy's HTTP and HTTPS ports, when not 80 and 443.
    pub http_port: Option<u16>,
    /// See `http_port`.
    pub https_port: Option<u16>,
    /// Caddy's admin endpoint (`localhost:2019` when `None`; `off` for none).
    pub admin: Option<String>,
}

/// The Caddyfile for `tenancy`'s base domain and `options`. Caddy asks the app (as its public
/// site, on loopback) before each new certificate, and gets one only for the base domain,
/// `www`, the platform's named sites and the verified domains of active tenants; every
/// request then goes to the app, which identifies the tenant by the host as always.
pub fn caddyfile(tenancy: &Tenancy, options: &CaddyOptions) -> String {
    let base = &tenancy.identification().base_domain;
    let upstream = &options.upstream;
    let ask_port = options.ask_port;
    let mut global =
        format!("\ton_demand_tls {{\n\t\task http://127.0.0.1:{ask_port}{TLS_ASK_PATH}\n\t}}\n");
    if options.internal_ca {
        global.push_str("\tlocal_certs\n\tskip_install_trust\n");
    }
    for (name, value) in [
        ("email", options.email.clone()),
        ("http_port", options.http_port.map(|p| p.to_string())),
        ("https_port", options.https_port.map(|p| p.to_string())),
        ("admin", options.admin.clone()),
    ] {
        if let Some(value) = value {
            writeln!(global, "\t{name} {value}").ok();
        }
    }
    format!(
        "# Written by `deploy caddy`: Caddy in front of the app at {upstream}, with a TLS\n\
         # certificate issued on demand for each name the app confirms.\n\
         {{\n{global}}}\n\n\
         # Caddy's question to the app, asked as its public site ({base}), on loopback only.\n\
         http://127.0.0.1:{ask_port} {{\n\
         \tbind 127.0.0.1\n\
         \thandle {TLS_ASK_PATH} {{\n\
         \t\treverse_proxy {upstream} {{\n\
         \t\t\theader_up Host {base}\n\
         \t\t}}\n\
         \t}}\n\
         \trespond 404\n\
         }}\n\n\
         # Every name: HTTPS with a certificate issued on demand, then the app.\n\
         https:// {{\n\
         \ttls {{\n\
         \t\ton_demand\n\
         \t}}\n\
         \treverse_proxy {upstream}\n\
         }}\n"
    )
}
