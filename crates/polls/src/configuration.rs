//! Settings, from command-line flags or the environment.

use clap::Args;
use tenantry::{HostName, Identification, Strategy};

/// Where the app finds its database and how it recognises tenants.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// PostgreSQL URL of the database holding the catalog and the tenant schemas.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/polls",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// The public site's host; tenants are served at `<slug>.<base domain>`.
    #[arg(
        long,
        env = "BASE_DOMAIN",
        default_value = "polls.localhost",
        global = true
    )]
    pub base_domain: String,
    /// Identification strategies in the order they are tried: domain, subdomain, path,
    /// header (X-Tenant) or header:<name>.
    #[arg(
        long,
        env = "TENANT_STRATEGIES",
        default_value = "domain,subdomain,path",
        value_delimiter = ',',
        global = true
    )]
    pub strategies: Vec<Strategy>,
    /// Token for the platform API (`Authorization: Bearer ...`); the API is off without it.
    #[arg(long, env = "PLATFORM_TOKEN", global = true, hide_env_values = true)]
    pub platform_token: Option<String>,
    /// Address the server listens on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8000", global = true)]
    pub bind: String,
    /// Maximum database connections.
    #[arg(long, env = "POOL_SIZE", default_value_t = 16, global = true)]
    pub pool_size: u32,
}

impl Settings {
    /// The identification configuration these settings describe.
    pub fn identification(&self) -> Result<Identification, String> {
        let base_domain = HostName::parse(&self.base_domain)
            .map_err(|e| format!("BASE_DOMAIN '{}': {e}", self.base_domain))?;
        Ok(Identification {
            base_domain,
            strategies: self.strategies.clone(),
        })
    }
}
