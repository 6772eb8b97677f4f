//! [`TenancyLayer`]: identifies the tenant of each request and serves it in that tenant's context.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::http::client::ClientAddr;

#[cfg(feature = "dedicated")]
use super::forwarded;
use super::identify::{Identified, request_host};
use super::scope::SettingsWriter;
use crate::host::HostName;
use crate::http::rejection::TenancyRejection;
use crate::http::scope::RequestScope;
use crate::layout::{Route, TxRoute};
use crate::pools::Access;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::TenantStatus;

/// Wraps the tenant application (a whole [`Router`], so that path-prefix rewriting happens
/// before routing) and, optionally, the public site served on the bare base domain.
///
/// Unknown tenants get 404, suspended ones 403, malformed hosts 400, all as JSON. A panicking
/// handler becomes a 500 JSON response and its transaction is rolled back.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let data = tempfile::tempdir()?;
/// # let migrations = tenantry::Migrations::new(sqlx::migrate::Migrator::DEFAULT, sqlx::migrate::Migrator::DEFAULT)?
/// #     .with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite"))?;
/// # let identification = tenantry::Identification::new(tenantry::HostName::parse("app.localhost")?);
/// # let tenancy = tenantry::Tenancy::open_sqlite(data.path(), identification, migrations, Default::default()).await?;
/// use axum::{Router, body::Body, http::Request, routing::get};
/// use tenantry::{IsolationMode, NewTenant, Slug, TenancyLayer, TenancyRejection, TenantDb};
/// use tower::{Layer, ServiceExt};
///
/// async fn count_notes(mut db: TenantDb) -> Result<String, TenancyRejection> {
///     let n: i64 = db.query("SELECT count(*) FROM notes").fetch_scalar().await?;
///     Ok(n.to_string())
/// }
///
/// tenancy.create_tenant(NewTenant::new(Slug::parse("thor")?, IsolationMode::Database)).await?;
/// let routes = Router::new().route("/notes/count", get(count_notes));
/// let public = Router::new().route("/health", get(|| async { "ok" }));
/// let app = TenancyLayer::new(tenancy).public(public).layer(routes);
/// let request = Request::get("/notes/count").header("host", "thor.app.localhost");
/// let response = app.oneshot(request.body(Body::empty())?).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TenancyLayer {
    tenancy: Tenancy,
    sites: Sites,
}

/// The platform's own routers: the public site's, and each named site's.
#[derive(Clone, Default)]
struct Sites {
    public: Option<Router>,
    named: Arc<BTreeMap<Slug, Router>>,
}

impl TenancyLayer {
    /// A layer with no public site: the base domain answers 404.
    pub fn new(tenancy: Tenancy) -> Self {
        Self {
            tenancy,
            sites: Sites::default(),
        }
    }

    /// Serves `router` on the base domain and `www.<base domain>` (no tenant).
    pub fn public(mut self, router: Router) -> Self {
        self.sites.public = Some(router);
        self
    }

    /// Serves `router` on `<name>.<base domain>`, a site of the platform's own (a blog, a
    /// help centre), with the same identification, logs and errors as tenants' sites.
    ///
    /// # Panics
    /// If `name` is not among the [`Identification`](crate::Identification)'s sites, which
    /// keep tenants from taking it.
    pub fn site(mut self, name: &str, router: Router) -> Self {
        let site = self
            .tenancy
            .identification()
            .sites
            .iter()
            .find(|site| site.as_str() == name)
            .unwrap_or_else(|| {
                panic!(
                    "site '{name}' is not among the Identification's sites: add it with \
                     Identification::with_site, so that no tenant can take its name"
                )
            });
        Arc::make_mut(&mut self.sites.named).insert(site.clone(), router);
        self
    }
}

impl<S> Layer<S> for TenancyLayer {
    type Service = TenancyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenancyService {
            inner,
            tenancy: self.tenancy.clone(),
            sites: self.sites.clone(),
        }
    }
}

/// The service made by [`TenancyLayer`].
#[derive(Clone)]
pub struct TenancyService<S> {
    inner: S,
    tenancy: Tenancy,
    sites: Sites,
}

impl<S> Service<Request> for TenancyService<S>
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

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        let tenancy = self.tenancy.clone();
        let sites = self.sites.clone();
        let id = request_id(request.headers());
        let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
        let span = tracing::info_span!(
            "request",
            id = %id.to_str().unwrap_or_default(),
            method = %request.method(),
            path = %request.uri().path(),
            client = client.map(tracing::field::display),
            tenant = tracing::field::Empty,
            mode = tracing::field::Empty,
            site = tracing::field::Empty,
        );
        let started = Instant::now();
        let served = async move {
            let mut response = serve(tenancy, sites, inner, request).await;
            tracing::info!(
                status = response.status().as_u16(),
                // Milliseconds to the microsecond: 4.189, not 4.1888309999999995.
                latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
                "request"
            );
            response.headers_mut().insert(REQUEST_ID, id);
            Ok(response)
        };
        Box::pin(served.instrument(span))
    }
}

async fn serve<S>(tenancy: Tenancy, sites: Sites, inner: S, mut request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let host = match request_host(request.headers(), request.uri()) {
        Ok(host) => host,
        Err(error) => return TenancyRejection::from(error).into_response(),
    };
    let identified = match tenancy
        .identification()
        .identify(tenancy.catalog(), &host, request.headers(), request.uri())
        .await
    {
        Ok(identified) => identified,
        Err(rejection) => return rejection.into_response(),
    };
    match identified {
        Identified::Public => on_site(sites.public, &host, request).await,
        Identified::Site(name) => {
            tracing::Span::current().record("site", tracing::field::display(&name));
            on_site(sites.named.get(&name).cloned(), &host, request).await
        }
        Identified::Tenant { tenant, mount, uri } => {
            tracing::Span::current()
                .record("tenant", tracing::field::display(&tenant.slug))
                .record("mode", tenant.isolation.as_str());
            match tenant.status {
                TenantStatus::Active => {}
                TenantStatus::Suspended | TenantStatus::Deleted => {
                    return TenancyRejection::Suspended(tenant.slug.to_string()).into_response();
                }
                TenantStatus::Pending => {
                    return TenancyRejection::NoTenantForHost(host.to_string()).into_response();
                }
            }
            if tenant.moving && !request.method().is_safe() {
                return TenancyRejection::Moving(tenant.slug.to_string()).into_response();
            }
            if let Some(uri) = uri {
                *request.uri_mut() = uri;
            }
            let (pool, begin) = match tenancy.route(&tenant, Access::Tenant).await {
                Ok(Route::Transaction(TxRoute { pool, begin })) => (pool, begin),
                #[cfg(feature = "dedicated")]
                Ok(Route::Forward(address)) => {
                    return forwarded::forward_to(&tenancy, (&tenant, &mount), address, request)
                        .await;
                }
                Err(error) => return TenancyRejection::from(error).into_response(),
            };
            let cache = tenancy.cache().clone();
            let mut scope = RequestScope::new(pool, tenant.clone(), begin, mount, cache)
                .writing_settings(SettingsWriter::Catalog(tenancy.clone()))
                .waking_jobs(tenancy.jobs_wake())
                .with_files(tenancy.files().cloned());
            if !request.method().is_safe() {
                scope = scope.fenced(tenancy.catalog().clone());
            }
            let response = serve_in_scope(inner, request, scope).await;
            if response.status().is_server_error()
                && tenancy
                    .catalog()
                    .changed_since(&tenant)
                    .await
                    .unwrap_or(false)
            {
                return TenancyRejection::Changed(tenant.slug.to_string()).into_response();
            }
            response
        }
    }
}

/// The header a request's id is taken from and returned in.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's own `X-Request-Id` when it is a plausible id (1 to 64 letters, digits, `-`,
/// `_` or `.`), otherwise a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let plausible = |v: &&HeaderValue| {
        (1..=64).contains(&v.len())
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match headers.get(&REQUEST_ID).filter(plausible) {
        Some(given) => given.clone(),
        None => HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
            .expect("a UUID is a valid header value"),
    }
}

/// Takes the service `poll_ready` readied, leaving a fresh clone in its place: the ready one
/// is the one to call.
pub(crate) fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

/// `request` served by one of the platform's own sites, or 404 if it has none there.
async fn on_site(router: Option<Router>, host: &HostName, request: Request) -> Response {
    match router {
        Some(router) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => TenancyRejection::NoTenantForHost(host.to_string()).into_response(),
    }
}

/// Runs `inner` with `scope` in the request, turning a panic into a 500, then ends the
/// scope's transaction according to the response.
pub(crate) async fn serve_in_scope<S>(
    inner: S,
    mut request: Request,
    scope: RequestScope,
) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    request.extensions_mut().insert(scope.clone());
    let response = match AssertUnwindSafe(inner.oneshot(request))
        .catch_unwind()
        .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::error!(tenant = %scope.tenant.slug, "handler panicked");
            TenancyRejection::Internal("Internal server error.").into_response()
        }
    };
    scope.finish(response).await
}

impl std::fmt::Debug for Sites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sites")
            .field("public", &self.public.is_some())
            .field("named", &self.named.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl std::fmt::Debug for TenancyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenancyLayer")
            .field("tenancy", &self.tenancy)
            .field("sites", &self.sites)
            .finish()
    }
}

impl<S> std::fmt::Debug for TenancyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenancyService")
            .field("tenancy", &self.tenancy)
            .field("sites", &self.sites)
            .finish_non_exhaustive()
    }
}
