//! [`DnsResolver`]: reads the TXT records that prove a tenant owns a custom domain, from the
//! system's name servers or from ones given (`hickory-resolver`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{ResolverBuilder, TokioResolver};

use crate::error::Error;

/// Where DNS questions go. Nothing is cached: each check sees the record as it is now.
#[derive(Clone)]
pub struct DnsResolver {
    resolver: TokioResolver,
    servers: String,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver")
            .field("servers", &self.servers)
            .finish()
    }
}

impl DnsResolver {
    /// The system's name servers (`/etc/resolv.conf`).
    pub fn system() -> Result<Self, Error> {
        let builder = TokioResolver::builder_tokio().map_err(|e| Error::Invalid {
            field: "dns resolver",
            message: format!("the system's DNS configuration cannot be read: {e}"),
        })?;
        Self::build(builder, "system".to_owned())
    }

    /// The name servers at `servers`, over UDP and TCP.
    pub fn at(servers: &[SocketAddr]) -> Result<Self, Error> {
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let shown = servers.iter().map(ToString::to_string).collect::<Vec<_>>();
        Self::build(builder, shown.join(","))
    }

    /// `system`, or name servers as `ip:port` (or `ip`, port 53) separated by commas.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        if spec.trim() == "system" {
            return Self::system();
        }
        let servers = spec
            .split(',')
            .map(|server| {
                let server = server.trim();
                server
                    .parse::<SocketAddr>()
                    .or_else(|_| server.parse().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| Error::Invalid {
                        field: "dns resolver",
                        message: format!(
                            "'{server}' is not a name server: give `system` or IP[:PORT], \
                             separated by commas"
                        ),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::at(&servers)
    }

    fn build(
        mut builder: ResolverBuilder<TokioRuntimeProvider>,
        servers: String,
    ) -> Result<Self, Error> {
        let options = builder.options_mut();
        options.timeout = Duration::from_secs(3);
        options.attempts = 1;
        options.positive_max_ttl = Some(Duration::ZERO);
        options.negative_max_ttl = Some(Duration::ZERO);
        let resolver = builder.build().map_err(|e| Error::Invalid {
            field: "dns resolver",
            message: format!("no DNS resolver for {servers}: {e}"),
        })?;
        Ok(Self { resolver, servers })
    }

    /// The texts of the TXT records at `name`, each record's strings joined; `Err` says why
    /// none could be read, as a sentence for the person waiting on it.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let fqdn = format!("{name}.");
        match self.resolver.txt_lookup(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() => Err(format!("there is no TXT record at {name}")),
            Err(e) => Err(format!("the DNS lookup of {name} failed: {e}")),
        }
    }
}
