//! The tenant's admin at `/admin`: server-rendered pages for its staff, the same in every
//! isolation mode. Sessions, CSRF tokens, login throttling and the logo come from
//! [`tenantry::web`]; the pages are askama templates, checked when the crate compiles and
//! escaping every value.

mod login;
mod polls;
mod settings;
mod users;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tenantry::http::MountPath;
use tenantry::web::{CookieJar, Logo, Session, SessionCookie, same_token};
use tenantry::{Db, TenancyRejection, Tenant, TenantDb};

use crate::domain::rules::Settings;
use crate::error::ApiError;
use crate::limits::AuthLimits;
use crate::path::ApiPath;

/// How long a login session lasts, in seconds (12 hours).
const SESSION_SECS: u64 = 12 * 60 * 60;

/// The largest form body the admin reads (but the logo's upload): no field of any form
/// needs more, so a bigger body is refused (413) before any work.
const FORM_MAX_BYTES: usize = 64 * 1024;

/// The admin's routes; `auth` hashes and checks passwords, as for the API's logins.
pub fn router(auth: AuthLimits) -> Router {
    Router::new()
        .route("/admin", get(polls::dashboard))
        .route("/admin/login", get(login::form).post(login::submit))
        .route("/admin/logout", post(login::logout))
        .route("/admin/style.css", get(style))
        .route("/admin/logo", get(logo))
        .route("/admin/polls", get(polls::list).post(polls::create))
        .route("/admin/polls/new", get(polls::new))
        .route("/admin/polls/{id}", get(polls::detail).post(polls::edit))
        .route("/admin/polls/{id}/delete", post(polls::delete))
        .route("/admin/polls/{id}/choices", post(polls::add_choice))
        .route(
            "/admin/polls/{id}/choices/{choice_id}/delete",
            post(polls::delete_choice),
        )
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/{id}/password", post(users::password))
        .route("/admin/users/{id}/staff", post(users::staff))
        .route("/admin/settings", get(settings::show).post(settings::save))
        .route(
            "/admin/settings/logo",
            post(settings::logo).layer(DefaultBodyLimit::max(
                tenantry::web::LOGO_MAX_BYTES + 16 * 1024,
            )),
        )
        .layer(DefaultBodyLimit::max(FORM_MAX_BYTES))
        .layer(Extension(auth))
        .layer(middleware::map_response(page_headers))
}

/// Headers of every admin response: no script may run, nothing may frame the pages, and
/// nothing is cached (pages carry CSRF tokens, the stylesheet the current colour).
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
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
}

/// The tenant a page is for: its catalog row, settings and mount.
pub(crate) struct Site {
    tenant: Tenant,
    settings: Settings,
    mount: MountPath,
}

impl<S: Send + Sync> FromRequestParts<S> for Site {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            tenant: Tenant::from_request_parts(parts, state).await?,
            settings: Settings::from_request_parts(parts, state).await?,
            mount: MountPath::from_request_parts(parts, state).await?,
        })
    }
}

impl Chrome {
    async fn new(site: &Site, db: &mut Db) -> Result<Self, AdminError> {
        let (tenant, settings, mount) = (&site.tenant, &site.settings, &site.mount);
        let has_logo = Logo::exists(db).await?;
        Ok(Self {
            site: settings
                .branding
                .display_name
                .clone()
                .unwrap_or_else(|| tenant.name.clone()),
            mount: mount.0.clone(),
            has_logo,
            username: String::new(),
            csrf: String::new(),
        })
    }

    /// The frame of a logged-in staff user's page.
    async fn for_staff(site: &Site, staff: &Staff, db: &mut Db) -> Result<Self, AdminError> {
        Ok(Self {
            username: staff.username.clone(),
            csrf: staff.csrf.clone(),
            ..Self::new(site, db).await?
        })
    }
}

/// Renders a template as a page with `status`.
fn page(status: StatusCode, template: &impl Template) -> Response {
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

/// An error's page: plain, since an error may come before the tenant's frame is known.
#[derive(Template)]
#[template(path = "admin/message.html")]
struct MessagePage {
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
            Self::Api(error) => return error.into_response(),
            Self::Tenancy(rejection) => return rejection.into_response(),
        };
        page(status, &MessagePage { heading, message })
    }
}

/// A logged-in staff user of this tenant, from the session cookie; anyone else is sent to
/// the login page.
pub(crate) struct Staff {
    pub(crate) user_id: i64,
    username: String,
    csrf: String,
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
