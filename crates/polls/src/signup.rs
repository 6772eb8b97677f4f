//! `/signup` on the public site: the form, and the first admin of each new tenant
//! ([`PollsAdmin`], a staff superuser). [`tenantry::signup`] checks, limits and creates; a
//! person who signs up lands logged in in the new tenant's admin.

use askama::Template;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;
use tenantry::Db;
use tenantry::http::ClientAddr;
use tenantry::signup::{FieldError, FirstAdmin, Signup, SignupError, SignupRequest};
use tenantry::web::{CookieJar, SessionCookie, random_token, same_token};

use crate::domain::users::{Email, Password, Username};
use crate::error::ApiError;
use crate::limits::AuthLimits;

/// Polls' first admin of a signed-up tenant: a staff superuser, by the API's rules for
/// usernames, email addresses and passwords, hashed on the API's hashing threads.
pub struct PollsAdmin {
    pub auth: AuthLimits,
}

/// A first admin checked and hashed.
pub struct PreparedAdmin {
    username: String,
    email: String,
    hash: String,
}

impl FirstAdmin for PollsAdmin {
    type Prepared = PreparedAdmin;

    fn check(&self, request: &SignupRequest) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Err(e) = Username::parse(Some(request.username.clone())) {
            errors.push(FieldError::new("username", e));
        }
        if request.email.trim().is_empty() {
            errors.push(FieldError::new("email", "Enter an email address."));
        } else if let Err(e) = Email::parse(Some(request.email.clone())) {
            errors.push(FieldError::new("email", e));
        }
        if let Err(e) = Password::parse(Some(request.password.clone()).filter(|p| !p.is_empty())) {
            errors.push(FieldError::new("password", e));
        }
        errors
    }

    async fn prepare(&self, request: &SignupRequest) -> Result<PreparedAdmin, SignupError> {
        let hash = self
            .auth
            .hasher
            .hash(request.password.clone())
            .await
            .map_err(|e| match e {
                ApiError::Busy => SignupError::Busy,
                other => SignupError::Failed(format!("{other:?}")),
            })?;
        Ok(PreparedAdmin {
            username: request.username.trim().to_owned(),
            email: request.email.trim().to_owned(),
            hash,
        })
    }

    async fn create(&self, db: &mut Db, admin: PreparedAdmin) -> Result<i64, SignupError> {
        Ok(db
            .query(
                "INSERT INTO users (username, email, password_hash, is_superuser, is_staff) \
                 VALUES ($1, $2, $3, true, true) RETURNING id",
            )
            .bind(admin.username)
            .bind(admin.email)
            .bind(admin.hash)
            .fetch_scalar()
            .await?)
    }
}

/// The signup pages: the form, its live check and its script and stylesheet; nothing while
/// signup is off (the public site's 404).
pub fn router(signup: Signup<PollsAdmin>) -> Router {
    if !signup.enabled() {
        return Router::new();
    }
    Router::new()
        .route("/signup", get(form).post(submit))
        .route("/signup/check.js", get(script))
        .route("/signup/style.css", get(style))
        .layer(Extension(signup.clone()))
        .merge(signup.router())
        .layer(axum::middleware::map_response(page_headers))
}

/// The cookie holding the form's CSRF token, scoped to `/signup`.
const CSRF_COOKIE: &str = "polls_signup_csrf";

/// How long the form's token lasts, in seconds.
const FORM_SECS: u64 = 60 * 60;

#[derive(Template)]
#[template(path = "signup/form.html")]
struct SignupPage {
    csrf: String,
    organisation: String,
    slug: String,
    username: String,
    email: String,
    /// The base domain, shown after the subdomain field.
    domain: String,
    errors: Vec<FieldError>,
    /// A message for the whole form (throttled, busy).
    error: String,
}

impl SignupPage {
    /// The message about `field`, or `""`.
    fn error_for(&self, field: &str) -> &str {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map_or("", |e| e.message.as_str())
    }
}

/// The form's CSRF token and how its cookie is set.
struct FormCookie {
    token: Option<String>,
    cookie: SessionCookie,
}

impl<S: Send + Sync> FromRequestParts<S> for FormCookie {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            token: CookieJar::of(parts).get(CSRF_COOKIE).map(str::to_owned),
            cookie: SessionCookie::for_request(parts, "/signup"),
        })
    }
}

/// The page with `status`, a fresh CSRF token in its form and cookie.
fn render(status: StatusCode, page: SignupPage, cookie: &FormCookie) -> Response {
    let token = random_token();
    let page = SignupPage {
        csrf: token.clone(),
        ..page
    };
    let mut response = crate::admin::page(status, &page);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie.cookie.set(CSRF_COOKIE, &token, FORM_SECS),
    );
    response
}

fn blank(domain: String) -> SignupPage {
    SignupPage {
        csrf: String::new(),
        organisation: String::new(),
        slug: String::new(),
        username: String::new(),
        email: String::new(),
        domain,
        errors: Vec::new(),
        error: String::new(),
    }
}

/// The base domain the page names, from the request's host (`www.` dropped, port kept).
fn domain(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    host.strip_prefix("www.").unwrap_or(host).to_owned()
}

/// `GET /signup`.
async fn form(headers: HeaderMap, cookie: FormCookie) -> Response {
    render(StatusCode::OK, blank(domain(&headers)), &cookie)
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// `POST /signup`: creates the tenant and its first admin and sends the browser, through a
/// one-time login link, to the new tenant's admin; or the form again saying what to fix.
async fn submit(
    Extension(signup): Extension<Signup<PollsAdmin>>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    cookie: FormCookie,
    body: Bytes,
) -> Response {
    let csrf: Result<CsrfField, _> = serde_urlencoded::from_bytes(&body);
    let request: Result<SignupRequest, _> = serde_urlencoded::from_bytes(&body);
    let (Ok(csrf), Ok(request)) = (csrf, request) else {
        return refused(StatusCode::BAD_REQUEST, "The form is malformed.");
    };
    let csrf_ok = matches!(
        (&cookie.token, &csrf.csrf),
        (Some(expected), Some(given)) if same_token(expected, given)
    );
    if !csrf_ok {
        return refused(
            StatusCode::FORBIDDEN,
            "This form is stale or did not come from this site. Reload the page and try again.",
        );
    }
    let again = SignupPage {
        organisation: request.organisation.clone(),
        slug: request.slug.clone(),
        username: request.username.clone(),
        email: request.email.clone(),
        ..blank(domain(&headers))
    };
    let error = match signup.submit(request, client.map(|Extension(c)| c)).await {
        Ok(signed_up) => {
            let site = signup.site_url(&signed_up.tenant, &headers);
            let link = format!("{site}/admin/login/link?token={}", signed_up.login_token);
            let mut response = Redirect::to(&link).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.cookie.clear(CSRF_COOKIE));
            return response;
        }
        Err(error) => error,
    };
    let status = error.status();
    let page = match error {
        SignupError::Invalid(errors) => SignupPage { errors, ..again },
        SignupError::Throttled(wait) => {
            let mut response = render(
                status,
                SignupPage {
                    error: "Too many signups from your address. Try again later.".into(),
                    ..again
                },
                &cookie,
            );
            let retry = HeaderValue::from(wait.as_secs().max(1));
            response.headers_mut().insert(header::RETRY_AFTER, retry);
            return response;
        }
        SignupError::Busy => SignupPage {
            error: "The site is busy. Try again in a few seconds.".into(),
            ..again
        },
        SignupError::Bot => return refused(status, "The signup was refused."),
        SignupError::Disabled => return refused(status, "Signup is closed."),
        SignupError::Failed(message) => {
            tracing::error!(%message, "a signup failed");
            SignupPage {
                error: "The signup failed; nothing was created. Try again.".into(),
                ..again
            }
        }
    };
    render(status, page, &cookie)
}

/// A plain refusal page: no form, nothing echoed.
fn refused(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// `GET /signup/check.js`: the form's live availability check.
async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../templates/signup/check.js"),
    )
        .into_response()
}

/// `GET /signup/style.css` (and the console's): the admin's stylesheet in the default
/// colours.
pub(crate) async fn style() -> Response {
    let css = format!(
        "{}{}",
        tenantry::settings::Branding::default().css(),
        include_str!("../templates/admin/style.css")
    );
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response()
}

/// The public site's pages' headers (signup's, the console's): their own script and
/// stylesheet only, no framing, no caching. Forms may lead to a tenant's site (signup's and
/// impersonation's redirects).
pub(crate) async fn page_headers(response: Response) -> Response {
    crate::admin::secured(
        response,
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
         form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'",
    )
}
