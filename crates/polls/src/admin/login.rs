//! `/admin/login` and `/admin/logout`.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::extract::Query;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use tenantry::TenantDb;
use tenantry::http::{LazyTenantDb, MountPath};
use tenantry::web::{
    CookieJar, LoginLink, Redeemed, Session, SessionCookie, random_token, same_token,
};

use super::{
    AdminError, CheckedForm, Chrome, IMPERSONATION_SECS, SESSION_SECS, Site, Staff, page, see_other,
};
use crate::domain::users::plausible_login;
use crate::limits::{AuthGate, AuthLimits};

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    chrome: Chrome,
    username: String,
    error: String,
}

/// The request's cookies and how to set them, for the tenant's mount.
pub(super) struct Cookies {
    session: Option<String>,
    login_csrf: Option<String>,
    cookie: SessionCookie,
}

impl<S: Send + Sync> FromRequestParts<S> for Cookies {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mount = MountPath::from_request_parts(parts, state).await?;
        let jar = CookieJar::of(parts);
        Ok(Self {
            session: jar.get(SessionCookie::SESSION).map(str::to_owned),
            login_csrf: jar.get(SessionCookie::LOGIN_CSRF).map(str::to_owned),
            cookie: SessionCookie::for_request(parts, &mount.0),
        })
    }
}

/// How long the login form's token lasts, in seconds.
const LOGIN_FORM_SECS: u64 = 60 * 60;

/// The login page with a fresh CSRF token, in its cookie and in the form.
fn login_page(
    status: StatusCode,
    chrome: Chrome,
    cookies: &Cookies,
    username: String,
    error: &str,
) -> Response {
    let token = random_token();
    let mut response = page(
        status,
        &LoginPage {
            chrome: Chrome {
                csrf: token.clone(),
                ..chrome
            },
            username,
            error: error.to_owned(),
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies
            .cookie
            .set(SessionCookie::LOGIN_CSRF, &token, LOGIN_FORM_SECS),
    );
    response
}

/// `GET /admin/login`.
pub(super) async fn form(
    site: Site,
    cookies: Cookies,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let chrome = Chrome::new(&site, &mut db).await?;
    Ok(login_page(
        StatusCode::OK,
        chrome,
        &cookies,
        String::new(),
        "",
    ))
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    csrf: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /admin/login`: a staff user's correct password starts a new session (ending the
/// browser's previous one). Wrong passwords count against the account, and too many get
/// 429, as do too many attempts from one address (the API's [`AuthGate`]).
pub(super) async fn submit(
    _: AuthGate,
    site: Site,
    cookies: Cookies,
    Extension(limits): Extension<AuthLimits>,
    lazy: LazyTenantDb,
    Form(form): Form<LoginForm>,
) -> Result<Response, AdminError> {
    let throttle = &limits.logins;
    let csrf_ok = matches!(
        (&cookies.login_csrf, &form.csrf),
        (Some(expected), Some(given)) if same_token(expected, given)
    );
    if !csrf_ok {
        return Err(AdminError::Csrf);
    }
    // No account has a longer name or password: such a login is refused before any work,
    // and its name is not echoed.
    let plausible = plausible_login(&form.username, &form.password);
    let echoed = if plausible {
        form.username.as_str()
    } else {
        ""
    };
    // The form again, with `error`; only a refusal needs the page's frame.
    let refuse =
        async |db: Option<TenantDb>, status, error: &str| -> Result<Response, AdminError> {
            let mut db = match db {
                Some(db) => db,
                None => lazy.open().await?,
            };
            let chrome = Chrome::new(&site, &mut db).await?;
            Ok(login_page(
                status,
                chrome,
                &cookies,
                echoed.to_owned(),
                error,
            ))
        };
    if !plausible {
        return refuse(None, StatusCode::BAD_REQUEST, "Wrong username or password.").await;
    }
    let attempt = match throttle.attempt(site.tenant.id, &form.username) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let mut response = refuse(
                None,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed logins to this account. Try again later.",
            )
            .await?;
            let retry = HeaderValue::from(wait.as_secs().max(1));
            response.headers_mut().insert(header::RETRY_AFTER, retry);
            return Ok(response);
        }
    };
    let mut db = lazy.open().await?;
    let Some((user_id, staff)) = verify(&mut db, &limits, &form).await? else {
        attempt.failed();
        return refuse(
            Some(db),
            StatusCode::BAD_REQUEST,
            "Wrong username or password.",
        )
        .await;
    };
    attempt.succeeded();
    if !staff {
        return refuse(
            Some(db),
            StatusCode::FORBIDDEN,
            "This account is not staff, and cannot use the admin.",
        )
        .await;
    }
    signed_in(&mut db, &site, &cookies, user_id).await
}

/// The user and whether they are staff, if the form's password is theirs.
async fn verify(
    db: &mut TenantDb,
    limits: &AuthLimits,
    form: &LoginForm,
) -> Result<Option<(i64, bool)>, AdminError> {
    let user: Option<(i64, String, bool)> = db
        .query("SELECT id, password_hash, is_staff OR is_superuser FROM users WHERE username = $1")
        .bind(&form.username)
        .fetch_optional()
        .await?;
    Ok(match user {
        Some((id, hash, staff)) => limits
            .hasher
            .verify(form.password.clone(), hash)
            .await?
            .then_some((id, staff)),
        None => None,
    })
}

/// A new session for `user_id` (ending the browser's previous one), and the way to the
/// dashboard with its cookie.
async fn signed_in(
    db: &mut TenantDb,
    site: &Site,
    cookies: &Cookies,
    user_id: i64,
) -> Result<Response, AdminError> {
    signed_in_as(db, site, cookies, user_id, None).await
}

/// [`signed_in`], for the operator `impersonator` if one is looking: such a session lasts
/// [`IMPERSONATION_SECS`].
async fn signed_in_as(
    db: &mut TenantDb,
    site: &Site,
    cookies: &Cookies,
    user_id: i64,
    impersonator: Option<&str>,
) -> Result<Response, AdminError> {
    let lifetime = match impersonator {
        Some(_) => IMPERSONATION_SECS,
        None => SESSION_SECS,
    };
    let previous = cookies.session.as_deref();
    let started = Session::start_for(db, user_id, lifetime, previous, impersonator).await?;
    let mut response = see_other(&site.mount, "/admin");
    let headers: &mut HeaderMap = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookies
            .cookie
            .set(SessionCookie::SESSION, &started.token, lifetime),
    );
    headers.append(
        header::SET_COOKIE,
        cookies.cookie.clear(SessionCookie::LOGIN_CSRF),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct LinkQuery {
    token: Option<String>,
}

/// `GET /admin/login/link?token=...`: a one-time login link (`polls login-link`) logs its
/// staff user in, once, within a minute. A spent, expired or other tenant's link gets the
/// login page saying so.
pub(super) async fn link(
    Query(LinkQuery { token }): Query<LinkQuery>,
    (site, cookies): (Site, Cookies),
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let redeemed = match &token {
        Some(token) => LoginLink::redeem(&mut db, token).await?,
        None => None,
    };
    let staff: Option<(i64, Option<String>)> = match redeemed {
        Some(Redeemed {
            user_id,
            impersonator,
        }) => db
            .query("SELECT id FROM users WHERE id = $1 AND (is_staff OR is_superuser)")
            .bind(user_id)
            .fetch_optional_scalar()
            .await?
            .map(|id: i64| (id, impersonator)),
        None => None,
    };
    match staff {
        Some((user, impersonator)) => {
            signed_in_as(&mut db, &site, &cookies, user, impersonator.as_deref()).await
        }
        None => {
            let chrome = Chrome::new(&site, &mut db).await?;
            let error = "This login link has expired or was used already. Log in with your \
                         password, or ask for a new link.";
            Ok(login_page(
                StatusCode::BAD_REQUEST,
                chrome,
                &cookies,
                String::new(),
                error,
            ))
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Empty {}

/// `POST /admin/logout`: ends the session and clears its cookie.
pub(super) async fn logout(
    _staff: Staff,
    mount: MountPath,
    cookies: Cookies,
    mut db: TenantDb,
    CheckedForm(_): CheckedForm<Empty>,
) -> Result<Response, AdminError> {
    if let Some(token) = &cookies.session {
        Session::end(&mut db, token).await?;
    }
    let mut response = see_other(&mount, "/admin/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies.cookie.clear(SessionCookie::SESSION),
    );
    Ok(response.into_response())
}
