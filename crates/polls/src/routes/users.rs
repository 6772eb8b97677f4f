//! `POST /users` (sign up) and `POST /login` (get an API token).

use axum::Extension;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::FromRow;
use tenantry::http::LazyTenantDb;
use tenantry::{Tenant, TenantDb};

use super::{REQUIRED, check_text, required_text};
use crate::auth::token_for;
use crate::error::{ApiError, FieldErrors, is_unique_violation};
use crate::json::ApiJson;
use crate::limits::{AuthGate, AuthLimits};
use crate::rules::Settings;

const USERNAME_MAX: usize = 150;
const EMAIL_MAX: usize = 254;
const PASSWORD_MAX: usize = 128;

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
    let username = errors.check("username", validate_username(body.username));
    let email = errors.check("email", validate_email(body.email));
    let password = errors.check("password", validate_password(body.password));
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(ApiError::Fields(errors));
    };
    let password_hash = limits.hasher.hash(password).await?;
    let user = db
        .query(
            "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3) \
             RETURNING id, username, email",
        )
        .bind(username)
        .bind(email)
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

/// Whether a login's username and password are short enough to belong to an account.
pub(crate) fn plausible_login(username: &str, password: &str) -> bool {
    username.chars().count() <= USERNAME_MAX && password.chars().count() <= PASSWORD_MAX
}

/// Django's username rules: at most 150 letters, digits and `@.+-_`.
pub(crate) fn validate_username(username: Option<String>) -> Result<String, String> {
    let username = required_text(username, USERNAME_MAX)?;
    if username
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
    {
        Ok(username)
    } else {
        Err(
            "Enter a valid username. This value may contain only letters, numbers, \
             and @/./+/-/_ characters."
                .to_owned(),
        )
    }
}

/// Optional (`""` when missing or blank); otherwise one `@` with text on both sides.
pub(crate) fn validate_email(email: Option<String>) -> Result<String, String> {
    let email = email.unwrap_or_default();
    let email = email.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    let email = check_text(email, EMAIL_MAX)?;
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.contains(char::is_whitespace) =>
        {
            Ok(email.to_owned())
        }
        _ => Err("Enter a valid email address.".to_owned()),
    }
}

/// Required, not blank, at most 128 characters; kept as typed (not trimmed).
pub(crate) fn validate_password(password: Option<String>) -> Result<String, String> {
    let password = password.ok_or_else(|| REQUIRED.to_owned())?;
    check_text(&password, PASSWORD_MAX)?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(
            validate_username(Some(" ana.b+c-d_e@x ".into())),
            Ok("ana.b+c-d_e@x".into())
        );
        assert_eq!(validate_username(Some("Zoë".into())), Ok("Zoë".into()));
        assert!(validate_username(Some("ana b".into())).is_err());
        assert!(validate_username(Some("ana/b".into())).is_err());
        assert!(validate_username(Some("a".repeat(151))).is_err());
        assert!(validate_username(Some("a".repeat(150))).is_ok());
        assert_eq!(validate_username(None), Err(REQUIRED.into()));
    }

    #[test]
    fn emails() {
        assert_eq!(validate_email(None), Ok(String::new()));
        assert_eq!(validate_email(Some(" ".into())), Ok(String::new()));
        assert_eq!(validate_email(Some("a@b.c ".into())), Ok("a@b.c".into()));
        for invalid in ["ab", "@b", "a@", "a@b@c", "a b@c"] {
            assert_eq!(
                validate_email(Some(invalid.into())),
                Err("Enter a valid email address.".into()),
                "{invalid}"
            );
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(validate_password(Some(" pw ".into())), Ok(" pw ".into()));
        assert_eq!(validate_password(None), Err(REQUIRED.into()));
        assert!(validate_password(Some("  ".into())).is_err());
        assert!(validate_password(Some("x".repeat(129))).is_err());
    }
}
