//! Passwords, API tokens and the [`AuthUser`] extractor.

use argon2::Argon2;
use argon2::password_hash::{Output, PasswordHash, Salt, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use tenantry::{Db, TenantDb};

use crate::error::ApiError;

/// Argon2's working memory (19 MiB with the default parameters). A hashing thread keeps one
/// and reuses it: allocated afresh for every hash, the allocator keeps much of it resident.
pub type HashMemory = Vec<argon2::Block>;

/// Hashes a password with argon2's default parameters and a random salt, as a PHC string.
///
/// CPU and memory heavy: from async code, use [`PasswordHasher`](crate::limits::PasswordHasher).
pub fn hash_password(password: &str) -> String {
    hash_password_with(password, &mut HashMemory::new())
}

/// [`hash_password`] in `memory`.
pub fn hash_password_with(password: &str, memory: &mut HashMemory) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .expect("16 bytes is a valid salt length");
    let argon2 = Argon2::default();
    let output = raw_hash(&argon2, password, salt.as_salt(), memory)
        .expect("argon2 with default parameters hashes any password shorter than 4 GiB");
    PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(argon2::Version::default().into()),
        params: argon2
            .params()
            .try_into()
            .expect("the default parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string()
}

/// Whether `password` matches a PHC string made by [`hash_password`]; `false` for a malformed hash.
///
/// CPU and memory heavy: from async code, use [`PasswordHasher`](crate::limits::PasswordHasher).
pub fn verify_password(password: &str, hash: &str) -> bool {
    verify_password_with(password, hash, &mut HashMemory::new())
}

/// [`verify_password`] in `memory`.
pub fn verify_password_with(password: &str, hash: &str, memory: &mut HashMemory) -> bool {
    let Ok(hash) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let argon2 = match (
        argon2::Algorithm::try_from(hash.algorithm),
        argon2::Params::try_from(&hash),
    ) {
        (Ok(algorithm), Ok(params)) => Argon2::new(algorithm, argon2::Version::default(), params),
        _ => return false,
    };
    // `Output`'s equality is constant-time.
    raw_hash(&argon2, password, salt, memory).is_ok_and(|output| output == expected)
}

/// The raw argon2 output of `password` with `salt`, computed in `memory` (grown as needed).
fn raw_hash(
    argon2: &Argon2<'_>,
    password: &str,
    salt: Salt<'_>,
    memory: &mut HashMemory,
) -> Result<Output, argon2::password_hash::Error> {
    let blocks = argon2.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let length = argon2
        .params()
        .output_len()
        .unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(length, |out| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..blocks])
            .map_err(Into::into)
    })
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
        // Hashes made by the argon2 crate's own hasher (as before this module reused memory)
        // still verify, and ours verify there.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"s3cret", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("s3cret", &theirs));
        let ours = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"s3cret", &ours).is_ok());
        let key = new_token_key();
        assert_eq!(key.len(), 40);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}
