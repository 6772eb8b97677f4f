//! One-time login links (`web_login_links`): a token that logs its holder in as one user of
//! one tenant, once, within [`LOGIN_LINK_SECS`]. Only its SHA-256 is stored, in the tenant's
//! own data, so a link means nothing on any other tenant's site, whatever the routing.

use super::session::{digest, now};
use crate::db::Db;
use crate::secret::random_token;

/// How long a login link is valid, in seconds.
pub const LOGIN_LINK_SECS: u64 = 60;

/// A one-time login link's token, issued and redeemed in the tenant's transaction.
#[derive(Debug)]
pub struct LoginLink;

/// What a redeemed link logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The user.
    pub user_id: i64,
    /// The operator who issued it to look at the tenant as that user, if one did.
    pub impersonator: Option<String>,
}

impl LoginLink {
    /// A token that logs `user_id` in once within [`LOGIN_LINK_SECS`]; expired links of
    /// the tenant are removed on the way.
    pub async fn issue(db: &mut Db, user_id: i64) -> Result<String, sqlx::Error> {
        Self::issue_for(db, user_id, None).await
    }

    /// [`issue`](Self::issue), for the operator `impersonator` to look at the tenant as
    /// `user_id`: the session it starts says so.
    pub async fn issue_for(
        db: &mut Db,
        user_id: i64,
        impersonator: Option<&str>,
    ) -> Result<String, sqlx::Error> {
        db.query("DELETE FROM web_login_links WHERE expires_at <= $1")
            .bind(now())
            .execute()
            .await?;
        let token = random_token();
        let expires_at = now().saturating_add(LOGIN_LINK_SECS as i64);
        db.query(
            "INSERT INTO web_login_links (id, user_id, expires_at, impersonator) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest(&token))
        .bind(user_id)
        .bind(expires_at)
        .bind(impersonator)
        .execute()
        .await?;
        Ok(token)
    }

    /// What `token` logs in as, if it is unexpired; the token is spent either way, so a
    /// second use, or a concurrent one, finds nothing.
    pub async fn redeem(db: &mut Db, token: &str) -> Result<Option<Redeemed>, sqlx::Error> {
        if token.len() != 64 {
            return Ok(None);
        }
        let spent: Option<(i64, i64, Option<String>)> = db
            .query(
                "DELETE FROM web_login_links WHERE id = $1 \
                 RETURNING user_id, expires_at, impersonator",
            )
            .bind(digest(token))
            .fetch_optional()
            .await?;
        Ok(spent.filter(|(_, expires_at, _)| *expires_at > now()).map(
            |(user_id, _, impersonator)| Redeemed {
                user_id,
                impersonator,
            },
        ))
    }
}
