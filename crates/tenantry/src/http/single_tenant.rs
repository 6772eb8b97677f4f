//! [`SingleTenantLayer`]: serves every request as one fixed tenant, with no identification.
//!
//! For a process that serves a single tenant (the fully isolated architecture), and as the
//! "tenancy off" baseline of the benchmarks: the same handlers, the same [`TenantDb`]
//! extractor, but transactions open with a plain `BEGIN`, so the pool's connections must
//! already be in the tenant's schema (its own database, or `search_path` in the connect
//! options).
//!
//! [`TenantDb`]: crate::TenantDb

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use std::os::fd::AsFd;
use std::str::FromStr;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::watch;

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use tower::{Layer, Service};
use tracing::Instrument;
use uuid::Uuid;

use crate::cache::Cache;
#[cfg(feature = "sqlite")]
use crate::catalog::file_options;
use crate::db::DbPool;
use crate::dedicated::{MOUNT_HEADER, ROUTER_HEADER};
use crate::files::Files;
use crate::host::HostName;
use crate::http::identify::request_host;
use crate::http::layer::{serve_in_scope, take_ready};
use crate::http::rejection::TenancyRejection;
use crate::http::scope::RequestScope;
use crate::http::scope::SettingsWriter;
use crate::jobs::{Jobs, LocalDue, OneTenant, Source, Worker, WorkerOptions};
use crate::pooler::Pooler;
use crate::pools::PoolLease;
use crate::profile;
use crate::secret::same_token;
use crate::settings::SettingsSchema;
use crate::slug::{SchemaName, Slug};
use crate::tenant::{IsolationMode, Placement, Tenant};

/// Serves every request as `tenant`, on `pool`.
#[derive(Clone)]
pub struct SingleTenantLayer {
    pool: PoolLease,
    /// The tenant as it is now: its name and settings change when its supervisor says so.
    profile: watch::Receiver<Profile>,
    /// The statement that opens each request's transaction.
    begin: Arc<str>,
    /// The app's settings, against which a change handed back to the router is checked.
    schema: Option<SettingsSchema>,
    /// The hosts it answers for; `None`: any.
    hosts: Option<Arc<[HostName]>>,
    /// The mark of the router whose requests may change settings; `None`: no router's.
    router_secret: Option<Arc<str>>,
    /// Where its handlers' cached values live: in this process unless
    /// [`with_cache`](Self::with_cache) says otherwise.
    cache: Cache,
    /// When its jobs are next due: it has no catalog to keep that in.
    jobs: Arc<LocalDue>,
    /// Where its files are kept, if anywhere.
    files: Option<Files>,
}

impl SingleTenantLayer {
    /// Every request is `tenant`'s; the connections of `pool` must already be in its
    /// schema.
    #[cfg(feature = "postgres")]
    pub fn new(pool: PgPool, tenant: Tenant) -> Self {
        Self::on(DbPool::Postgres(pool), tenant)
    }

    /// Every request is `tenant`'s, on its SQLite file.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(pool: SqlitePool, tenant: Tenant) -> Self {
        Self::on(DbPool::Sqlite(pool), tenant)
    }

    /// A dedicated tenant's own server: `pool` reaches the tenant's database as the
    /// tenant's own role, built with [`SingleTenantLayer::connect_options`] for the same
    /// `pooler`. Through a transaction-mode pooler no session state can be relied on, so
    /// each transaction sets the tenant's schema and id itself, as pooled tenants' do.
    #[cfg(feature = "postgres")]
    pub fn dedicated(pool: PgPool, id: Uuid, slug: Slug, pooler: Pooler) -> Self {
        let tenant = dedicated_tenant(id, slug);
        match pooler {
            Pooler::None => Self::new(pool, tenant),
            Pooler::Transaction => Self {
                pool: PoolLease::unclaimed(DbPool::Postgres(pool), pooler),
                begin: Arc::from(tenant.begin_statement()),
                profile: Profile::fixed(tenant),
                schema: None,
                hosts: None,
                router_secret: None,
                cache: Cache::default(),
                jobs: Arc::default(),
                files: None,
            },
        }
    }

    /// A dedicated tenant's own server in a SQLite deployment: `pool` opens the tenant's
    /// file, built with [`SingleTenantLayer::sqlite_options`].
    #[cfg(feature = "sqlite")]
    pub fn dedicated_sqlite(pool: SqlitePool, id: Uuid, slug: Slug) -> Self {
        Self::sqlite(pool, dedicated_tenant(id, slug))
    }

    /// The tenant's display name and settings, as its supervisor gives them
    /// (`TENANT_NAME`, `TENANT_SETTINGS`).
    pub fn with_profile(self, name: String, settings: serde_json::Value) -> Self {
        let tenant = self.profile.borrow().tenant.with_profile(name, settings);
        Self {
            profile: Profile::fixed(tenant),
            ..self
        }
    }

    /// Takes the changes of the tenant's name and settings that its supervisor writes on
    /// this process's standard input, when that is a pipe (see [`crate::profile`]): a
    /// settings change then needs no restart.
    pub fn following_supervisor(self) -> Self {
        let stdin = std::io::stdin().as_fd().try_clone_to_owned();
        let Ok(pipe) = stdin.and_then(pipe::Receiver::from_owned_fd) else {
            return self;
        };
        let (sender, profile) = watch::channel(self.profile.borrow().clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match profile::parse(&line) {
                    Ok((name, settings)) => {
                        let tenant = sender.borrow().tenant.with_profile(name, settings);
                        sender.send_replace(Profile::of(tenant));
                    }
                    Err(error) => tracing::warn!(%error, "a malformed profile from the supervisor"),
                }
            }
        });
        Self { profile, ..self }
    }

    /// Lets handlers change the tenant's settings ([`SettingsUpdate`](super::SettingsUpdate))
    /// when a router that applies such changes forwarded the request: checked here against
    /// `schema`, applied by the router.
    pub fn with_settings_schema(self, schema: SettingsSchema) -> Self {
        Self {
            schema: Some(schema),
            ..self
        }
    }

    /// Its handlers' [`TenantCache`](crate::http::TenantCache) values in `cache` (Redis, to
    /// share them with other servers of the tenant).
    pub fn with_cache(self, cache: Cache) -> Self {
        Self { cache, ..self }
    }

    /// Takes settings changes only from requests that carry `secret` in
    /// [`ROUTER_HEADER`](crate::dedicated::ROUTER_HEADER): the mark of the router that started this
    /// server (handed over on its standard input), which no other process knows.
    pub fn with_router_secret(self, secret: &str) -> Self {
        Self {
            router_secret: Some(Arc::from(secret)),
            ..self
        }
    }

    /// Answers only requests for `hosts` (the tenant's domains, `TENANT_HOSTS`), for a
    /// path-prefix mount of this tenant (`/t/<slug>`, which only its router sets), and
    /// `GET /health`; any other host is 421. A router's stale configuration can then never
    /// serve one tenant's site under another's host.
    pub fn with_hosts(self, hosts: Vec<HostName>) -> Self {
        Self {
            hosts: Some(hosts.into()),
            ..self
        }
    }

    /// Connect options for the file of a dedicated tenant of a SQLite deployment, from the
    /// `sqlite://<path>` URL its supervisor gives: opened as tenantry opens tenant files
    /// (WAL, a busy timeout, foreign keys), never created.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
        let given = SqliteConnectOptions::from_str(url)?;
        Ok(file_options(given.get_filename()))
    }

    /// Connect options for the pool of a dedicated tenant's own server: `url`, with the
    /// tenant's schema and id set for the whole session, so that a plain `BEGIN` is in the
    /// tenant's context (nobody else's can be reached with its credentials anyway); through
    /// a transaction-mode pooler, the pooler's options and nothing of the session.
    #[cfg(feature = "postgres")]
    pub fn connect_options(
        url: &str,
        id: Uuid,
        pooler: Pooler,
    ) -> Result<PgConnectOptions, sqlx::Error> {
        if pooler == Pooler::Transaction {
            // A transaction-mode pooler refuses startup options; each transaction sets them.
            return pooler.connect_options(url);
        }
        let schema = SchemaName::own_database();
        Ok(PgConnectOptions::from_str(url)?.options([
            ("search_path", schema.as_str().to_owned()),
            ("app.tenant_id", id.to_string()),
        ]))
    }

    fn on(pool: DbPool, tenant: Tenant) -> Self {
        let begin = pool.plain_begin();
        Self {
            pool: PoolLease::unclaimed(pool, Pooler::None),
            profile: Profile::fixed(tenant),
            begin: Arc::from(begin),
            schema: None,
            hosts: None,
            router_secret: None,
            cache: Cache::default(),
            jobs: Arc::default(),
            files: None,
        }
    }

    /// The tenant's files are kept in `files` (under its prefix, as the router's are).
    pub fn with_files(self, files: Files) -> Self {
        Self {
            files: Some(files),
            ..self
        }
    }

    /// A worker running the tenant's background jobs with `jobs`, in this process: a
    /// dedicated tenant's jobs run in its own server, as its requests do.
    pub fn worker<S: Clone + Send + Sync + 'static>(
        &self,
        jobs: Jobs<S>,
        options: WorkerOptions,
    ) -> Worker {
        let profile = self.profile.clone();
        let one = OneTenant {
            pool: self.pool.clone(),
            begin: self.begin.clone(),
            tenant: Arc::new(move || profile.borrow().tenant.clone()),
            cache: self.cache.clone(),
            files: self.files.clone(),
            due: self.jobs.clone(),
        };
        Worker::start_on(Source::One(Box::new(one)), jobs, options)
    }
}

impl SingleTenantLayer {
    /// The refusal of a request for a host that is not this tenant's.
    fn misdirected(&self, request: &Request) -> Option<TenancyRejection> {
        let hosts = self.hosts.as_ref()?;
        if request.uri().path() == "/health" {
            return None;
        }
        let host = match request_host(request.headers(), request.uri()) {
            Ok(host) => host,
            Err(error) => return Some(error.into()),
        };
        let own_mount = format!("/t/{}", self.profile.borrow().tenant.slug);
        let mounted = request
            .headers()
            .get(MOUNT_HEADER)
            .is_some_and(|mount| mount.as_bytes() == own_mount.as_bytes());
        match hosts.contains(&host) || mounted {
            true => None,
            false => Some(TenancyRejection::MisdirectedHost(host.to_string())),
        }
    }
}

/// The tenant as a dedicated server serves it now, with the digest of its profile.
#[derive(Clone)]
struct Profile {
    tenant: Arc<Tenant>,
    digest: HeaderValue,
}

impl Profile {
    fn of(tenant: Tenant) -> Self {
        let digest = profile::digest(&tenant.name, &tenant.settings);
        Self {
            digest: HeaderValue::from_str(&digest).expect("hex is a header value"),
            tenant: Arc::new(tenant),
        }
    }

    /// A profile that never changes.
    fn fixed(tenant: Tenant) -> watch::Receiver<Self> {
        watch::channel(Self::of(tenant)).1
    }
}

/// A dedicated tenant as its own server knows it: its id and slug.
fn dedicated_tenant(id: Uuid, slug: Slug) -> Tenant {
    let placement = Placement {
        server: None,
        server_url: None,
        database: None,
        schema: SchemaName::own_database(),
    };
    let name = slug.to_string();
    Tenant::new(id, slug, name, IsolationMode::Dedicated, placement)
}

impl<S> Layer<S> for SingleTenantLayer {
    type Service = SingleTenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SingleTenantService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`SingleTenantLayer`].
#[derive(Clone)]
pub struct SingleTenantService<S> {
    inner: S,
    layer: SingleTenantLayer,
}

impl<S> Service<Request> for SingleTenantService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The tenant is known, but a malformed `Host` is refused as the multi-tenant router
        // refuses it, whoever routed the request here (nginx passes some through).
        if request.headers().contains_key(header::HOST)
            && let Err(error) = request_host(request.headers(), request.uri())
        {
            let refused = TenancyRejection::from(error).into_response();
            return Box::pin(async move { Ok(refused) });
        }
        if let Some(refused) = self.layer.misdirected(&request) {
            return Box::pin(async move { Ok(refused.into_response()) });
        }
        let inner = take_ready(&mut self.inner);
        // The router of a dedicated tenant says where the tenant is mounted (`/t/<slug>`);
        // only it reaches this server, and it always sets or removes the header.
        let mount = request
            .headers_mut()
            .remove(MOUNT_HEADER)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .filter(|mount| {
                mount.starts_with('/')
                    && mount
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b))
            })
            .unwrap_or_default();
        // Only the router that started this server knows its mark (nginx removes any).
        let mark = request.headers_mut().remove(ROUTER_HEADER);
        let routed = match (&self.layer.router_secret, mark) {
            (Some(secret), Some(mark)) => mark.to_str().is_ok_and(|m| same_token(secret, m)),
            _ => false,
        };
        let writer = match (&self.layer.schema, routed) {
            (Some(schema), true) => SettingsWriter::Router(schema.clone()),
            _ => SettingsWriter::None,
        };
        let profile = self.layer.profile.borrow().clone();
        let health = request.uri().path() == "/health";
        // What this server logs is its tenant's, not to be read as the router's.
        let span = tracing::info_span!("tenant_server", tenant = %profile.tenant.slug);
        let scope = RequestScope::new(
            self.layer.pool.clone(),
            profile.tenant,
            self.layer.begin.clone(),
            mount,
            self.layer.cache.clone(),
        )
        .writing_settings(writer)
        .waking_jobs(self.layer.jobs.wake())
        .with_files(self.layer.files.clone());
        Box::pin(
            async move {
                let mut response = serve_in_scope(inner, request, scope).await;
                if health {
                    response
                        .headers_mut()
                        .insert(profile::PROFILE_HEADER, profile.digest);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

impl std::fmt::Debug for SingleTenantLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleTenantLayer")
            .field("tenant", &self.profile.borrow().tenant.slug)
            .field("pool", &self.pool)
            .finish()
    }
}

impl<S> std::fmt::Debug for SingleTenantService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleTenantService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::http::SettingsUpdate;

    /// Whether a request with `headers` may change the tenant's settings, on a server of
    /// `loki` started with the router's mark `secret` and answering `loki.example`.
    async fn may_change(headers: &[(&str, &str)]) -> (u16, String) {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let slug = Slug::parse("loki").unwrap();
        let layer = SingleTenantLayer::dedicated_sqlite(pool, Uuid::new_v4(), slug)
            .with_settings_schema(SettingsSchema::default())
            .with_router_secret("the-secret")
            .with_hosts(vec![HostName::parse("loki.example").unwrap()]);
        let routes = Router::new().route(
            "/",
            get(|update: SettingsUpdate| async move { update.available().to_string() }),
        );
        let mut request = Request::builder().uri("/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = layer
            .layer(routes)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn only_the_routers_own_mark_lets_settings_change() {
        let host = ("host", "loki.example");
        assert_eq!(may_change(&[host]).await, (200, "false".into()));
        let guessed = ("x-tenantry-router", "settings");
        assert_eq!(may_change(&[host, guessed]).await, (200, "false".into()));
        let marked = ("x-tenantry-router", "the-secret");
        assert_eq!(may_change(&[host, marked]).await, (200, "true".into()));
    }

    #[tokio::test]
    async fn another_tenants_host_or_mount_is_misdirected() {
        let (status, body) = may_change(&[("host", "freya.example")]).await;
        assert_eq!(status, 421, "{body}");
        let freya_mount = [("host", "base.example"), (MOUNT_HEADER, "/t/freya")];
        assert_eq!(may_change(&freya_mount).await.0, 421);
        let own_mount = [("host", "base.example"), (MOUNT_HEADER, "/t/loki")];
        assert_eq!(may_change(&own_mount).await.0, 200);
    }
}
