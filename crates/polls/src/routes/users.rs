//! `POST /users` (sign up) and `POST /login` (get an API token).

use axum::Extension;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::FromRow;
use tenantry::http::LazyTenantDb;
use tenantry::{Tenant, TenantDb};

use crate::auth::token_for;
use crate::domain::rules::Settings;
use crate::domain::users::{Email, Password, Username, plausible_login};
use crate::error::{ApiError, FieldErrors, is_unique_violation};
use crate::json::ApiJson;
use crate::limits::{AuthGate, AuthLimits};

/// The body of `POST /users`.
#[derive(Deserialize)]
pub(super) struct SignUp {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// A user as the API shows it (never the password).
#[derive(Serialize, FromRow)]
pub(super) struct User {
    id: i64,
    username: String,
    email: String,
}

/// `POST /users`: 201 with the new user, or 400 with per-field messages.
pub(super) async fn create(
    _: AuthGate,
    Extension(limits): Extension<AuthLimits>,
    settings: Settings,
    mut db: TenantDb,
    ApiJson(body): ApiJson<SignUp>,
) -> Result<(StatusCode, ApiJson<User>), ApiError> {
    if !settings.app.signup_open {
        return Err(ApiError::Forbidden("Sign-up is closed on this site."));
    }
    let mut errors = FieldErrors::default();
    let username = errors.check("username", Username::parse(body.username));
    let email = errors.check("email", Email::parse(body.email));
    let password = errors.check("password", Password::parse(body.password));
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(ApiError::Fields(errors));
    };
    let password_hash = limits.hasher.hash(password.0).await?;
    let user = db
        .query(
            "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3) \
             RETURNING id, username, email",
        )
        .bind(username.0)
        .bind(email.0)
        .bind(password_hash)
        .fetch_one()
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                ApiError::field("username", "A user with that username already exists.")
            } else {
                error.into()
            }
        })?;
    Ok((StatusCode::CREATED, ApiJson(user)))
}

/// The body of `POST /login`.
#[derive(Deserialize)]
pub(super) struct Login {
    username: Option<String>,
    password: Option<String>,
}

/// `POST /login`: 200 `{"token": key}`, creating the user's token on first login. Wrong
/// passwords count against the account as the admin's do (one lockout for every door):
/// while it is locked, 429 even for the right password.
pub(super) async fn login(
    _: AuthGate,
    tenant: Tenant,
    Extension(limits): Extension<AuthLimits>,
    db: LazyTenantDb,
    ApiJson(body): ApiJson<Login>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let wrong = || ApiError::BadRequest(json!({ "error": "Wrong Credentials" }));
    let (Some(username), Some(password)) = (body.username, body.password) else {
        return Err(wrong());
    };
    // No account has a longer name or password: refused before any work.
    if !plausible_login(&username, &password) {
        return Err(wrong());
    }
    let attempt = limits
        .logins
        .attempt(tenant.id, &username)
        .map_err(|wait| ApiError::Throttled(wait.as_secs().max(1)))?;
    let mut db = db.open().await?;
    let user: Option<(i64, String)> = db
        .query("SELECT id, password_hash FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional()
        .await?;
    let verified = match user {
        Some((user_id, hash)) => limits
            .hasher
            .verify(password, hash)
            .await?
            .then_some(user_id),
        None => None,
    };
    let Some(user_id) = verified else {
        attempt.failed();
        return Err(wrong());
    };
    attempt.succeeded();
    let token = token_for(&mut db, user_id).await?;
    Ok(ApiJson(json!({ "token": token })))
}
