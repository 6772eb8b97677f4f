//! Passwords, API tokens and the [`AuthUser`] extractor.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use tenantry::{Db, TenantDb};

use crate::error::ApiError;

/// Hashes a password with argon2's default parameters and a random salt, as a PHC string.
///
/// CPU heavy: from async code, use [`hash_password_async`].
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password shorter than 4 GiB")
        .to_string()
}

/// Whether `password` matches a PHC string made by [`hash_password`]; `false` for a malformed hash.
///
/// CPU heavy: from async code, use [`verify_password_async`].
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// [`hash_password`] on tokio's blocking pool.
pub async fn hash_password_async(password: String) -> String {
    off_thread(move || hash_password(&password)).await
}

/// [`verify_password`] on tokio's blocking pool.
pub async fn verify_password_async(password: String, hash: String) -> bool {
    off_thread(move || verify_password(&password, &hash)).await
}

/// Runs CPU-heavy work on the blocking pool; a panic in it resumes in the caller.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

/// A new API token key: 40 lowercase hex characters from 20 random bytes.
pub fn new_token_key() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

/// The user's API token, created on first use and the same ever after. The conflict names
/// no columns: the unique keys differ by layout (shared-mode keys lead with the tenant).
pub async fn token_for(db: &mut Db, user_id: i64) -> Result<String, sqlx::Error> {
    db.query("INSERT INTO tokens (key, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(new_token_key())
        .bind(user_id)
        .execute()
        .await?;
    db.query("SELECT key FROM tokens WHERE user_id = $1")
        .bind(user_id)
        .fetch_scalar()
        .await
}

/// The user a request authenticates as, from its `Authorization: Token <key>` header.
///
/// It reads the token with a [`TenantDb`] it drops before returning, so in a handler's
/// arguments it must come before any `TenantDb` (only one can be alive at a time).
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// `users.id`.
    pub id: i64,
    /// `users.username`.
    pub username: String,
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = token_key(&parts.headers)?;
        let mut db = TenantDb::from_request_parts(parts, state).await?;
        let user: Option<(i64, String)> = db
            .query(
                "SELECT users.id, users.username FROM tokens \
                 JOIN users ON users.id = tokens.user_id WHERE tokens.key = $1",
            )
            .bind(key)
            .fetch_optional()
            .await?;
        drop(db);
        let (id, username) = user.ok_or(ApiError::Unauthorized("Invalid token."))?;
        Ok(Self { id, username })
    }
}

/// The key of an `Authorization: Token <key>` header (the scheme is case-insensitive).
fn token_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let not_provided = ApiError::Unauthorized("Authentication credentials were not provided.");
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(not_provided);
    };
    let Ok(value) = value.to_str() else {
        return Err(ApiError::Unauthorized(
            "Invalid token header. Token string should not contain invalid characters.",
        ));
    };
    let mut words = value.split_whitespace();
    if !words
        .next()
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("token"))
    {
        return Err(not_provided);
    }
    match (words.next(), words.next()) {
        (Some(key), None) => Ok(key.to_owned()),
        (None, _) => Err(ApiError::Unauthorized(
            "Invalid token header. No credentials provided.",
        )),
        (Some(_), Some(_)) => Err(ApiError::Unauthorized(
            "Invalid token header. Token string should not contain spaces.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn key_of(authorization: &str) -> Result<String, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("a valid header value"),
        );
        token_key(&headers)
    }

    #[test]
    fn token_header() {
        assert_eq!(key_of("Token abc").ok().as_deref(), Some("abc"));
        assert_eq!(key_of("token  abc ").ok().as_deref(), Some("abc"));
        for (header, message) in [
            (
                "Bearer abc",
                "Authentication credentials were not provided.",
            ),
            ("Token", "Invalid token header. No credentials provided."),
            (
                "Token a b",
                "Invalid token header. Token string should not contain spaces.",
            ),
        ] {
            assert!(
                matches!(key_of(header), Err(ApiError::Unauthorized(m)) if m == message),
                "{header}"
            );
        }
        assert!(matches!(
            token_key(&HeaderMap::new()),
            Err(ApiError::Unauthorized(
                "Authentication credentials were not provided."
            ))
        ));
    }

    #[test]
    fn passwords_and_keys() {
        let hash = hash_password("s3cret");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("S3cret", &hash));
        assert!(!verify_password("s3cret", "not a hash"));
        let key = new_token_key();
        assert_eq!(key.len(), 40);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}
