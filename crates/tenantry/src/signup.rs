//! Self-service signup on the public site: a visitor names an organisation and its
//! subdomain and gets a tenant with a first staff user, logged in through a one-time
//! [`LoginLink`].
//!
//! The app renders the form (its templates, its CSRF cookie) and makes the first user (its
//! users table) through [`FirstAdmin`]; [`Signup`] checks the request, limits it per client
//! address, takes a tenant from the [`PendingPool`] or builds one, and undoes everything if
//! any step fails. Its [`router`](Signup::router) serves the form's live availability check,
//! `GET /signup/check?slug=...`.

use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::catalog::TenantDetails;
use crate::db::Db;
use crate::error::{Error, ErrorKind};
use crate::http::ClientAddr;
use crate::lifecycle::{NewTenant, PendingPool};
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::IsolationMode;
use crate::web::LoginLink;

/// How signup is offered.
#[derive(Debug, Clone)]
pub struct SignupOptions {
    /// Whether signup is open; when it is not, its routes answer 404.
    pub enabled: bool,
    /// Signups an hour from one client address (an IPv6 /64 counts as one address).
    pub per_address_per_hour: NonZeroU32,
    /// The isolation of the tenants signups create; the tenancy's default when absent.
    pub isolation: Option<IsolationMode>,
}

impl Default for SignupOptions {
    /// Open, 10 signups an hour per address, the tenancy's default isolation.
    fn default() -> Self {
        Self {
            enabled: true,
            per_address_per_hour: NonZeroU32::new(10).expect("not zero"),
            isolation: None,
        }
    }
}

/// What the signup form sends; fields it lacks are empty.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SignupRequest {
    /// The organisation's name: the tenant's display name.
    pub organisation: String,
    /// The subdomain: the tenant's slug.
    pub slug: String,
    /// The first admin's username, email address and password, for [`FirstAdmin`].
    pub username: String,
    /// See `username`.
    pub email: String,
    /// See `username`.
    pub password: String,
    /// The honeypot: a field the page hides from people, so only bots fill it in.
    pub website: String,
}

/// A field of the form to correct, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The form field: `organisation`, `slug`, `username`, `email` or `password`.
    pub field: &'static str,
    /// What is wrong, for the person filling in the form.
    pub message: String,
}

impl FieldError {
    /// `message` about `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Why a signup created nothing.
#[derive(Debug)]
pub enum SignupError {
    /// Signup is off: 404.
    Disabled,
    /// Too many signups from the client's address: 429, retry after the duration.
    Throttled(Duration),
    /// The honeypot was filled in: 400.
    Bot,
    /// Fields to correct: 400. A slug taken since the form checked it is one of them.
    Invalid(Vec<FieldError>),
    /// The server cannot take the work now: 503, retry shortly.
    Busy,
    /// A failure on the server's side (logged): 500.
    Failed(String),
}

impl SignupError {
    /// The HTTP status a page or API answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Disabled => StatusCode::NOT_FOUND,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Bot | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<Error> for SignupError {
    fn from(error: Error) -> Self {
        match error {
            Error::SlugTaken(slug) => Self::Invalid(vec![FieldError::new(
                "slug",
                format!("'{slug}' is taken: choose another subdomain."),
            )]),
            Error::Invalid { field, message } => {
                let field = if field == "name" {
                    "organisation"
                } else {
                    field
                };
                Self::Invalid(vec![FieldError::new(field, message)])
            }
            error if error.kind() == ErrorKind::Unavailable => Self::Busy,
            error => Self::Failed(error.to_string()),
        }
    }
}

impl From<sqlx::Error> for SignupError {
    fn from(error: sqlx::Error) -> Self {
        Error::from(error).into()
    }
}

/// The app's side of a signup: its first staff user.
pub trait FirstAdmin: Send + Sync + 'static {
    /// The first admin ready to be stored (its password hashed, say).
    type Prepared: Send + 'static;

    /// Checks the request's `username`, `email` and `password` by the app's rules, before
    /// anything is built; an empty list when they are fine.
    fn check(&self, request: &SignupRequest) -> Vec<FieldError>;

    /// Prepares the admin (hashes the password) while the tenant is being made.
    fn prepare(
        &self,
        request: &SignupRequest,
    ) -> impl Future<Output = Result<Self::Prepared, SignupError>> + Send;

    /// Stores the admin as a staff user in the new tenant's transaction; returns its id.
    fn create(
        &self,
        db: &mut Db,
        admin: Self::Prepared,
    ) -> impl Future<Output = Result<i64, SignupError>> + Send;
}

/// A tenant a signup made, and the token of the login link that logs its admin in.
#[derive(Debug)]
pub struct SignedUp {
    /// The new tenant.
    pub tenant: TenantDetails,
    /// For the app's login-link page; valid once, for [`LOGIN_LINK_SECS`](crate::web::LOGIN_LINK_SECS).
    pub login_token: String,
}

/// Whether a subdomain can be signed up for, for the form's live check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// The subdomain asked about, as typed.
    pub slug: String,
    /// Whether a signup can take it now.
    pub available: bool,
    /// Why not, or that it is free, for the person filling in the form.
    pub message: String,
}

/// The most client addresses the rate limit tracks before it forgets those it no longer
/// limits.
const TRACKED: usize = 100_000;

/// Signup for one tenancy. Cheap to clone.
pub struct Signup<A: FirstAdmin> {
    inner: Arc<Inner<A>>,
}

impl<A: FirstAdmin> Clone for Signup<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<A> {
    tenancy: Tenancy,
    admin: A,
    options: SignupOptions,
    pool: Option<PendingPool>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl<A: FirstAdmin> Signup<A> {
    /// Signup to `tenancy`, whose first admins `admin` makes.
    pub fn new(tenancy: Tenancy, admin: A, options: SignupOptions) -> Self {
        let quota = Quota::per_hour(options.per_address_per_hour);
        Self {
            inner: Arc::new(Inner {
                tenancy,
                admin,
                options,
                pool: None,
                per_address: RateLimiter::keyed(quota),
            }),
        }
    }

    /// Takes tenants from `pool` while it has some of the signup's isolation.
    pub fn with_pending(self, pool: PendingPool) -> Self {
        let inner = Arc::into_inner(self.inner).expect("with_pending is called before cloning");
        Self {
            inner: Arc::new(Inner {
                pool: Some(pool),
                ..inner
            }),
        }
    }

    /// Whether signup is open.
    pub fn enabled(&self) -> bool {
        self.inner.options.enabled
    }

    /// `GET /signup/check?slug=...`: [`availability`](Self::availability) as JSON; 404 while
    /// signup is off.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/signup/check", get(check::<A>))
            .with_state(self.clone())
    }

    /// Whether `slug` can be signed up for now: valid, not reserved, not taken.
    pub async fn availability(&self, slug: &str) -> Result<Availability, Error> {
        let slug = slug.trim();
        let refused = |message: String| Availability {
            slug: slug.to_owned(),
            available: false,
            message,
        };
        let parsed = match Slug::parse(slug) {
            Ok(parsed) => parsed,
            Err(error) => return Ok(refused(format!("{error}."))),
        };
        let tenancy = &self.inner.tenancy;
        if let Err(Error::Invalid { message, .. }) =
            tenancy.identification().tenant_may_take(&parsed)
        {
            return Ok(refused(format!("{message}.")));
        }
        if tenancy.catalog().by_slug(&parsed).await?.is_some() {
            return Ok(refused(format!("'{parsed}' is taken.")));
        }
        Ok(Availability {
            slug: slug.to_owned(),
            available: true,
            message: format!("'{parsed}' is available."),
        })
    }

    /// Creates the tenant `request` asks for and its first admin, all or nothing, and a
    /// login link for the admin. `client` is the request's [`ClientAddr`], which the rate
    /// limit counts; the work runs to its end even if the caller stops waiting, so a
    /// cancelled request never leaves half a tenant.
    pub async fn submit(
        &self,
        request: SignupRequest,
        client: Option<ClientAddr>,
    ) -> Result<SignedUp, SignupError> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.submit(request, client).await })
            .await
            .map_err(|panic| SignupError::Failed(format!("the signup panicked: {panic}")))?
    }

    /// The address of `tenant`'s site for the client that sent `headers`: see
    /// [`site_url`](crate::http::site_url).
    pub fn site_url(&self, tenant: &TenantDetails, headers: &HeaderMap) -> String {
        crate::http::site_url(&self.inner.tenancy, tenant, headers)
    }
}

impl<A: FirstAdmin> Inner<A> {
    async fn submit(
        &self,
        request: SignupRequest,
        client: Option<ClientAddr>,
    ) -> Result<SignedUp, SignupError> {
        if !self.options.enabled {
            return Err(SignupError::Disabled);
        }
        if let Some(client) = client {
            self.admit(client.subscriber())?;
        }
        if !request.website.is_empty() {
            tracing::warn!("a signup filled in the honeypot");
            return Err(SignupError::Bot);
        }
        let (slug, name) = self.check(&request)?;
        let isolation = self
            .options
            .isolation
            .unwrap_or_else(|| self.tenancy.default_isolation());
        let (tenant, admin) = tokio::join!(
            self.provision(isolation, &slug, name),
            self.admin.prepare(&request)
        );
        let tenant = tenant?;
        let landed = match admin {
            Ok(admin) => {
                self.tenancy
                    .in_tenant(&slug, async |db| -> Result<String, SignupError> {
                        let user = self.admin.create(db, admin).await?;
                        Ok(LoginLink::issue(db, user).await?)
                    })
                    .await
            }
            Err(error) => Err(error),
        };
        match landed {
            Ok(login_token) => {
                tracing::info!(tenant = %slug, mode = isolation.as_str(), "signed up");
                Ok(SignedUp {
                    tenant,
                    login_token,
                })
            }
            Err(error) => {
                if let Err(undo) = self.tenancy.delete_tenant(&slug).await {
                    tracing::error!(tenant = %slug, error = %undo, "a failed signup's tenant was not deleted");
                }
                Err(error)
            }
        }
    }

    /// One signup from `client` within its hourly rate, or how long until it may retry.
    fn admit(&self, client: IpAddr) -> Result<(), SignupError> {
        if self.per_address.len() >= TRACKED {
            self.per_address.retain_recent();
        }
        self.per_address.check_key(&client).map_err(|not_until| {
            tracing::warn!("signup throttled");
            SignupError::Throttled(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// The slug and name the request asks for, if every field is right.
    fn check(&self, request: &SignupRequest) -> Result<(Slug, String), SignupError> {
        let mut errors = Vec::new();
        let name = request.organisation.trim();
        if name.is_empty() {
            errors.push(FieldError::new(
                "organisation",
                "Enter the organisation's name.",
            ));
        }
        let slug = Slug::parse(request.slug.trim());
        match &slug {
            Ok(slug) => {
                if let Err(SignupError::Invalid(refused)) = self
                    .tenancy
                    .identification()
                    .tenant_may_take(slug)
                    .map_err(SignupError::from)
                {
                    errors.extend(refused);
                }
            }
            Err(error) => errors.push(FieldError::new("slug", format!("{error}."))),
        }
        errors.extend(self.admin.check(request));
        match slug {
            Ok(slug) if errors.is_empty() => Ok((slug, name.to_owned())),
            _ => Err(SignupError::Invalid(errors)),
        }
    }

    /// A tenant `slug` named `name`: a pending one renamed when the pool has one, else built.
    async fn provision(
        &self,
        isolation: IsolationMode,
        slug: &Slug,
        name: String,
    ) -> Result<TenantDetails, SignupError> {
        if let Some(pool) = &self.pool
            && let Some(taken) = pool.take(isolation, slug, Some(name.clone())).await?
        {
            return Ok(taken);
        }
        let new = NewTenant {
            name: Some(name),
            ..NewTenant::new(slug.clone(), isolation)
        };
        Ok(self.tenancy.create_tenant(new).await?)
    }
}

#[derive(Deserialize)]
struct CheckQuery {
    #[serde(default)]
    slug: String,
}

async fn check<A: FirstAdmin>(
    State(signup): State<Signup<A>>,
    query: Result<Query<CheckQuery>, QueryRejection>,
) -> Response {
    if !signup.enabled() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "detail": "Not found." })),
        )
            .into_response();
    }
    let slug = query.map(|Query(q)| q.slug).unwrap_or_default();
    match signup.availability(&slug).await {
        Ok(availability) => Json(availability).into_response(),
        Err(error) => {
            let status = error.kind().status();
            if status.is_server_error() {
                tracing::error!(%error, "the signup check failed");
            }
            (
                status,
                Json(serde_json::json!({ "detail": "The check failed; try again." })),
            )
                .into_response()
        }
    }
}
