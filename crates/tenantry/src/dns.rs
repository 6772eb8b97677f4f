//! [`DnsResolver`]: reads the TXT records that prove a tenant owns a custom domain, from the
//! system's name servers or from ones given (`hickory-resolver`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::error::Error;

/// Where DNS questions go: the system's name servers, or the ones given. Nothing is cached:
/// each lookup reads the configuration and sees the record as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsResolver {
    /// Empty for the system's.
    servers: Vec<SocketAddr>,
}

impl DnsResolver {
    /// The system's name servers (`/etc/resolv.conf`).
    pub fn system() -> Self {
        Self {
            servers: Vec::new(),
        }
    }

    /// The name servers at `servers`, over UDP and TCP.
    pub fn at(servers: &[SocketAddr]) -> Self {
        Self {
            servers: servers.to_vec(),
        }
    }

    /// `system`, or name servers as `IP[:PORT]` (port 53 when left out) separated by commas.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        if spec.trim() == "system" {
            return Ok(Self::system());
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
                            "'{server}' is not a name server: give `system`, or IP[:PORT] \
                             separated by commas"
                        ),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::at(&servers))
    }

    fn resolver(&self) -> Result<TokioResolver, String> {
        let mut builder = match self.servers.as_slice() {
            [] => TokioResolver::builder_tokio()
                .map_err(|e| format!("the system's DNS configuration cannot be read: {e}"))?,
            servers => {
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
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            }
        };
        let options = builder.options_mut();
        options.timeout = Duration::from_secs(3);
        options.attempts = 1;
        builder
            .build()
            .map_err(|e| format!("no DNS resolver can be made: {e}"))
    }

    /// The texts of the TXT records at `name`, each record's strings joined; `Err` says why
    /// none could be read, as a sentence for the person waiting on it.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let fqdn = format!("{name}.");
        match self.resolver()?.txt_lookup(fqdn.as_str()).await {
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
