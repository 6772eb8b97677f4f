//! Settings, from command-line flags or the environment.

use std::ffi::OsString;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches};
use tenantry::cache::Cache;
use tenantry::cli::CliError;
use tenantry::dns::DnsResolver;
use tenantry::files::Files;
use tenantry::http::TrustedProxies;
use tenantry::jobs::WorkerOptions;
use tenantry::signup::SignupOptions;
use tenantry::{
    AppRole, DatabaseBudget, HostName, Identification, IsolationMode, Pooler, ServerLimits,
    Strategy, Tenancy, TenancyOptions,
};

use crate::limits::AuthSettings;

/// Where the app finds its database and how it recognises tenants: options of every
/// command, given before or after it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database and tenants")]
pub struct Settings {
    /// PostgreSQL URL of the database holding the catalog and the tenant schemas. Without
    /// it, everything is in SQLite files under DATA_DIR.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where the SQLite catalog and tenant files live when there is no DATABASE_URL.
    #[arg(long, global = true, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The public site's host; tenants are served at `<slug>.<base domain>`.
    #[arg(
        long,
        global = true,
        env = "BASE_DOMAIN",
        default_value = "polls.localhost"
    )]
    pub base_domain: String,
    /// Identification strategies in the order they are tried: domain, subdomain, path,
    /// header (X-Tenant) or header:<name>.
    #[arg(
        long,
        global = true,
        env = "TENANT_STRATEGIES",
        default_value = "domain,subdomain,path",
        value_delimiter = ','
    )]
    pub strategies: Vec<Strategy>,
    /// What DATABASE_URL reaches: `none` (PostgreSQL itself, or a session-mode pooler) or
    /// `transaction` (a transaction-mode pooler such as PgBouncer; see the README).
    #[arg(long, global = true, env = "DATABASE_POOLER", default_value = "none")]
    pub database_pooler: Pooler,
    /// Maximum connections of the pool shared by the catalog and schema-mode tenants.
    #[arg(long, global = true, env = "POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,
    /// Isolation of tenants created without `--isolation`: shared, schema, database or
    /// dedicated. The default is schema on PostgreSQL and database on SQLite.
    #[arg(long, global = true, env = "DEFAULT_ISOLATION")]
    pub default_isolation: Option<IsolationMode>,
    /// Connections all database-mode tenants may hold together.
    #[arg(long, global = true, env = "DATABASE_BUDGET", default_value_t = 40)]
    pub database_budget: u32,
    /// Connections one database-mode tenant may hold.
    #[arg(long, global = true, env = "TENANT_POOL_SIZE", default_value_t = 2)]
    pub tenant_pool_size: u32,
    /// The PostgreSQL role request transactions run as: not a superuser, without BYPASSRLS,
    /// owning no tables, so Row-Level Security holds it. `migrate` creates it if missing.
    /// DATABASE_URL's role owns the tables and runs migrations. Its password, if the server
    /// asks for one: APP_ROLE_PASSWORD (`migrate` sets it).
    #[arg(long, global = true, env = "APP_ROLE", default_value = "tenantry_app")]
    pub app_role: String,
    /// The app role's password, if the server asks for one; `migrate` sets it. Hidden from
    /// the help, which names it under APP_ROLE, to keep the help one screen.
    #[arg(
        long,
        global = true,
        env = "APP_ROLE_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub app_role_password: Option<String>,
    /// The Redis that caches tenants' values (`redis://host:6379/0`), shared by every server;
    /// each process caches in its own memory without it.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Where tenants' files are kept (exports, poll images): `file:///DIR`, or
    /// `s3://BUCKET/PREFIX` with the credentials, region and endpoint of the AWS_*
    /// environment variables (S3 or S3-compatible storage). DATA_DIR/files without it.
    #[arg(long, global = true, env = "FILES_URL")]
    pub files_url: Option<String>,
    /// How `serve` and `demo` serve: their own options, or the environment for the commands
    /// that only read them (`migrate`'s upgrade waves and `deploy` use `BIND`).
    #[arg(skip)]
    pub serving: Serving,
    /// The mark of the router that started this dedicated tenant's server, from the second
    /// line of its standard input (see [`Settings::with_url_from_stdin`]).
    #[arg(skip)]
    pub router_secret: Option<String>,
}

/// The address `serve` listens on unless told otherwise.
const DEFAULT_BIND: &str = "127.0.0.1:8000";

/// Seconds a dedicated tenant's server may idle unless told otherwise.
const DEFAULT_DEDICATED_IDLE: u64 = 600;

/// How `serve` and `demo` serve: where, the platform API, dedicated tenants' servers and the
/// limits on clients. Options of those commands alone.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Serving")]
pub struct Serving {
    /// Token for the platform API (`Authorization: Bearer ...`); the API is off without it.
    #[arg(long, env = "PLATFORM_TOKEN", hide_env_values = true)]
    pub platform_token: Option<String>,
    /// Address the server listens on.
    #[arg(long, env = "BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
    /// Seconds without a request after which a dedicated tenant's server is stopped.
    #[arg(long, env = "DEDICATED_IDLE", default_value_t = DEFAULT_DEDICATED_IDLE)]
    pub dedicated_idle: u64,
    /// Start every dedicated tenant's server with `serve`, not on its first request.
    #[arg(long, env = "DEDICATED_EAGER", default_value_t = false)]
    pub dedicated_eager: bool,
    /// Where dedicated tenants' servers run already (`host:port`, `{slug}` for the
    /// tenant's slug, e.g. `app-{slug}:8000`): forwarded to, never started by `serve`.
    #[arg(long, env = "DEDICATED_ADDRESS")]
    pub dedicated_address: Option<String>,
    /// Run each dedicated tenant's server (PostgreSQL) as a user of its own, uid and gid
    /// DEDICATED_UID_BASE + its port: the uids from it to it + 65535 must be unused, and
    /// `serve` must run as root.
    #[arg(long, env = "DEDICATED_UID_BASE")]
    pub dedicated_uid_base: Option<u32>,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub signup: SignupArgs,
    /// Days a tenant deleted in the console is kept (answering 403, restorable) before
    /// `serve` purges it.
    #[arg(long, env = "DELETE_GRACE_DAYS", default_value_t = DEFAULT_DELETE_GRACE_DAYS)]
    pub delete_grace_days: u64,
    /// The name servers that verify custom domains' TXT records: `system`, or IP[:PORT]
    /// separated by commas.
    #[arg(long, env = "DNS_RESOLVER", default_value = "system", value_parser = DnsResolver::parse)]
    pub dns_resolver: DnsResolver,
    /// Seconds before a claimed domain whose record was not found is checked again; the
    /// wait doubles after each check, to at most an hour.
    #[arg(long, env = "DOMAIN_CHECK_RETRY", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub domain_check_retry: u64,
    #[command(flatten)]
    pub jobs: JobArgs,
}

/// How this process runs tenants' background jobs: `serve` and `demo` run a worker unless
/// JOB_WORKERS is 0, and `polls worker` runs one alone.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Background jobs")]
pub struct JobArgs {
    /// Jobs this process runs at once; 0 runs none here (run `polls worker` elsewhere).
    #[arg(long, env = "JOB_WORKERS", default_value_t = 4)]
    pub job_workers: usize,
    /// Jobs of one tenant running at once, across every worker: what one tenant's backlog
    /// may take of the workers.
    #[arg(long, env = "JOBS_PER_TENANT", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs_per_tenant: u32,
    /// Seconds a job may run; the jobs of a worker that dies run again after this.
    #[arg(long, env = "JOB_LEASE", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub job_lease: u64,
}

impl Default for JobArgs {
    fn default() -> Self {
        let defaults = WorkerOptions::default();
        Self {
            job_workers: defaults.concurrency,
            jobs_per_tenant: u32::try_from(defaults.per_tenant).unwrap_or(u32::MAX),
            job_lease: defaults.lease.as_secs(),
        }
    }
}

impl JobArgs {
    /// The library's worker options; `None` for no worker.
    pub fn worker(&self) -> Option<WorkerOptions> {
        (self.job_workers > 0).then(|| WorkerOptions {
            concurrency: self.job_workers,
            per_tenant: usize::try_from(self.jobs_per_tenant).unwrap_or(usize::MAX),
            lease: Duration::from_secs(self.job_lease),
            ..WorkerOptions::default()
        })
    }
}

/// Days a deleted tenant is kept unless told otherwise.
const DEFAULT_DELETE_GRACE_DAYS: u64 = 30;

/// Self-service signup at `/signup` on the public site.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Signup")]
pub struct SignupArgs {
    /// Open self-service signup: anyone may create a tenant and become its admin.
    #[arg(long = "signup", env = "SIGNUP", default_value_t = false)]
    pub enabled: bool,
    /// Signups an hour from one client address; beyond it 429.
    #[arg(long, env = "SIGNUP_RATE_PER_ADDRESS", default_value_t = SignupOptions::default().per_address_per_hour)]
    pub signup_rate_per_address: NonZeroU32,
    /// Isolation of the tenants signups create (shared, schema, database or dedicated);
    /// DEFAULT_ISOLATION when absent.
    #[arg(long, env = "SIGNUP_ISOLATION")]
    pub signup_isolation: Option<IsolationMode>,
    /// Pending tenants of that isolation kept built ahead, so that a signup only names one;
    /// refilled in the background after each signup.
    #[arg(long, env = "SIGNUP_PENDING", default_value_t = 0)]
    pub signup_pending: usize,
}

impl Default for SignupArgs {
    fn default() -> Self {
        Self {
            enabled: false,
            signup_rate_per_address: SignupOptions::default().per_address_per_hour,
            signup_isolation: None,
            signup_pending: 0,
        }
    }
}

impl SignupArgs {
    /// The library's signup options.
    pub fn options(&self) -> SignupOptions {
        SignupOptions {
            enabled: self.enabled,
            per_address_per_hour: self.signup_rate_per_address,
            isolation: self.signup_isolation,
        }
    }
}

impl Default for Serving {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND.into(),
            platform_token: None,
            dedicated_idle: DEFAULT_DEDICATED_IDLE,
            dedicated_eager: false,
            dedicated_address: None,
            dedicated_uid_base: None,
            limits: Limits::default(),
            signup: SignupArgs::default(),
            delete_grace_days: DEFAULT_DELETE_GRACE_DAYS,
            dns_resolver: DnsResolver::system(),
            domain_check_retry: 60,
            jobs: JobArgs::default(),
        }
    }
}

impl Serving {
    /// The serving settings the environment sets, for a command that has no such options.
    pub fn from_env() -> Result<Self, CliError> {
        let command = Self::augment_args(clap::Command::new("polls"));
        command
            .try_get_matches_from(["polls"])
            .and_then(|matches| Self::from_arg_matches(&matches))
            .map_err(|e| CliError::usage(e.to_string().trim_start_matches("error: ").trim()))
    }
}

/// What slow, idle and numerous clients may hold of the server, and how much sign-up and login
/// work it takes on. Times are in seconds.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits on clients")]
pub struct Limits {
    /// Seconds a client has to send a request's headers once the server waits for them.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value_t = ServerLimits::default().header_read_timeout.as_secs())]
    pub header_read_timeout: u64,
    /// Seconds a client has to send a request's body once its headers arrived.
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value_t = ServerLimits::default().body_read_timeout.as_secs())]
    pub body_read_timeout: u64,
    /// Seconds a connection with no request in progress stays open.
    #[arg(long, env = "KEEP_ALIVE_TIMEOUT", default_value_t = ServerLimits::default().keep_alive_timeout.as_secs())]
    pub keep_alive_timeout: u64,
    /// Open connections at most; beyond them new ones get 503 at once.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = ServerLimits::default().max_connections)]
    pub max_connections: usize,
    /// Seconds requests in progress have to finish after SIGINT or SIGTERM (a second signal
    /// stops at once).
    #[arg(long, env = "SHUTDOWN_GRACE", default_value_t = ServerLimits::default().shutdown_grace.as_secs())]
    pub shutdown_grace: u64,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` name the client (addresses or networks,
    /// comma-separated, e.g. `127.0.0.1,10.0.0.0/8`); none by default, so a client's own
    /// headers are never believed. Rate limits and logs use the client they name.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,
    /// Passwords hashed at once (19 MiB each); the default is one per CPU.
    #[arg(long, env = "HASH_WORKERS", default_value_t = AuthSettings::default().hash_workers)]
    pub hash_workers: usize,
    /// Password hashes waiting for a worker; beyond them sign-up and login get 503.
    #[arg(long, env = "HASH_QUEUE", default_value_t = AuthSettings::default().hash_queue)]
    pub hash_queue: usize,
    /// Sign-ups and logins a minute from one client address; beyond it 429.
    #[arg(long, env = "AUTH_RATE_PER_ADDRESS", default_value_t = AuthSettings::default().per_address)]
    pub auth_rate_per_address: u32,
    /// Sign-ups and logins a minute in one tenant; beyond it 429.
    #[arg(long, env = "AUTH_RATE_PER_TENANT", default_value_t = AuthSettings::default().per_tenant)]
    pub auth_rate_per_tenant: u32,
}

impl Default for Limits {
    fn default() -> Self {
        let (server, auth) = (ServerLimits::default(), AuthSettings::default());
        Self {
            header_read_timeout: server.header_read_timeout.as_secs(),
            body_read_timeout: server.body_read_timeout.as_secs(),
            keep_alive_timeout: server.keep_alive_timeout.as_secs(),
            max_connections: server.max_connections,
            shutdown_grace: server.shutdown_grace.as_secs(),
            trusted_proxies: server.trusted_proxies,
            hash_workers: auth.hash_workers,
            hash_queue: auth.hash_queue,
            auth_rate_per_address: auth.per_address,
            auth_rate_per_tenant: auth.per_tenant,
        }
    }
}

impl Limits {
    /// The server's limits.
    pub fn server(&self) -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            body_read_timeout: Duration::from_secs(self.body_read_timeout),
            keep_alive_timeout: Duration::from_secs(self.keep_alive_timeout.max(1)),
            max_connections: self.max_connections,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }

    /// The limits on sign-up and login.
    pub fn auth(&self) -> AuthSettings {
        AuthSettings {
            hash_workers: self.hash_workers,
            hash_queue: self.hash_queue,
            per_address: self.auth_rate_per_address,
            per_tenant: self.auth_rate_per_tenant,
        }
    }
}

impl Settings {
    /// The settings as given, with an empty DATABASE_URL taken as none (SQLite); a URL that
    /// is not PostgreSQL's is refused (without repeating it, since it may hold a password).
    pub fn checked(mut self) -> Result<Self, String> {
        self.database_url = self.database_url.filter(|url| !url.trim().is_empty());
        self.serving.dedicated_address = self
            .serving
            .dedicated_address
            .filter(|a| !a.trim().is_empty());
        if let Some(address) = &self.serving.dedicated_address {
            let port = address
                .rsplit_once(':')
                .map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) {
                return Err(format!(
                    "DEDICATED_ADDRESS '{address}' is not host:port (with {{slug}} for the \
                     tenant's slug)"
                ));
            }
        }
        match &self.database_url {
            Some(url) if !url.starts_with("postgres://") && !url.starts_with("postgresql://") => {
                Err(
                    "DATABASE_URL must be a postgres:// or postgresql:// URL; leave it empty or \
                     unset to keep everything in SQLite files"
                        .into(),
                )
            }
            _ => Ok(self),
        }
    }

    /// The settings with `DATABASE_URL=-` replaced by the first line of standard input, and
    /// the router's mark taken from the second, as a dedicated tenant's supervisor hands
    /// them to its server (never in the environment).
    pub fn with_url_from_stdin(mut self) -> Result<Self, CliError> {
        if self.database_url.as_deref() == Some("-") {
            let mut lines = std::io::stdin().lines();
            let mut next = || -> Result<String, CliError> {
                let line = lines.next().transpose().map_err(|e| {
                    CliError::failed(format!("reading DATABASE_URL from stdin: {e}"))
                })?;
                Ok(line.unwrap_or_default().trim_end_matches('\r').to_owned())
            };
            let url = next()?;
            if url.is_empty() {
                return Err(CliError::usage(
                    "DATABASE_URL is '-' but standard input holds no URL",
                ));
            }
            self.database_url = Some(url);
            self.router_secret = Some(next()?).filter(|s| !s.is_empty());
        }
        Ok(self)
    }

    /// What a dedicated tenant's server is given of these settings: how it serves and logs,
    /// never a secret (the platform token, the owner's URL, the app role's password). It
    /// trusts the proxies this server trusts and the loopback, whence this server (its
    /// router) forwards to it.
    pub fn tenant_server_env(&self) -> Vec<(OsString, OsString)> {
        let limits = &self.serving.limits;
        let proxies = limits
            .trusted_proxies
            .with(&TrustedProxies::loopback())
            .to_string();
        let data_dir = std::path::absolute(&self.data_dir).unwrap_or(self.data_dir.clone());
        let mut env: Vec<(&str, String)> = vec![
            ("BASE_DOMAIN", self.base_domain.clone()),
            ("DATA_DIR", data_dir.display().to_string()),
            ("DATABASE_POOLER", self.database_pooler.to_string()),
            ("TENANT_POOL_SIZE", self.tenant_pool_size.to_string()),
            (
                "HEADER_READ_TIMEOUT",
                limits.header_read_timeout.to_string(),
            ),
            ("BODY_READ_TIMEOUT", limits.body_read_timeout.to_string()),
            ("KEEP_ALIVE_TIMEOUT", limits.keep_alive_timeout.to_string()),
            ("MAX_CONNECTIONS", limits.max_connections.to_string()),
            ("SHUTDOWN_GRACE", limits.shutdown_grace.to_string()),
            ("TRUSTED_PROXIES", proxies),
            ("HASH_WORKERS", limits.hash_workers.to_string()),
            ("HASH_QUEUE", limits.hash_queue.to_string()),
            (
                "AUTH_RATE_PER_ADDRESS",
                limits.auth_rate_per_address.to_string(),
            ),
            (
                "AUTH_RATE_PER_TENANT",
                limits.auth_rate_per_tenant.to_string(),
            ),
        ];
        for name in ["RUST_LOG", "LOG_FORMAT", "NO_COLOR"] {
            if let Ok(value) = std::env::var(name) {
                env.push((name, value));
            }
        }
        // A directory is shared; S3 credentials are not handed to tenants' servers.
        if let Some(url) = self
            .files_url
            .as_ref()
            .filter(|url| url.starts_with("file:"))
        {
            env.push(("FILES_URL", url.clone()));
        }
        env.into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect()
    }

    /// The tenancy options these settings describe, checked against the backend: on SQLite
    /// only database isolation exists.
    pub fn options(&self) -> Result<TenancyOptions, String> {
        let sqlite = Tenancy::sqlite_modes();
        if let (None, Some(mode)) = (&self.database_url, self.default_isolation)
            && !sqlite.contains(&mode)
        {
            let kept: Vec<&str> = sqlite.iter().map(|m| m.as_str()).collect();
            return Err(format!(
                "DEFAULT_ISOLATION={} needs PostgreSQL: set DATABASE_URL to a PostgreSQL \
                 database, or DEFAULT_ISOLATION={} to stay on SQLite",
                mode.as_str(),
                kept.join(" or ")
            ));
        }
        let default_isolation = self.default_isolation;
        let role = AppRole::new(&self.app_role, self.app_role_password.clone())
            .map_err(|e| format!("APP_ROLE: {e}"))?;
        Ok(TenancyOptions {
            role,
            default_isolation,
            pooler: self.database_pooler,
            budget: DatabaseBudget {
                connections: self.database_budget,
                per_tenant: self.tenant_pool_size,
                ..DatabaseBudget::default()
            },
            dedicated: None,
            settings: crate::domain::rules::schema(),
            cache: self.cache()?,
            files: Some(self.files()?),
        })
    }

    /// Where tenants' files are kept: FILES_URL, or DATA_DIR/files.
    pub fn files(&self) -> Result<Files, String> {
        match &self.files_url {
            Some(url) => Files::from_url(url),
            None => Files::local(self.data_dir.join("files")),
        }
        .map_err(|e| format!("FILES_URL: {e}"))
    }

    /// Where tenants' cached values live: REDIS_URL's Redis, or this process.
    pub fn cache(&self) -> Result<Cache, String> {
        match &self.redis_url {
            Some(url) => Cache::redis(url).map_err(|e| format!("REDIS_URL: {e}")),
            None => Ok(Cache::default()),
        }
    }

    /// The identification configuration these settings describe.
    pub fn identification(&self) -> Result<Identification, String> {
        let base_domain = HostName::parse(&self.base_domain)
            .map_err(|e| format!("BASE_DOMAIN '{}': {e}", self.base_domain))?;
        Ok(Identification {
            strategies: self.strategies.clone(),
            ..Identification::new(base_domain)
        })
    }
}
