//! The tenant's admin at `/admin`: server-rendered pages for its staff, the same in every
//! isolation mode. Sessions, CSRF tokens, login throttling and the logo come from
//! [`tenantry::web`]; the pages are askama templates, checked when the crate compiles and
//! escaping every value.

mod domains;
mod exports;
mod jobs;
mod login;
mod polls;
mod settings;
mod users;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tenantry::dns::DnsResolver;
use tenantry::http::MountPath;
use tenantry::web::{CookieJar, LOGO_MAX_BYTES, Logo, Session, SessionCookie, same_token};
use tenantry::{Db, TenancyRejection, Tenant, TenantDb};

use crate::domain::rules::Settings;
use crate::error::ApiError;
use crate::limits::AuthLimits;
use crate::path::ApiPath;

/// How long a login session lasts, in seconds (12 hours).
const SESSION_SECS: u64 = 12 * 60 * 60;

/// How long an operator's impersonation of a staff user lasts, in seconds (1 hour).
const IMPERSONATION_SECS: u64 = 60 * 60;

/// The largest form body the admin reads (but the logo's upload): no field of any form
/// needs more, so a bigger body is refused (413) before any work.
const FORM_MAX_BYTES: usize = 64 * 1024;

/// The admin's routes; `auth` hashes and checks passwords, as for the API's logins; `dns`
/// looks up the records that verify custom domains.
pub fn router(auth: AuthLimits, dns: DnsResolver) -> Router {
    Router::new()
        .route("/admin", get(polls::dashboard))
        .route("/admin/login", get(login::form).post(login::submit))
        .route("/admin/login/link", get(login::link))
        .route("/admin/logout", post(login::logout))
        .route("/admin/style.css", get(style))
        .route("/admin/logo", get(logo))
        .route("/admin/polls", get(polls::list).post(polls::create))
        .route("/admin/polls/new", get(polls::new))
        .route("/admin/polls/{id}", get(polls::detail).post(polls::edit))
        .route(
            "/admin/polls/{id}/delete",
            get(polls::confirm_delete).post(polls::delete),
        )
        .route("/admin/polls/{id}/choices", post(polls::add_choice))
        .route(
            "/admin/polls/{id}/choices/{choice_id}/delete",
            get(polls::confirm_delete_choice).post(polls::delete_choice),
        )
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/{id}/password", post(users::password))
        .route("/admin/users/{id}/staff", post(users::staff))
        .route("/admin/settings", get(settings::show).post(settings::save))
        .route("/admin/domains", get(domains::list).post(domains::change))
        .route("/admin/jobs", get(jobs::list))
        .route("/admin/exports", get(exports::list))
        .route("/admin/exports/{name}", get(exports::download))
        .route("/admin/polls/{id}/export", post(exports::queue))
        .route(
            "/admin/settings/logo",
            post(settings::logo).layer(DefaultBodyLimit::max(
                tenantry::web::LOGO_MAX_BYTES + 16 * 1024,
            )),
        )
        .layer(DefaultBodyLimit::max(FORM_MAX_BYTES))
        .layer(Extension(auth))
        .layer(Extension(dns))
        .layer(middleware::from_fn(framed))
        .layer(middleware::map_response(page_headers))
}

/// The cookie that carries what a change did to the page its redirect leads to.
const FLASH: &str = "polls_flash";

/// What a change did, said once on the page it leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    PollCreated,
    PollSaved,
    PollDeleted,
    ChoiceAdded,
    ChoiceRemoved,
    SettingsSaved,
    LogoSaved,
    LogoRemoved,
    UserCreated,
    PasswordSet,
    StaffChanged,
    DomainClaimed,
    DomainVerified,
    DomainRemoved,
    ExportQueued,
}

impl Done {
    const ALL: [Done; 15] = [
        Self::PollCreated,
        Self::PollSaved,
        Self::PollDeleted,
        Self::ChoiceAdded,
        Self::ChoiceRemoved,
        Self::SettingsSaved,
        Self::LogoSaved,
        Self::LogoRemoved,
        Self::UserCreated,
        Self::PasswordSet,
        Self::StaffChanged,
        Self::DomainClaimed,
        Self::DomainVerified,
        Self::DomainRemoved,
        Self::ExportQueued,
    ];

    /// Its name in the cookie: only these are ever read back, never text from the cookie.
    fn code(self) -> &'static str {
        match self {
            Self::PollCreated => "poll-created",
            Self::PollSaved => "poll-saved",
            Self::PollDeleted => "poll-deleted",
            Self::ChoiceAdded => "choice-added",
            Self::ChoiceRemoved => "choice-removed",
            Self::SettingsSaved => "settings-saved",
            Self::LogoSaved => "logo-saved",
            Self::LogoRemoved => "logo-removed",
            Self::UserCreated => "user-created",
            Self::PasswordSet => "password-set",
            Self::StaffChanged => "staff-changed",
            Self::DomainClaimed => "domain-claimed",
            Self::DomainVerified => "domain-verified",
            Self::DomainRemoved => "domain-removed",
            Self::ExportQueued => "export-queued",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::PollCreated => "The poll was created.",
            Self::PollSaved => "The question was saved.",
            Self::PollDeleted => "The poll was deleted, with its choices and votes.",
            Self::ChoiceAdded => "The choice was added.",
            Self::ChoiceRemoved => "The choice was removed, with its votes.",
            Self::SettingsSaved => "The settings were saved.",
            Self::LogoSaved => "The logo was saved.",
            Self::LogoRemoved => "The logo was removed.",
            Self::UserCreated => "The user was created.",
            Self::PasswordSet => "The password was changed.",
            Self::StaffChanged => "The user's staff access was changed.",
            Self::DomainClaimed => "The domain was added: add its DNS record, then check it.",
            Self::DomainVerified => "The domain is verified: the site answers on it now.",
            Self::DomainRemoved => "The domain was removed.",
            Self::ExportQueued => "The export was queued: it is listed here once made.",
        }
    }
}

/// Why a page failed, for [`framed`] to show in the tenant's frame.
#[derive(Clone)]
struct Failure {
    heading: &'static str,
    message: String,
}

/// Around every admin page: a one-time message is forgotten once a page has shown it, and a
/// failure, whatever refused the request (the admin, a body limit, the API's errors), is a
/// page in the tenant's frame that says what to do.
async fn framed(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let site = Site::from_request_parts(&mut parts, &()).await.ok();
    let logo_upload = parts.uri.path().ends_with("/admin/settings/logo");
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let Some(site) = site else {
        return response;
    };
    let status = response.status();
    if status.is_redirection() {
        return response;
    }
    if site.flash.is_some() {
        let clear = site.cookies.clear(FLASH);
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    let failure = response.extensions().get::<Failure>().cloned();
    let failure = match (failure, status.as_u16(), html) {
        (Some(failure), ..) => failure,
        (None, 400.., false) => explain(status, logo_upload),
        _ => return response,
    };
    let mut page = page(
        status,
        &MessagePage {
            chrome: Chrome::plain(&site),
            heading: failure.heading,
            message: failure.message,
        },
    );
    for name in [header::RETRY_AFTER, header::SET_COOKIE] {
        for value in response.headers().get_all(&name) {
            page.headers_mut().append(name.clone(), value.clone());
        }
    }
    page
}

/// What a refusal that is not the admin's own means to its staff.
fn explain(status: StatusCode, logo_upload: bool) -> Failure {
    let (heading, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE if logo_upload => (
            "Logo too large",
            format!(
                "A logo may be at most {} KiB. Choose a smaller image, or save it smaller, \
                 and upload it again.",
                LOGO_MAX_BYTES / 1024
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "Form too large",
            format!(
                "This form may send at most {} KiB. Shorten what you typed and try again.",
                FORM_MAX_BYTES / 1024
            ),
        ),
        StatusCode::NOT_FOUND => ("Not found", "There is no such page.".to_owned()),
        StatusCode::TOO_MANY_REQUESTS => (
            "Too many attempts",
            "Wait a minute, then try again.".to_owned(),
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "Busy",
            "The site is busy or being changed. Try again in a few seconds.".to_owned(),
        ),
        status if status.is_client_error() => (
            "Refused",
            "The request was refused. Go back, reload the page and try again.".to_owned(),
        ),
        _ => (
            "Something went wrong",
            "The page could not be served. Try again; if it keeps failing, tell the site's \
             operator."
                .to_owned(),
        ),
    };
    Failure { heading, message }
}

/// Headers of every admin response: no script may run, nothing may frame the pages, and
/// nothing is cached (pages carry CSRF tokens, the stylesheet the current colour).
async fn page_headers(response: Response) -> Response {
    secured(
        response,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    )
}

/// `response` with the content security policy `csp`, and never sniffed, framed, sent as a
/// referrer to other sites or cached: the headers of every server-rendered page.
pub(crate) fn secured(mut response: Response, csp: &'static str) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// What the frame of every page shows.
pub(crate) struct Chrome {
    /// The tenant's display name.
    site: String,
    mount: String,
    has_logo: bool,
    /// The staff user logged in; empty on the login page.
    username: String,
    csrf: String,
    /// What the change that led here did; empty if none.
    flash: &'static str,
    /// The operator looking at the tenant as this user; empty if none.
    impersonator: String,
}

/// The tenant a page is for: its catalog row, settings and mount, its cookies, and what the
/// change that led here did.
pub(crate) struct Site {
    tenant: Tenant,
    settings: Settings,
    mount: MountPath,
    cookies: SessionCookie,
    flash: Option<Done>,
}

impl<S: Send + Sync> FromRequestParts<S> for Site {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mount = MountPath::from_request_parts(parts, state).await?;
        let flash = CookieJar::of(parts)
            .get(FLASH)
            .and_then(|code| Done::ALL.into_iter().find(|done| done.code() == code));
        Ok(Self {
            tenant: Tenant::from_request_parts(parts, state).await?,
            settings: Settings::from_request_parts(parts, state).await?,
            cookies: SessionCookie::for_request(parts, &mount.0),
            mount,
            flash,
        })
    }
}

impl Chrome {
    /// The frame without the logo (which needs the database), for failures.
    fn plain(site: &Site) -> Self {
        Self {
            site: site
                .settings
                .branding
                .display_name
                .clone()
                .unwrap_or_else(|| site.tenant.name.clone()),
            mount: site.mount.0.clone(),
            has_logo: false,
            username: String::new(),
            csrf: String::new(),
            flash: "",
            impersonator: String::new(),
        }
    }

    async fn new(site: &Site, db: &mut Db) -> Result<Self, AdminError> {
        Ok(Self {
            has_logo: Logo::exists(db).await?,
            flash: site.flash.map_or("", Done::message),
            ..Self::plain(site)
        })
    }

    /// The frame of a logged-in staff user's page.
    async fn for_staff(site: &Site, staff: &Staff, db: &mut Db) -> Result<Self, AdminError> {
        Ok(Self {
            username: staff.username.clone(),
            csrf: staff.csrf.clone(),
            impersonator: staff.impersonator.clone().unwrap_or_default(),
            ..Self::new(site, db).await?
        })
    }
}

/// Renders a template as a page with `status`.
pub(crate) fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "an admin page did not render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A failure's page, in the tenant's frame.
#[derive(Template)]
#[template(path = "admin/message.html")]
struct MessagePage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
}

/// Why an admin request was not served.
pub(crate) enum AdminError {
    /// Not logged in as staff: to the login page.
    Login(String),
    /// A form without its page's CSRF token.
    Csrf,
    NotFound,
    /// 400 with a message.
    Invalid(String),
    /// 413 with a message.
    TooLarge(String),
    Api(ApiError),
    Tenancy(TenancyRejection),
}

impl From<sqlx::Error> for AdminError {
    fn from(error: sqlx::Error) -> Self {
        Self::Api(error.into())
    }
}

impl From<ApiError> for AdminError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<TenancyRejection> for AdminError {
    fn from(error: TenancyRejection) -> Self {
        Self::Tenancy(error)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            Self::Login(mount) => {
                return Redirect::to(&format!("{mount}/admin/login")).into_response();
            }
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Refused",
                "This form is stale or did not come from this site (CSRF check failed). \
                 Reload the page and try again."
                    .to_owned(),
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page.".into(),
            ),
            Self::Invalid(message) => (StatusCode::BAD_REQUEST, "Invalid request", message),
            Self::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large", message),
            Self::Api(error) => return error.into_response(),
            Self::Tenancy(rejection) => return rejection.into_response(),
        };
        let mut response = status.into_response();
        response
            .extensions_mut()
            .insert(Failure { heading, message });
        response
    }
}

/// A logged-in staff user of this tenant, from the session cookie; anyone else is sent to
/// the login page.
pub(crate) struct Staff {
    pub(crate) user_id: i64,
    username: String,
    csrf: String,
    /// The operator impersonating this user, if any.
    impersonator: Option<String>,
}

/// The CSRF token of the request's session, for [`CheckedForm`].
#[derive(Clone)]
struct SessionCsrf(String);

impl<S: Send + Sync> FromRequestParts<S> for Staff {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mount = MountPath::from_request_parts(parts, state).await?.0;
        let Some(token) = CookieJar::of(parts)
            .get(SessionCookie::SESSION)
            .map(str::to_owned)
        else {
            return Err(AdminError::Login(mount));
        };
        let mut db = TenantDb::from_request_parts(parts, state).await?;
        let Some(session) = Session::find(&mut db, &token).await? else {
            return Err(AdminError::Login(mount));
        };
        let user: Option<(String, bool)> = db
            .query("SELECT username, is_staff OR is_superuser FROM users WHERE id = $1")
            .bind(session.user_id)
            .fetch_optional()
            .await?;
        let Some((username, true)) = user else {
            return Err(AdminError::Login(mount));
        };
        parts.extensions.insert(SessionCsrf(session.csrf.clone()));
        Ok(Self {
            user_id: session.user_id,
            username,
            csrf: session.csrf,
            impersonator: session.impersonator,
        })
    }
}

/// A form posted from a page of the session: its `csrf` field must be the session's token
/// (which [`Staff`], extracted first, found), or the request is refused with 403.
pub(crate) struct CheckedForm<T>(pub T);

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CheckedForm<T> {
    type Rejection = AdminError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let expected = request.extensions().get::<SessionCsrf>().cloned();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| AdminError::Invalid(format!("the form could not be read: {e}")))?;
        let given: CsrfField = serde_urlencoded::from_bytes(&body)
            .map_err(|e| AdminError::Invalid(format!("the form is malformed: {e}")))?;
        match (expected, given.csrf) {
            (Some(expected), Some(given)) if same_token(&expected.0, &given) => {}
            _ => return Err(AdminError::Csrf),
        }
        serde_urlencoded::from_bytes(&body)
            .map(Self)
            .map_err(|e| AdminError::Invalid(format!("the form is malformed: {e}")))
    }
}

/// `GET /admin/style.css`: the admin's stylesheet, after the tenant's colours as CSS
/// variables built from its validated settings.
async fn style(settings: Settings) -> Response {
    let css = format!(
        "{}{}",
        settings.branding.css(),
        include_str!("../../templates/admin/style.css")
    );
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response()
}

/// `GET /admin/logo`: the tenant's logo, with the type found in its bytes.
async fn logo(mut db: TenantDb) -> Result<Response, AdminError> {
    let logo = Logo::load(&mut db).await?.ok_or(AdminError::NotFound)?;
    Ok(([(header::CONTENT_TYPE, logo.content_type)], logo.data).into_response())
}

/// Path parameters; any that do not parse (`/admin/polls/abc`) make the page not found.
pub(crate) struct AdminPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AdminPath<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath(value) = ApiPath::from_request_parts(parts, state)
            .await
            .map_err(|_| AdminError::NotFound)?;
        Ok(Self(value))
    }
}

/// A 303 to `path` under the tenant's mount.
fn see_other(mount: &MountPath, path: &str) -> Response {
    Redirect::to(&format!("{}{path}", mount.0)).into_response()
}

/// A 303 to `path` under the tenant's mount, whose page then says what was `done`.
fn done(site: &Site, path: &str, done: Done) -> Response {
    let mut response = see_other(&site.mount, path);
    let flash = site.cookies.set(FLASH, done.code(), 60);
    response.headers_mut().append(header::SET_COOKIE, flash);
    response
}
