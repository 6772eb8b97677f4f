//! Login sessions in the tenant's own data (`web_sessions`): a random token in the cookie,
//! its SHA-256 in the table, and a CSRF token per session.

pub(super) use crate::secret::digest;
use crate::secret::random_token;

use crate::db::Db;

/// A session found by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user it is for.
    pub user_id: i64,
    /// The token every unsafe request of the session's pages must carry.
    pub csrf: String,
    /// The operator looking at the tenant as this user, if it is an impersonation.
    pub impersonator: Option<String>,
}

/// A session just started: the token goes in the cookie, and only there.
#[derive(Debug)]
pub struct StartedSession {
    /// The token for the session cookie (only its SHA-256 is stored).
    pub token: String,
    /// The session's CSRF token.
    pub csrf: String,
}

pub(super) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Session {
    /// Starts a session of `user_id` for `lifetime_secs`, ending `previous` (the session the
    /// browser had, if any: a login always gets a new id) and the user's expired ones.
    pub async fn start(
        db: &mut Db,
        user_id: i64,
        lifetime_secs: u64,
        previous: Option<&str>,
    ) -> Result<StartedSession, sqlx::Error> {
        Self::start_for(db, user_id, lifetime_secs, previous, None).await
    }

    /// [`start`](Self::start), for the operator `impersonator` looking at the tenant as
    /// `user_id`.
    pub async fn start_for(
        db: &mut Db,
        user_id: i64,
        lifetime_secs: u64,
        previous: Option<&str>,
        impersonator: Option<&str>,
    ) -> Result<StartedSession, sqlx::Error> {
        if let Some(previous) = previous {
            Self::end(db, previous).await?;
        }
        db.query("DELETE FROM web_sessions WHERE user_id = $1 AND expires_at <= $2")
            .bind(user_id)
            .bind(now())
            .execute()
            .await?;
        let started = StartedSession {
            token: random_token(),
            csrf: random_token(),
        };
        let expires_at = now().saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX));
        db.query(
            "INSERT INTO web_sessions (id, user_id, csrf, expires_at, impersonator) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest(&started.token))
        .bind(user_id)
        .bind(&started.csrf)
        .bind(expires_at)
        .bind(impersonator)
        .execute()
        .await?;
        Ok(started)
    }

    /// The unexpired session whose cookie holds `token`.
    pub async fn find(db: &mut Db, token: &str) -> Result<Option<Self>, sqlx::Error> {
        if token.len() != 64 {
            return Ok(None);
        }
        let row: Option<(i64, String, Option<String>)> = db
            .query(
                "SELECT user_id, csrf, impersonator FROM web_sessions \
                 WHERE id = $1 AND expires_at > $2",
            )
            .bind(digest(token))
            .bind(now())
            .fetch_optional()
            .await?;
        Ok(row.map(|(user_id, csrf, impersonator)| Self {
            user_id,
            csrf,
            impersonator,
        }))
    }

    /// Ends the session whose cookie holds `token` (logout).
    pub async fn end(db: &mut Db, token: &str) -> Result<(), sqlx::Error> {
        db.query("DELETE FROM web_sessions WHERE id = $1")
            .bind(digest(token))
            .execute()
            .await?;
        Ok(())
    }

    /// Ends every session of `user_id` (a password reset, a lost staff flag).
    pub async fn end_all(db: &mut Db, user_id: i64) -> Result<(), sqlx::Error> {
        db.query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_digest_of_a_token_is_stored() {
        let a = random_token();
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), a);
        assert_eq!(digest(&a), digest(&a.clone()));
    }
}
