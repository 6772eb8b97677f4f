//! The operators' console at `/console` on the public site: tenants (search, filter,
//! pages), a tenant's page (suspend, resume, export, impersonate, delete and restore within
//! the grace period) and the audit log. Operators live in the catalog (`polls operators`); their sessions are the catalog's,
//! under a cookie of their own scoped to `/console`, so a tenant admin's cookie never opens
//! the console, nor the reverse. Every change is recorded in the audit log.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use tenantry::catalog::{AuditEntry, AuditFilter, DomainClaim, TenantDetails, TenantQuery};
use tenantry::db_server::DbServerName;
use tenantry::dns::DnsResolver;
use tenantry::http::ClientAddr;
use tenantry::lifecycle::{DomainCheck, MoveTarget};
use tenantry::web::{CookieJar, LoginLink, LoginThrottle, SessionCookie, random_token, same_token};
use tenantry::{HostName, IsolationMode, Slug, Tenancy, TenantStatus, TenantUpdate};
use uuid::Uuid;

use crate::limits::AuthLimits;

mod migrations;
mod tasks;

use tasks::{Tasks, ticking, to_task};

/// How long an operator's session lasts, in seconds (8 hours).
const SESSION_SECS: i64 = 8 * 60 * 60;

/// The operator's session cookie, scoped to `/console`.
const SESSION_COOKIE: &str = "tenantry_operator";

/// The login form's CSRF cookie.
const LOGIN_COOKIE: &str = "tenantry_console_login";

/// Tenants on a page of the list.
const PAGE: u32 = 50;

#[derive(Clone)]
struct Console {
    tenancy: Tenancy,
    auth: AuthLimits,
    logins: Arc<LoginThrottle>,
    dns: DnsResolver,
    tasks: Arc<Tasks>,
}

impl Console {
    /// Runs `change(tenancy, slug)` as `operator`'s `action` on the tenant `slug`: to its end,
    /// and into the audit log.
    async fn act<T, Change>(
        &self,
        operator: &Operator,
        action: &str,
        slug: &Slug,
        change: impl FnOnce(Tenancy, Slug) -> Change,
    ) -> Result<T, ConsoleError>
    where
        T: Send + 'static,
        Change: Future<Output = Result<T, tenantry::Error>> + Send + 'static,
    {
        let change = change(self.tenancy.clone(), slug.clone());
        Ok(self
            .tenancy
            .audited(&operator.actor(), action, slug.as_str(), change)
            .await?)
    }
}

/// The console's routes; `dns` looks up the records that verify custom domains.
pub fn router(tenancy: Tenancy, auth: AuthLimits, dns: DnsResolver) -> Router {
    let console = Console {
        tenancy,
        auth,
        logins: Arc::default(),
        dns,
        tasks: Arc::default(),
    };
    Router::new()
        .route("/console", get(tenants))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/style.css", get(crate::signup::style))
        .route("/console/audit", get(audit))
        .route("/console/servers", get(servers))
        .route("/console/tenants/{slug}", get(tenant))
        .route("/console/tenants/{slug}/export", get(export))
        .route("/console/tenants/{slug}/impersonate", post(impersonate))
        .route("/console/tenants/{slug}/domains", post(domains))
        .route("/console/tenants/{slug}/move", post(move_tenant))
        .route("/console/tenants/{slug}/settings", post(settings))
        .route(
            "/console/migrations",
            get(migrations::page).post(migrations::migrate_all),
        )
        .route("/console/tasks/{id}", get(tasks::page))
        .route("/console/tasks/{id}/events", get(tasks::events))
        .route("/console/task.js", get(tasks::script))
        .route("/console/tenants/{slug}/{action}", post(change))
        .with_state(console)
        .layer(axum::middleware::map_response(crate::signup::page_headers))
}

/// Why a console request was not served.
enum ConsoleError {
    /// Not logged in: to the login page.
    Login,
    /// A form without the session's CSRF token.
    Csrf,
    NotFound,
    Invalid(String),
    Failed(tenantry::Error),
}

impl From<tenantry::Error> for ConsoleError {
    fn from(error: tenantry::Error) -> Self {
        match error.kind() {
            tenantry::ErrorKind::NotFound => Self::NotFound,
            tenantry::ErrorKind::Invalid | tenantry::ErrorKind::Conflict => {
                Self::Invalid(error.to_string())
            }
            _ => Self::Failed(error),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Login => return Redirect::to("/console/login").into_response(),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "This form is stale or did not come from this site. Reload the page and try again."
                    .to_owned(),
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, "There is no such page.".to_owned()),
            Self::Invalid(message) => (StatusCode::BAD_REQUEST, message),
            Self::Failed(error) => {
                tracing::error!(%error, "a console request failed");
                let status = error.kind().status();
                (status, format!("The request failed: {error}"))
            }
        };
        let page = MessagePage {
            operator: String::new(),
            csrf: String::new(),
            message,
        };
        crate::admin::page(status, &page)
    }
}

/// A logged-in operator, from the session cookie.
struct Operator {
    name: String,
    csrf: String,
}

impl FromRequestParts<Console> for Operator {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Console,
    ) -> Result<Self, Self::Rejection> {
        let token = CookieJar::of(parts)
            .get(SESSION_COOKIE)
            .map(str::to_owned)
            .ok_or(ConsoleError::Login)?;
        let session = console
            .tenancy
            .catalog()
            .operator_session(&token)
            .await?
            .ok_or(ConsoleError::Login)?;
        Ok(Self {
            name: session.operator,
            csrf: session.csrf,
        })
    }
}

impl Operator {
    fn actor(&self) -> String {
        format!("operator:{}", self.name)
    }

    fn check(&self, csrf: &str) -> Result<(), ConsoleError> {
        match same_token(&self.csrf, csrf) {
            true => Ok(()),
            false => Err(ConsoleError::Csrf),
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    operator: String,
    csrf: String,
    message: String,
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    operator: String,
    csrf: String,
    name: String,
    error: String,
}

/// The console's cookies in a request, and how to set them (scoped to `/console`).
struct Cookies {
    session: Option<String>,
    login: Option<String>,
    jar: SessionCookie,
}

impl<S: Send + Sync> FromRequestParts<S> for Cookies {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let cookies = CookieJar::of(parts);
        Ok(Self {
            session: cookies.get(SESSION_COOKIE).map(str::to_owned),
            login: cookies.get(LOGIN_COOKIE).map(str::to_owned),
            jar: SessionCookie::for_request(parts, "/console"),
        })
    }
}

fn login_page(status: StatusCode, cookies: &Cookies, name: String, error: &str) -> Response {
    let token = random_token();
    let page = LoginPage {
        operator: String::new(),
        csrf: token.clone(),
        name,
        error: error.to_owned(),
    };
    let mut response = crate::admin::page(status, &page);
    let cookie = cookies.jar.set(LOGIN_COOKIE, &token, 3600);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// `GET /console/login`.
async fn login_form(cookies: Cookies) -> Response {
    login_page(StatusCode::OK, &cookies, String::new(), "")
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// `POST /console/login`: an operator's right password starts a session. Logins are limited
/// per client address (`AUTH_RATE_PER_ADDRESS` a minute) and wrong passwords per name (5 in
/// 15 minutes), then 429; failures are audited.
async fn login(
    State(console): State<Console>,
    client: Option<Extension<ClientAddr>>,
    cookies: Cookies,
    Form(form): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    if !cookies
        .login
        .as_ref()
        .is_some_and(|expected| same_token(expected, &form.csrf))
    {
        return Err(ConsoleError::Csrf);
    }
    let name = form.name.trim().to_owned();
    if name.len() > 40 || form.password.len() > 128 {
        return Ok(login_page(
            StatusCode::BAD_REQUEST,
            &cookies,
            String::new(),
            "Wrong name or password.",
        ));
    }
    let admitted = match client {
        Some(Extension(client)) => console.auth.admit_address(client),
        None => Ok(()),
    };
    let attempt = admitted.and_then(|()| console.logins.attempt(Uuid::nil(), &name));
    let attempt = match attempt {
        Ok(attempt) => attempt,
        Err(wait) => {
            let mut response = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                &cookies,
                name,
                "Too many logins. Try again later.",
            );
            let retry = HeaderValue::from(wait.as_secs().max(1));
            response.headers_mut().insert(header::RETRY_AFTER, retry);
            return Ok(response);
        }
    };
    let catalog = console.tenancy.catalog();
    let hash = catalog.operator_password_hash(&name).await?;
    let right = match hash {
        Some(hash) => console
            .auth
            .hasher
            .verify(form.password.clone(), hash)
            .await
            .unwrap_or(false),
        None => false,
    };
    let actor = format!("operator:{name}");
    if !right {
        attempt.failed();
        catalog
            .audit(&actor, "operator.login", None, "failed: wrong password")
            .await?;
        return Ok(login_page(
            StatusCode::BAD_REQUEST,
            &cookies,
            name,
            "Wrong name or password.",
        ));
    }
    attempt.succeeded();
    let (token, _) = catalog.start_operator_session(&name, SESSION_SECS).await?;
    catalog.audit(&actor, "operator.login", None, "ok").await?;
    let mut response = Redirect::to("/console").into_response();
    let jar = &cookies.jar;
    let lifetime = SESSION_SECS.unsigned_abs();
    response.headers_mut().append(
        header::SET_COOKIE,
        jar.set(SESSION_COOKIE, &token, lifetime),
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, jar.clear(LOGIN_COOKIE));
    Ok(response)
}

/// A console form: its CSRF token, and what the action it posts to reads (the new
/// `status`, the slug typed to `confirm` a deletion, a rename's `name` and `new_slug`).
#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    confirm: String,
    /// A rename's new display name and slug (empty: unchanged).
    #[serde(default)]
    name: String,
    #[serde(default)]
    new_slug: String,
}

/// `POST /console/logout`.
async fn logout(
    State(console): State<Console>,
    operator: Operator,
    cookies: Cookies,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    operator.check(&form.csrf)?;
    if let Some(token) = &cookies.session {
        console
            .tenancy
            .catalog()
            .end_operator_session(token)
            .await?;
    }
    let mut response = Redirect::to("/console/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookies.jar.clear(SESSION_COOKIE));
    Ok(response)
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    page: u32,
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    operator: String,
    csrf: String,
    q: String,
    status: String,
    mode: String,
    tenants: Vec<TenantDetails>,
    /// Each tenant's size, as shown.
    sizes: Vec<String>,
    total: i64,
    page: u32,
    pages: u32,
}

impl TenantsPage {
    /// The list's address with `page`, keeping the filters.
    fn page_link(&self, page: u32) -> String {
        let query = serde_urlencoded::to_string([
            ("q", self.q.as_str()),
            ("status", self.status.as_str()),
            ("mode", self.mode.as_str()),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default();
        format!("/console?{query}")
    }
}

/// `GET /console`: the tenants, searched by slug, name or domain, filtered by status and
/// mode, a page of 50 at a time.
async fn tenants(
    State(console): State<Console>,
    operator: Operator,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(list) = query.map_err(|e| ConsoleError::Invalid(e.body_text()))?;
    let status = match list.status.as_str() {
        "" => None,
        "active" => Some(TenantStatus::Active),
        "suspended" => Some(TenantStatus::Suspended),
        "deleted" => Some(TenantStatus::Deleted),
        other => return Err(ConsoleError::Invalid(format!("unknown status '{other}'"))),
    };
    let isolation = match list.mode.as_str() {
        "" => None,
        mode => Some(
            mode.parse::<IsolationMode>()
                .map_err(ConsoleError::Invalid)?,
        ),
    };
    let page = list.page.max(1);
    let query = TenantQuery {
        search: list.q.clone(),
        status,
        isolation,
        offset: (page - 1).saturating_mul(PAGE),
        limit: PAGE,
    };
    let found = console.tenancy.catalog().page(&query).await?;
    let listed: Vec<_> = found.tenants.iter().map(|d| d.tenant.clone()).collect();
    let sizes = futures::stream::iter(listed)
        .map(|tenant| {
            let tenancy = console.tenancy.clone();
            async move { size_of(&tenancy, &tenant).await }
        })
        .buffered(8)
        .collect()
        .await;
    let pages = u32::try_from(found.total.max(1).unsigned_abs().div_ceil(u64::from(PAGE)))
        .unwrap_or(u32::MAX);
    let page = TenantsPage {
        operator: operator.name,
        csrf: operator.csrf,
        q: list.q,
        status: list.status,
        mode: list.mode,
        tenants: found.tenants,
        sizes,
        total: found.total,
        page,
        pages,
    };
    Ok(crate::admin::page(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "console/tenant.html")]
struct TenantPage {
    operator: String,
    csrf: String,
    details: TenantDetails,
    size: String,
    claims: Vec<DomainClaim>,
    drops: String,
    audit: Vec<AuditEntry>,
}

/// The tenant's size as the console shows it: `1.5 MB`, `shared` where its rows sit among
/// other tenants', `?` where it cannot be read now (a database server down).
async fn size_of(tenancy: &Tenancy, tenant: &tenantry::Tenant) -> String {
    match tenancy.tenant_size(tenant).await {
        Ok(Some(bytes)) => {
            let bytes = bytes as f64;
            match ["B", "kB", "MB", "GB", "TB"]
                .iter()
                .enumerate()
                .find(|(i, _)| bytes < 1000f64.powi(*i as i32 + 1))
            {
                Some((0, unit)) => format!("{bytes} {unit}"),
                Some((i, unit)) => format!("{:.1} {unit}", bytes / 1000f64.powi(i as i32)),
                None => format!("{:.1} PB", bytes / 1e15),
            }
        }
        Ok(None) => "shared".into(),
        Err(error) => {
            tracing::warn!(%error, tenant = %tenant.slug, "the tenant's size could not be read");
            "?".into()
        }
    }
}

fn slug_of(raw: &str) -> Result<Slug, ConsoleError> {
    Slug::parse(raw).map_err(|_| ConsoleError::NotFound)
}

/// The tenant a page is about, from its path; a path no slug can be is not found.
struct TenantPath(Slug);

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(slug) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ConsoleError::NotFound)?;
        slug_of(&slug).map(Self)
    }
}

/// `GET /console/tenants/{slug}`.
async fn tenant(
    State(console): State<Console>,
    operator: Operator,
    TenantPath(slug): TenantPath,
) -> Result<Response, ConsoleError> {
    let catalog = console.tenancy.catalog();
    let details = catalog.details(&slug).await?;
    let drops = console.tenancy.what_deleting_drops(&details.tenant)?;
    let filter = AuditFilter {
        target: Some(slug.to_string()),
        limit: 20,
        ..AuditFilter::default()
    };
    let page = TenantPage {
        operator: operator.name,
        csrf: operator.csrf,
        claims: console.tenancy.domain_claims(&slug).await?,
        size: size_of(&console.tenancy, &details.tenant).await,
        details,
        drops,
        audit: catalog.audit_log(&filter).await?,
    };
    Ok(crate::admin::page(StatusCode::OK, &page))
}

/// `GET /console/tenants/{slug}/export`: the tenant's export, as a download.
async fn export(
    State(console): State<Console>,
    operator: Operator,
    TenantPath(slug): TenantPath,
) -> Result<Response, ConsoleError> {
    let change = |tenancy: Tenancy, slug: Slug| async move { tenancy.export_tenant(&slug).await };
    let export = console
        .act(&operator, "tenant.export", &slug, change)
        .await?;
    let body = serde_json::to_vec(&export).map_err(|e| ConsoleError::Invalid(e.to_string()))?;
    let disposition = format!("attachment; filename=\"{slug}.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// `POST /console/tenants/{slug}/impersonate`: opens the tenant's admin as its first staff
/// user through a one-time login link; the session it starts shows the operator's name on
/// every page and lasts an hour at most.
async fn impersonate(
    State(console): State<Console>,
    operator: Operator,
    headers: HeaderMap,
    TenantPath(slug): TenantPath,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    operator.check(&form.csrf)?;
    let details = console.tenancy.catalog().details(&slug).await?;
    let name = operator.name.clone();
    let change = |tenancy: Tenancy, slug: Slug| async move {
        tenancy
            .in_tenant(&slug, async |db| -> Result<_, tenantry::Error> {
                let staff: Option<i64> = db
                    .query(
                        "SELECT id FROM users WHERE is_staff OR is_superuser \
                         ORDER BY is_superuser DESC, id LIMIT 1",
                    )
                    .fetch_optional_scalar()
                    .await?;
                let Some(user) = staff else {
                    return Ok(None);
                };
                Ok(Some(LoginLink::issue_for(db, user, Some(&name)).await?))
            })
            .await
    };
    let token = console
        .act(&operator, "tenant.impersonate", &slug, change)
        .await?;
    let Some(token) = token else {
        return Err(ConsoleError::Invalid(format!(
            "'{slug}' has no staff user to open its admin as"
        )));
    };
    let site = tenantry::http::site_url(&console.tenancy, &details, &headers);
    Ok(Redirect::to(&format!("{site}/admin/login/link?token={token}")).into_response())
}

/// `POST /console/tenants/{slug}/{action}`: `status` (suspend or resume, as `status` says),
/// `rename` (`name`, `new_slug`), `delete` (only with the slug typed in `confirm`; the
/// tenant is kept, answering 403, for the grace period) or `restore` (a deleted tenant,
/// back as it was).
async fn change(
    State(console): State<Console>,
    operator: Operator,
    Path((slug, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    operator.check(&form.csrf)?;
    let slug = slug_of(&slug)?;
    match action.as_str() {
        "status" => {
            let (status, action) = match form.status.as_str() {
                "suspended" => (TenantStatus::Suspended, "tenant.suspend"),
                "active" => (TenantStatus::Active, "tenant.resume"),
                other => return Err(ConsoleError::Invalid(format!("unknown status '{other}'"))),
            };
            let update = TenantUpdate {
                status: Some(status),
                ..TenantUpdate::default()
            };
            let change = |tenancy: Tenancy, slug: Slug| async move {
                tenancy.update_tenant(&slug, update).await
            };
            console.act(&operator, action, &slug, change).await?;
        }
        "delete" => {
            if form.confirm.trim() != slug.as_str() {
                return Err(ConsoleError::Invalid(format!(
                    "Type the tenant's slug, '{slug}', to confirm its deletion."
                )));
            }
            let change = |tenancy: Tenancy, slug: Slug| async move {
                tenancy.delete_tenant_later(&slug).await
            };
            console
                .act(&operator, "tenant.delete", &slug, change)
                .await?;
        }
        "rename" => {
            let new_slug = match form.new_slug.trim() {
                "" => None,
                raw => Some(Slug::parse(raw).map_err(|e| ConsoleError::Invalid(e.to_string()))?),
            };
            let update = TenantUpdate {
                name: Some(form.name.trim().to_owned()).filter(|n| !n.is_empty()),
                slug: new_slug.clone(),
                ..TenantUpdate::default()
            };
            let change = |tenancy: Tenancy, slug: Slug| async move {
                tenancy.update_tenant(&slug, update).await
            };
            console
                .act(&operator, "tenant.rename", &slug, change)
                .await?;
            let now = new_slug.unwrap_or(slug);
            return Ok(Redirect::to(&format!("/console/tenants/{now}")).into_response());
        }
        "restore" => {
            let change =
                |tenancy: Tenancy, slug: Slug| async move { tenancy.restore_tenant(&slug).await };
            console
                .act(&operator, "tenant.restore", &slug, change)
                .await?;
        }
        _ => return Err(ConsoleError::NotFound),
    }
    Ok(Redirect::to(&format!("/console/tenants/{slug}")).into_response())
}

/// The settings form of a tenant's page: a JSON object of the keys to change.
#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    patch: String,
}

/// `POST /console/tenants/{slug}/settings`: changes the tenant's settings (branding and the
/// app's rules) by a JSON object whose keys replace the stored ones (`null` resets one),
/// checked against the app's schema as the platform API and the tenant's admin check them;
/// audited.
async fn settings(
    State(console): State<Console>,
    operator: Operator,
    TenantPath(slug): TenantPath,
    Form(form): Form<SettingsForm>,
) -> Result<Response, ConsoleError> {
    operator.check(&form.csrf)?;
    let patch: serde_json::Value = serde_json::from_str(&form.patch)
        .map_err(|e| ConsoleError::Invalid(format!("The settings are not a JSON object: {e}.")))?;
    if !patch.is_object() {
        return Err(ConsoleError::Invalid(
            "The settings are a JSON object of the keys to change, such as \
             {\"primary_color\": \"#aa3300\"}."
                .into(),
        ));
    }
    let update = TenantUpdate {
        settings: Some(patch),
        ..TenantUpdate::default()
    };
    let change =
        |tenancy: Tenancy, slug: Slug| async move { tenancy.update_tenant(&slug, update).await };
    console
        .act(&operator, "tenant.settings", &slug, change)
        .await?;
    Ok(Redirect::to(&format!("/console/tenants/{slug}")).into_response())
}

/// The move form of a tenant's page: the isolation, and the database server (empty: the
/// catalog's).
#[derive(Deserialize)]
struct MoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    isolation: String,
    #[serde(default)]
    server: String,
}

/// `POST /console/tenants/{slug}/move`: moves the tenant to another isolation or database
/// server as a task, whose page shows it running and how it ended; audited. The tenant's
/// site answers throughout (writes wait for the switch).
async fn move_tenant(
    State(console): State<Console>,
    operator: Operator,
    TenantPath(slug): TenantPath,
    Form(form): Form<MoveForm>,
) -> Result<Response, ConsoleError> {
    operator.check(&form.csrf)?;
    let isolation: IsolationMode = form.isolation.parse().map_err(ConsoleError::Invalid)?;
    let server = match form.server.trim() {
        "" => None,
        name => Some(DbServerName::parse(name).map_err(|e| ConsoleError::Invalid(e.to_string()))?),
    };
    console.tenancy.catalog().details(&slug).await?;
    let (tenancy, actor) = (console.tenancy.clone(), operator.actor());
    let title = format!("Move {slug} to {}", isolation.as_str());
    let id = console.tasks.start(title, |progress| async move {
        progress.say(format!(
            "Copying {slug}'s data to {} isolation, then switching the catalog to the copy",
            isolation.as_str()
        ));
        let target = MoveTarget { isolation, server };
        let (mover, moved) = (tenancy.clone(), slug.clone());
        let moving = async move { mover.move_tenant(&moved, target).await };
        let moving = tenancy.audited(&actor, "tenant.move", slug.as_str(), moving);
        match ticking(&progress, moving).await {
            Ok(details) => Ok(format!(
                "Moved: {slug} is {} now, at {}",
                details.tenant.isolation.as_str(),
                details.tenant.placement
            )),
            Err(error) => Err(error.to_string()),
        }
    });
    Ok(to_task(id))
}

/// A domain form of a tenant's page: what to do (`claim`, `check` or `remove`) to which.
#[derive(Deserialize)]
struct DomainForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    domain: String,
}

/// `POST /console/tenants/{slug}/domains`: claims a custom domain for the tenant (routed once
/// its TXT record is found), checks a claim now, or removes a domain or claim. A check that
/// finds no proof says why on the tenant's page.
async fn domains(
    State(console): State<Console>,
    operator: Operator,
    TenantPath(slug): TenantPath,
    Form(form): Form<DomainForm>,
) -> Result<Response, ConsoleError> {
    operator.check(&form.csrf)?;
    let domain = form.domain.trim();
    let host = HostName::parse_domain(domain)
        .map_err(|_| ConsoleError::Invalid(format!("'{domain}' is not a domain name")))?;
    let (tenancy, dns, target) = (console.tenancy.clone(), console.dns.clone(), slug.clone());
    let (action, change): (_, futures::future::BoxFuture<'static, _>) = match form.op.as_str() {
        "claim" => (
            "domain.claim",
            Box::pin(async move { tenancy.claim_domain(&target, &host).await.map(drop) }),
        ),
        "check" => (
            "domain.verify",
            Box::pin(async move {
                match tenancy.check_domain_claim(&target, &host, &dns).await? {
                    DomainCheck::Verified => Ok(()),
                    DomainCheck::NotYet(why) => Err(tenantry::Error::Invalid {
                        field: "domain",
                        message: format!("{host} is not verified yet: {why}"),
                    }),
                }
            }),
        ),
        "remove" => (
            "domain.remove",
            Box::pin(async move { tenancy.remove_domain(&target, &host).await }),
        ),
        _ => return Err(ConsoleError::NotFound),
    };
    match console.act(&operator, action, &slug, |_, _| change).await {
        // A check that found no proof says why on the tenant's page.
        Ok(()) | Err(ConsoleError::Invalid(_)) if action == "domain.verify" => {}
        result => result?,
    }
    Ok(Redirect::to(&format!("/console/tenants/{slug}")).into_response())
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    operator: String,
    csrf: String,
    entries: Vec<AuditEntry>,
}

/// `GET /console/audit`: the newest 200 entries of the audit log.
async fn audit(
    State(console): State<Console>,
    operator: Operator,
) -> Result<Response, ConsoleError> {
    let filter = AuditFilter {
        limit: 200,
        ..AuditFilter::default()
    };
    let page = AuditPage {
        operator: operator.name,
        csrf: operator.csrf,
        entries: console.tenancy.catalog().audit_log(&filter).await?,
    };
    Ok(crate::admin::page(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "console/servers.html")]
struct ServersPage {
    operator: String,
    csrf: String,
    servers: Vec<tenantry::db_servers::DbServer>,
}

/// `GET /console/servers`: the database servers tenants can be placed on, with how many
/// each holds (`polls servers add` registers them); none in a SQLite deployment.
async fn servers(
    State(console): State<Console>,
    operator: Operator,
) -> Result<Response, ConsoleError> {
    let servers = match console.tenancy.db_servers() {
        Ok(registry) => registry.list().await?,
        Err(_) => Vec::new(),
    };
    let page = ServersPage {
        operator: operator.name,
        csrf: operator.csrf,
        servers,
    };
    Ok(crate::admin::page(StatusCode::OK, &page))
}
