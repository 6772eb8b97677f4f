//! The `polls` command line: serve, demo, migrate, tenants, and commands run inside tenants.

use std::io::BufRead;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};
use tenantry::cli::{
    CliError, DeployCommand, JobsCommand, MigrateArgs, OperatorsCommand, ServersCommand,
    TenantTargets, TenantsCommand,
};
use tenantry::{Slug, Tenancy};
use tracing::Instrument;

use crate::auth::hash_password;
use crate::configuration::{JobArgs, Serving, Settings};
use crate::{demo, startup};

/// The polls app, one install serving many tenants.
#[derive(Debug, Parser)]
#[command(
    name = "polls",
    version,
    disable_help_subcommand = true,
    after_help = "The options above (or the environment) go before or after any command; \
                  `serve` and `demo` have options of their own (`polls serve --help`). \
                  migrate, createsuperuser and sql act inside tenants named by --tenant SLUG \
                  or --all-tenants."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub targets: TenantTargets,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API for every tenant (and supervise dedicated tenants' own servers).
    Serve(Serving),
    /// Serve one dedicated tenant, as its supervisor starts it (see `serve`).
    #[command(hide = true)]
    ServeTenant(Serving),
    /// Apply the tenant migrations to one dedicated tenant's own database, as its one-shot
    /// migration container does (the environment of `serve-tenant`).
    #[command(hide = true)]
    MigrateTenant,
    /// Set up tenants `thor` and `potter` with sample polls, print their URLs and tokens, and
    /// serve.
    Demo(Serving),
    /// Apply shared migrations, then tenant migrations to every tenant (or the one named by
    /// --tenant SLUG).
    Migrate(MigrateArgs),
    /// Manage tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Write deployment files from the catalog (nginx, Docker Compose, Kubernetes).
    Deploy {
        #[command(subcommand)]
        command: DeployCommand,
    },
    /// Manage the database servers tenants can be placed on.
    Servers {
        #[command(subcommand)]
        command: ServersCommand,
    },
    /// Create a superuser in the tenant(s) named by --tenant / --all-tenants; the password
    /// is read from standard input.
    Createsuperuser {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "")]
        email: String,
        /// Read the password from the first line of standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Run SQL in the tenant(s) named by --tenant / --all-tenants, one result block each.
    Sql { statement: String },
    /// Manage the operators who log in to the console at /console on the public site.
    Operators {
        #[command(subcommand)]
        command: OperatorsCommand,
    },
    /// Show the audit log: every change made through the console and the platform API,
    /// newest first (only those about the tenant named by --tenant SLUG, if given).
    Audit {
        /// Only entries recorded at or after this date (2026-12-01) or time (RFC 3339).
        #[arg(long, value_parser = tenantry::cli::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Run tenants' background jobs, without serving: for machines of their own beside
    /// those running `serve JOB_WORKERS=0`.
    Worker(JobArgs),
    /// Show and act on tenants' background jobs: the tenant's named by --tenant SLUG, or
    /// every tenant's.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Print a link that logs a staff user into the admin of the tenant(s) named by
    /// --tenant / --all-tenants, once, within 60 seconds.
    LoginLink {
        /// The staff user the link logs in.
        #[arg(long)]
        username: String,
    },
}

impl Cli {
    /// The command line, or clap's exit with its message; an option of `serve` given before
    /// the command is refused with the place it goes.
    pub fn parse_args() -> Self {
        let error = match Self::try_parse() {
            Ok(cli) => return cli,
            Err(error) => error,
        };
        if error.kind() == ErrorKind::UnknownArgument
            && let Some(ContextValue::String(given)) = error.get(ContextKind::InvalidArg)
        {
            let name = given.split('=').next().unwrap_or(given);
            let serving = Serving::augment_args(clap::Command::new("serve"));
            if serving.get_arguments().any(|arg| {
                arg.get_long()
                    .is_some_and(|long| name == format!("--{long}"))
            }) {
                eprintln!(
                    "error: '{name}' is an option of `serve` and `demo`: give it after the \
                     command, as in `polls serve {name} ...`"
                );
                std::process::exit(2);
            }
        }
        error.exit()
    }
}

impl Command {
    /// Whether the command serves HTTP until stopped (and so must outlive any client).
    pub fn serves(&self) -> bool {
        self.serving().is_some()
    }

    /// The serving options of a command that serves.
    fn serving(&self) -> Option<&Serving> {
        match self {
            Command::Serve(serving) | Command::ServeTenant(serving) | Command::Demo(serving) => {
                Some(serving)
            }
            _ => None,
        }
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let settings = settings_for(cli.settings, &cli.command, &cli.targets)?;
    let tenancy = async || startup::open(&settings).await;
    match cli.command {
        Command::Demo(_) => demo::run(&settings).await,
        Command::Migrate(args) => migrate(&settings, &args, cli.targets.tenant).await,
        Command::MigrateTenant => {
            let (pool, _, slug) = startup::tenant_database(&settings).await?;
            let applied =
                tenantry::migrate::migrate_own_database(&pool, &startup::migrations()).await?;
            println!("{slug}: {} migration(s) applied", applied.count);
            Ok(())
        }
        Command::ServeTenant(_) => serve_tenant(&settings).await,
        Command::Serve(_) => {
            let tenancy = startup::open_serving(&settings).await?;
            let listener = startup::listen(&settings).await?;
            tracing::info!("serving on http://{}", settings.serving.bind);
            let _sweep = startup::purge_sweep(&tenancy, &settings.serving);
            let _checks = startup::domain_checks(&tenancy, &settings.serving);
            let _worker = startup::job_worker(&tenancy, &settings.serving.jobs);
            let app = startup::app_with(tenancy, &settings.serving);
            startup::serve(listener, app, settings.serving.limits.server()).await;
            Ok(())
        }
        Command::Worker(jobs) => run_worker(&tenancy().await?, &jobs).await,
        Command::Jobs { command } => {
            if cli.targets.all_tenants {
                return Err(CliError::usage(
                    "jobs takes --tenant SLUG, not --all-tenants: without it, list shows all",
                ));
            }
            tenantry::cli::jobs(&tenancy().await?, command, cli.targets.tenant).await
        }
        Command::Tenants { command } => tenantry::cli::tenants(&tenancy().await?, command).await,
        Command::Servers { command } => tenantry::cli::servers(&tenancy().await?, command).await,
        Command::Deploy { command } => {
            let site = tenantry::cli::DeploySite {
                bind: &settings.serving.bind,
                bind_from: match std::env::var_os("BIND") {
                    Some(_) => "BIND",
                    None => "the default; set BIND or pass --upstream if `serve` listens elsewhere",
                },
                database_url: settings.database_url.as_deref(),
            };
            tenantry::cli::deploy(&tenancy().await?, command, site).await
        }
        Command::Createsuperuser {
            username,
            email,
            password_stdin: _,
        } => {
            let password = read_password()?;
            let tenancy = tenancy().await?;
            let tenants = cli.targets.resolve(&tenancy).await?;
            createsuperuser(&tenancy, &tenants, (&username, &email), &password).await
        }
        Command::Sql { statement } => {
            let tenancy = tenancy().await?;
            let tenants = cli.targets.resolve(&tenancy).await?;
            tenantry::cli::sql(&tenancy, &tenants, &statement).await
        }
        Command::Operators { command } => {
            tenantry::cli::operators(&tenancy().await?, command, read_password, hash_password).await
        }
        Command::Audit { since, limit } => {
            if cli.targets.all_tenants {
                return Err(CliError::usage(
                    "audit takes --tenant SLUG, not --all-tenants: without it, it shows all",
                ));
            }
            let tenant = cli.targets.tenant.map(|slug| slug.to_string());
            tenantry::cli::audit(&tenancy().await?, tenant, since, limit).await
        }
        Command::LoginLink { username } => {
            let tenancy = tenancy().await?;
            for slug in cli.targets.resolve(&tenancy).await? {
                let link = login_link(&tenancy, &slug, &username, &settings.serving.bind).await?;
                println!("{link}");
            }
            Ok(())
        }
    }
}

/// `worker`: runs tenants' background jobs until SIGINT or SIGTERM, then lets those running
/// finish.
async fn run_worker(tenancy: &Tenancy, jobs: &JobArgs) -> Result<(), CliError> {
    let Some(worker) = startup::job_worker(tenancy, jobs) else {
        return Err(CliError::usage(
            "worker runs at least one job at once: --job-workers 1 or more",
        ));
    };
    tracing::info!(workers = jobs.job_workers, "running background jobs");
    startup::shutdown_signal().await;
    worker.stop().await;
    Ok(())
}

/// The settings `command` runs with: its serving options (or the environment's), checked;
/// an error if tenants are named for a command that does not take them.
fn settings_for(
    settings: Settings,
    command: &Command,
    targets: &TenantTargets,
) -> Result<Settings, CliError> {
    let serving = match command.serving() {
        Some(serving) => serving.clone(),
        None => Serving::from_env()?,
    };
    let settings = Settings {
        serving,
        ..settings
    };
    let takes_targets = matches!(
        command,
        Command::Migrate(_)
            | Command::Createsuperuser { .. }
            | Command::Sql { .. }
            | Command::LoginLink { .. }
            | Command::Audit { .. }
            | Command::Jobs { .. }
    );
    if (targets.tenant.is_some() || targets.all_tenants) && !takes_targets {
        return Err(CliError::usage(
            "--tenant and --all-tenants apply to migrate, createsuperuser, sql, login-link, \
             audit and jobs only",
        ));
    }
    match command {
        // A dedicated tenant's server is given its tenant's database, which in a SQLite
        // deployment is a `sqlite://` file.
        Command::ServeTenant(_) | Command::MigrateTenant => settings.with_url_from_stdin(),
        _ => settings.checked().map_err(CliError::usage),
    }
}

/// `migrate`: the shared migrations, then the tenants' (all, or `tenant`).
async fn migrate(
    settings: &Settings,
    args: &MigrateArgs,
    tenant: Option<Slug>,
) -> Result<(), CliError> {
    let migrations = startup::migrations();
    match &settings.database_url {
        Some(url) => {
            let options = settings.options().map_err(CliError::usage)?;
            let pool = startup::connect(url, settings.pool_size, settings.database_pooler).await?;
            match args.check {
                true => tenantry::cli::check_shared(&pool, &migrations).await?,
                false => tenantry::cli::migrate_shared(&pool, &migrations, &options).await?,
            }
        }
        None => println!("shared: the SQLite catalog is migrated as it opens"),
    }
    let tenancy = startup::open(settings).await?;
    tenantry::cli::migrate_tenants(&tenancy, args, tenant, &settings.serving.bind).await
}

/// A one-time login link for staff user `username` of tenant `slug`, on its primary domain at
/// the port `serve` listens on (`bind`).
async fn login_link(
    tenancy: &Tenancy,
    slug: &Slug,
    username: &str,
    bind: &str,
) -> Result<String, CliError> {
    let token = tenancy
        .in_tenant(slug, async |db| -> Result<String, CliError> {
            let staff: Option<i64> = db
                .query("SELECT id FROM users WHERE username = $1 AND (is_staff OR is_superuser)")
                .bind(username)
                .fetch_optional_scalar()
                .await?;
            let user = staff.ok_or_else(|| CliError {
                code: 3,
                message: format!("'{slug}' has no staff user '{username}'"),
            })?;
            Ok(tenantry::web::LoginLink::issue(db, user).await?)
        })
        .await?;
    let details = tenancy.catalog().details(slug).await?;
    let host = details
        .domains
        .iter()
        .find(|d| d.is_primary)
        .map(|d| d.domain.clone())
        .unwrap_or_default();
    let port = match bind.rsplit_once(':') {
        Some((_, "80")) | None => String::new(),
        Some((_, port)) => format!(":{port}"),
    };
    Ok(format!(
        "http://{host}{port}/admin/login/link?token={token}"
    ))
}

/// `serve-tenant`: one dedicated tenant's own server, logging as its tenant's.
async fn serve_tenant(settings: &Settings) -> Result<(), CliError> {
    let (app, _worker) = startup::tenant_app(settings).await?;
    let tenant = std::env::var("TENANT_SLUG").unwrap_or_default();
    let span = tracing::info_span!("tenant_server", tenant = %tenant);
    let listener = startup::listen(settings).await?;
    let limits = settings.serving.limits.server();
    let bind = settings.serving.bind.clone();
    async move {
        tracing::info!("serving on http://{bind}");
        startup::serve(listener, app, limits).await;
    }
    .instrument(span)
    .await;
    Ok(())
}

/// `createsuperuser` in each of `tenants`: a tenant that fails does not stop the others;
/// with several, the end sums up (keeping the exit code when every failure shares it).
async fn createsuperuser(
    tenancy: &Tenancy,
    tenants: &[Slug],
    who: (&str, &str),
    password: &str,
) -> Result<(), CliError> {
    let mut failed = Vec::new();
    for slug in tenants {
        if let Err(error) = create_superuser(tenancy, slug, who, password).await {
            if tenants.len() > 1 {
                eprintln!("error: {}", error.message);
            }
            failed.push(error);
        }
    }
    match failed.as_slice() {
        [] => Ok(()),
        [one] if tenants.len() == 1 => Err(CliError {
            code: one.code,
            message: one.message.clone(),
        }),
        all => Err(CliError {
            code: match all.iter().all(|e| e.code == all[0].code) {
                true => all[0].code,
                false => 1,
            },
            message: format!(
                "createsuperuser failed in {} of {} tenants",
                all.len(),
                tenants.len()
            ),
        }),
    }
}

fn read_password() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::failed(format!("reading the password: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(CliError::usage("the password on standard input is empty"));
    }
    Ok(password)
}

/// Creates the superuser `username` in tenant `slug` and says so.
async fn create_superuser(
    tenancy: &Tenancy,
    slug: &Slug,
    (username, email): (&str, &str),
    password: &str,
) -> Result<(), CliError> {
    let hash = hash_password(password);
    tenancy
        .in_tenant(slug, async |db| -> Result<(), CliError> {
            let inserted = db
                .query(
                    "INSERT INTO users (username, email, password_hash, is_superuser, is_staff) \
                     VALUES ($1, $2, $3, true, true) ON CONFLICT DO NOTHING",
                )
                .bind(username)
                .bind(email)
                .bind(&hash)
                .execute()
                .await?;
            if inserted == 0 {
                return Err(CliError {
                    code: 4,
                    message: format!("user '{username}' already exists in '{slug}'"),
                });
            }
            Ok(())
        })
        .await?;
    println!("created superuser '{username}' in '{slug}'");
    Ok(())
}
