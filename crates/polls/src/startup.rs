//! Building the app: the pool, tenancy, the routers, and serving them.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tenantry::cli::CliError;
use tenantry::dedicated::DedicatedOptions;
use tenantry::dns::DnsResolver;
use tenantry::http::{SingleTenantLayer, TenantCache};
use tenantry::jobs::Worker;
use tenantry::lifecycle::{DomainCheckSchedule, DomainChecks, PendingPool};
use tenantry::signup::Signup;
use tenantry::{Migrations, Pooler, ServerLimits, Slug, Tenancy, TenancyLayer, TenancyOptions};
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::admin;
use crate::configuration::{JobArgs, Serving, Settings};
use crate::console;
use crate::error::{method_not_allowed, not_found_fallback};
use crate::limits::AuthLimits;
use crate::routes::api_router;
use crate::signup::{self, PollsAdmin};
use crate::welcome;

/// The app's migration sets: no shared tables, the polls tables per tenant (PostgreSQL and
/// SQLite dialects).
pub fn migrations() -> Migrations {
    Migrations::new(
        Migrator::DEFAULT,
        sqlx::migrate!("./migrations/tenant/postgres"),
    )
    .and_then(|m| m.with_sqlite(sqlx::migrate!("./migrations/tenant/sqlite")))
    .expect("the polls tenant migrations all run in transactions")
}

/// Pool settings of the app. A request that cannot get a connection within 5 s gets 503.
/// Connections are not pinged when handed out: a round trip per request saved. They are
/// still pinged when given back, which flushes the rollback of a dropped transaction and
/// discards broken connections.
pub fn pool_options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
}

/// A pool on `url`, reached through `pooler`, set up so that SQL outside a tenant
/// transaction fails closed. When PostgreSQL cannot be reached, the error names its host,
/// port and database, and why (never the password).
pub async fn connect(url: &str, size: u32, pooler: Pooler) -> Result<PgPool, CliError> {
    let options = pooler.connect_options(url)?;
    match pool_options(size).connect_with(options.clone()).await {
        Ok(pool) => Ok(pool),
        // The pool only says it timed out; one connection of our own says why.
        Err(sqlx::Error::PoolTimedOut) => Err(connect_one(&options)
            .await
            .err()
            .unwrap_or_else(|| unreachable(&options, &sqlx::Error::PoolTimedOut))),
        Err(error) => Err(unreachable(&options, &error)),
    }
}

/// One connection with `options`; when PostgreSQL cannot be reached, the error says where
/// and why, as [`connect`]'s does.
pub async fn connect_one(options: &PgConnectOptions) -> Result<PgConnection, CliError> {
    PgConnection::connect_with(options)
        .await
        .map_err(|error| unreachable(options, &error))
}

/// Why `options` reach no PostgreSQL: its host, port and database and the server's own
/// words, never the password nor the driver's position in PostgreSQL's source.
fn unreachable(options: &PgConnectOptions, cause: &sqlx::Error) -> CliError {
    let (host, port) = (options.get_host(), options.get_port());
    let database = options.get_database().unwrap_or("-");
    CliError::failed(match cause.as_database_error() {
        Some(refusal) if refusal.code().as_deref() == Some("3D000") => format!(
            "PostgreSQL at {host}:{port} has no database {database}: create it \
             (createdb -h {host} -p {port} {database}) or name another in DATABASE_URL"
        ),
        Some(refusal)
            if refusal
                .message()
                .starts_with("unsupported startup parameter") =>
        {
            format!(
                "{host}:{port} refused the connection to database {database}: {}; a \
                 transaction pooler such as PgBouncer refuses startup parameters, so if it is \
                 one, set DATABASE_POOLER=transaction",
                refusal.message()
            )
        }
        Some(refusal) => format!(
            "PostgreSQL at {host}:{port} refused the connection to database {database}: {}",
            refusal.message()
        ),
        None => format!("cannot reach PostgreSQL at {host}:{port} (database {database}): {cause}"),
    })
}

/// Tenancy as `settings` describe it: on PostgreSQL with a DATABASE_URL (whose catalog must
/// have been migrated), otherwise on SQLite files under DATA_DIR.
pub async fn open(settings: &Settings) -> Result<Tenancy, CliError> {
    open_with(settings, None).await
}

/// Tenancy for `serve`: dedicated tenants' servers run as children, this very binary's
/// `serve-tenant`.
pub async fn open_serving(settings: &Settings) -> Result<Tenancy, CliError> {
    let program = std::env::current_exe()
        .map_err(|e| CliError::failed(format!("cannot find this program: {e}")))?;
    open_supervising(settings, program).await
}

/// Tenancy whose dedicated tenants are served by `program serve-tenant`.
pub async fn open_supervising(
    settings: &Settings,
    program: std::path::PathBuf,
) -> Result<Tenancy, CliError> {
    let mut dedicated = DedicatedOptions::new(vec![program.into(), "serve-tenant".into()]);
    dedicated.idle = Duration::from_secs(settings.serving.dedicated_idle);
    dedicated.eager = settings.serving.dedicated_eager;
    dedicated.external = settings.serving.dedicated_address.clone();
    dedicated.env = settings.tenant_server_env();
    if let Some(base) = settings.serving.dedicated_uid_base {
        if !tenantry::dedicated::process::running_as_root() {
            return Err(CliError::usage(
                "DEDICATED_UID_BASE needs `serve` to run as root: it starts each dedicated \
                 tenant's server as a user of its own",
            ));
        }
        dedicated.uid_base = Some(base);
    }
    open_with(settings, Some(dedicated)).await
}

async fn open_with(
    settings: &Settings,
    dedicated: Option<DedicatedOptions>,
) -> Result<Tenancy, CliError> {
    let identification = settings.identification().map_err(CliError::usage)?;
    let options = TenancyOptions {
        dedicated,
        ..settings.options().map_err(CliError::usage)?
    };
    let migrations = migrations();
    Ok(match &settings.database_url {
        Some(url) => {
            let pool = connect(url, settings.pool_size, settings.database_pooler).await?;
            Tenancy::connect_with(pool, identification, migrations, options)
                .await
                .map_err(|e| match e {
                    tenantry::Error::UnsafeRole(message) => CliError::failed(format!(
                        "{message} (APP_ROLE names the role, APP_ROLE_PASSWORD its password)"
                    )),
                    other => other.into(),
                })?
        }
        None => {
            Tenancy::open_sqlite_with(&settings.data_dir, identification, migrations, options)
                .await?
        }
    })
}

/// The public site on the base domain: the landing page, health check, signup when it is
/// open, the console, Caddy's TLS `ask` and, with a token, the platform API.
fn public_router(tenancy: &Tenancy, serving: &Serving, auth: &AuthLimits) -> Router {
    let platform_token = serving.platform_token.clone();
    let signup = Signup::new(
        tenancy.clone(),
        PollsAdmin { auth: auth.clone() },
        serving.signup.options(),
    );
    let signup = match serving.signup.signup_pending {
        0 => signup,
        size => {
            let isolation = serving
                .signup
                .signup_isolation
                .unwrap_or_else(|| tenancy.default_isolation());
            signup.with_pending(PendingPool::start(tenancy.clone(), vec![(isolation, size)]))
        }
    };
    let signup_open = signup.enabled();
    let base = tenancy.identification().base_domain.to_string();
    // A browser gets a page with the ways in; an API client, the 404 it always got.
    let index = async move |headers: axum::http::HeaderMap| match welcome::wants_html(&headers) {
        true => welcome::public(&headers, &base, signup_open),
        false => axum::response::IntoResponse::into_response(crate::error::ApiError::NotFound),
    };
    let router = Router::new()
        .route("/", get(index))
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .merge(signup::router(signup))
        .merge(console::router(
            tenancy.clone(),
            auth.clone(),
            serving.dns_resolver.clone(),
        ))
        .merge(tenantry::http::tls_ask(tenancy.clone()));
    let router = match platform_token {
        Some(token) => router.merge(tenantry::http::platform_api::router(tenancy.clone(), token)),
        None => router,
    };
    router
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The background purge of tenants deleted more than `DELETE_GRACE_DAYS` ago, hourly while
/// the returned handle lives.
pub fn purge_sweep(tenancy: &Tenancy, serving: &Serving) -> tenantry::lifecycle::PurgeSweep {
    let grace = Duration::from_secs(serving.delete_grace_days.saturating_mul(86_400));
    tenantry::lifecycle::PurgeSweep::start(tenancy.clone(), grace, Duration::from_secs(3600))
}

/// The background checks of claimed custom domains, with DNS_RESOLVER, while the returned
/// handle lives.
pub fn domain_checks(tenancy: &Tenancy, serving: &Serving) -> DomainChecks {
    let schedule = DomainCheckSchedule {
        first_retry: Duration::from_secs(serving.domain_check_retry),
        ..DomainCheckSchedule::default()
    };
    DomainChecks::start(tenancy.clone(), serving.dns_resolver.clone(), schedule)
}

/// The worker running tenants' background jobs as `jobs` says, while the returned handle
/// lives; `None` if it says to run none here.
pub fn job_worker(tenancy: &Tenancy, jobs: &JobArgs) -> Option<Worker> {
    let options = jobs.worker()?;
    Some(Worker::start(
        tenancy.clone(),
        crate::jobs::registry(),
        options,
    ))
}

/// The listener on the serving address (`BIND`).
pub async fn listen(settings: &Settings) -> Result<tokio::net::TcpListener, CliError> {
    let bind = &settings.serving.bind;
    tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => {
                CliError::usage(format!("--bind '{bind}': {e} (expected HOST:PORT)"))
            }
            _ => CliError::failed(format!("cannot listen on {bind}: {e}")),
        })
}

/// One dedicated tenant's own server (`polls serve-tenant`): the tenant's database as the
/// tenant's own role, from the environment its supervisor sets (`DATABASE_URL`,
/// `TENANT_ID`, `TENANT_SLUG`), and the same routes as every other tenant's; with the
/// worker that runs the tenant's jobs in this process, unless JOB_WORKERS is 0.
pub async fn tenant_app(settings: &Settings) -> Result<(Router, Option<Worker>), CliError> {
    let (id, slug, url) = tenant_environment(settings)?;
    let layer = match url.starts_with("sqlite:") {
        true => {
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.tenant_pool_size.max(2))
                .connect_with(SingleTenantLayer::sqlite_options(url)?)
                .await
                .map_err(|e| CliError::failed(format!("cannot open the tenant's file: {e}")))?;
            SingleTenantLayer::dedicated_sqlite(pool, id, slug)
        }
        false => {
            let pool = tenant_pool(settings, url, id).await?;
            SingleTenantLayer::dedicated(pool, id, slug, settings.database_pooler)
        }
    };
    let (name, tenant_settings) = tenant_profile()?;
    let layer = layer
        .with_profile(name, tenant_settings)
        .following_supervisor()
        .with_settings_schema(crate::domain::rules::schema())
        .with_hosts(tenant_hosts()?)
        .with_cache(settings.cache().map_err(CliError::usage)?)
        .with_files(settings.files().map_err(CliError::usage)?);
    let layer = match &settings.router_secret {
        Some(secret) => layer.with_router_secret(secret),
        None => layer,
    };
    // The version tells an upgrade (`migrate --wave-size`) what the restarted server runs.
    let health = json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") });
    let routes = Router::new()
        .route("/health", get(|| async move { Json(health) }))
        .merge(tenant_router(
            AuthLimits::new(settings.serving.limits.auth()),
            settings.serving.dns_resolver.clone(),
        ))
        .method_not_allowed_fallback(method_not_allowed);
    let worker = settings
        .serving
        .jobs
        .worker()
        .map(|options| layer.worker(crate::jobs::registry(), options));
    let service = NormalizePathLayer::trim_trailing_slash().layer(layer.layer(routes));
    Ok((Router::new().fallback_service(service), worker))
}

/// A dedicated tenant's PostgreSQL database, as its own role (`DATABASE_URL`,
/// `TENANT_ID`, `TENANT_SLUG`), with its id and slug.
pub async fn tenant_database(settings: &Settings) -> Result<(PgPool, uuid::Uuid, Slug), CliError> {
    let (id, slug, url) = tenant_environment(settings)?;
    if url.starts_with("sqlite:") {
        return Err(CliError::usage(
            "a SQLite deployment's tenant files are migrated by `polls migrate`",
        ));
    }
    Ok((tenant_pool(settings, url, id).await?, id, slug))
}

/// The tenant's id, slug and database URL, from the environment its supervisor sets.
fn tenant_environment(settings: &Settings) -> Result<(uuid::Uuid, Slug, &str), CliError> {
    let var =
        |name: &str| std::env::var(name).map_err(|_| CliError::usage(format!("{name} is not set")));
    let id: uuid::Uuid = var("TENANT_ID")?
        .parse()
        .map_err(|e| CliError::usage(format!("TENANT_ID: {e}")))?;
    let slug = Slug::parse(&var("TENANT_SLUG")?).map_err(|e| CliError::usage(e.to_string()))?;
    let url = settings
        .database_url
        .as_deref()
        .ok_or_else(|| CliError::usage("DATABASE_URL is not set"))?;
    Ok((id, slug, url))
}

/// The hosts the tenant's server answers for (`TENANT_HOSTS`, comma-separated: its
/// domains), as its supervisor or its deployment files give them.
fn tenant_hosts() -> Result<Vec<tenantry::HostName>, CliError> {
    let hosts = std::env::var("TENANT_HOSTS").map_err(|_| {
        CliError::usage(
            "TENANT_HOSTS is not set: the tenant's domains, comma-separated (`polls deploy` \
             writes them into the deployment files)",
        )
    })?;
    hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            tenantry::HostName::parse(h)
                .map_err(|e| CliError::usage(format!("TENANT_HOSTS: '{h}': {e}")))
        })
        .collect()
}

/// The tenant's display name and settings, from the environment its supervisor sets
/// (`TENANT_NAME`, `TENANT_SETTINGS`); its slug and no settings when they are absent.
fn tenant_profile() -> Result<(String, serde_json::Value), CliError> {
    let name = std::env::var("TENANT_NAME")
        .or_else(|_| std::env::var("TENANT_SLUG"))
        .unwrap_or_default();
    let settings = match std::env::var("TENANT_SETTINGS") {
        Ok(json) => serde_json::from_str(&json)
            .map_err(|e| CliError::usage(format!("TENANT_SETTINGS: {e}")))?,
        Err(_) => json!({}),
    };
    Ok((name, settings))
}

async fn tenant_pool(settings: &Settings, url: &str, id: uuid::Uuid) -> Result<PgPool, CliError> {
    pool_options(settings.tenant_pool_size.max(2))
        .connect_with(SingleTenantLayer::connect_options(
            url,
            id,
            settings.database_pooler,
        )?)
        .await
        .map_err(|e| CliError::failed(format!("cannot reach the tenant's database: {e}")))
}

/// The whole app as one router, with the default limits on sign-up and login and signup
/// closed.
pub fn app(tenancy: Tenancy, platform_token: Option<String>) -> Router {
    let serving = Serving {
        platform_token,
        ..Serving::default()
    };
    app_with(tenancy, &serving)
}

/// The whole app as one router, as `serving` sets it up: trailing slashes trimmed, then
/// tenancy, then the routes.
pub fn app_with(tenancy: Tenancy, serving: &Serving) -> Router {
    let auth = AuthLimits::new(serving.limits.auth());
    let public = public_router(&tenancy, serving, &auth);
    let tenants = TenancyLayer::new(tenancy)
        .public(public)
        .layer(tenant_router(auth, serving.dns_resolver.clone()));
    let service = NormalizePathLayer::trim_trailing_slash().layer(tenants);
    Router::new().fallback_service(service)
}

/// Every route of a tenant: the JSON API and the admin, each over the domain and neither
/// over the other. `auth` hashes passwords and limits sign-ups and logins for both; unknown
/// paths and methods get JSON errors.
pub fn tenant_router(auth: AuthLimits, dns: DnsResolver) -> Router {
    Router::new()
        .merge(api_router(auth.clone()))
        .merge(admin::router(auth, dns))
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(flush_on_write))
}

/// Any request that may write to a tenant (the API's or the admin's) flushes the tenant's
/// cached values, now and again once its transaction commits: a cached read never misses
/// a write that was answered.
async fn flush_on_write(
    cache: TenantCache,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !request.method().is_safe() {
        cache.flush().await;
    }
    next.run(request).await
}

/// Serves `app` on `listener` within `limits` until SIGINT or SIGTERM.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, limits: ServerLimits) {
    tenantry::serve(listener, app, limits, shutdown_signals()).await
}

/// Waits for the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use futures::StreamExt;
    shutdown_signals().next().await;
}

/// Every SIGINT and SIGTERM the process receives.
fn shutdown_signals() -> impl Stream<Item = ()> + Unpin {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).expect("SIGINT can be handled");
    let terminate = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    let stream = |mut s: tokio::signal::unix::Signal| {
        Box::pin(futures::stream::poll_fn(move |cx| s.poll_recv(cx)))
    };
    futures::stream::select(stream(interrupt), stream(terminate))
}
