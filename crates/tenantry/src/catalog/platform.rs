//! The catalog's tables for running the platform: the console's operators and their
//! sessions, and the audit log of every change made through the console or the platform
//! API. The same SQL serves both engines (`tenantry.` is dropped on SQLite).

use chrono::{DateTime, Utc};

use super::TenantCatalog;
use crate::error::Error;
use crate::secret::{digest, random_token};
use crate::slug::Slug;

/// An operator of the console.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operator {
    /// The name they log in with.
    pub name: String,
    /// When they were added.
    pub created_at: DateTime<Utc>,
}

/// An operator's session found by its cookie's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    /// Whose it is.
    pub operator: String,
    /// The token every form of the session's pages carries.
    pub csrf: String,
}

/// One change made to the platform: who (an operator, or `platform-api`), what, to which
/// tenant or object, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// `operator:<name>`, `platform-api` or `cli`.
    pub actor: String,
    /// What was done: `tenant.suspend`, `tenant.delete`, `operator.login`...
    pub action: String,
    /// The tenant's slug or the object it was done to, if any.
    pub target: Option<String>,
    /// `ok`, or why it failed.
    pub outcome: String,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only those about this target.
    pub target: Option<String>,
    /// Only those recorded at or after this.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first; 100 when zero.
    pub limit: u32,
}

/// Operator names: a lower-case letter, then lower-case letters, digits and `._-`, at most
/// 40 characters.
pub fn check_operator_name(name: &str) -> Result<(), Error> {
    let valid = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    match valid {
        true => Ok(()),
        false => Err(Error::Invalid {
            field: "name",
            message: format!(
                "'{name}' is not an operator name: a lower-case letter, then up to 39 \
                 lower-case letters, digits, '.', '_' or '-'"
            ),
        }),
    }
}

fn now() -> i64 {
    Utc::now().timestamp()
}

impl TenantCatalog {
    /// Adds an operator with an already hashed password.
    pub async fn create_operator(&self, name: &str, password_hash: &str) -> Result<(), Error> {
        check_operator_name(name)?;
        let store = &self.inner.store;
        let done = on_store!(
            store,
            query,
            "INSERT INTO tenantry.operators (name, password_hash, created_at) \
             VALUES ($1, $2, $3)",
            [name, password_hash, Utc::now()],
            execute
        );
        match done {
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(Error::OperatorExists(name.to_owned()))
            }
            other => other.map(drop).map_err(Error::from),
        }
    }

    /// Every operator, by name.
    pub async fn operators(&self) -> Result<Vec<Operator>, Error> {
        let rows: Vec<(String, DateTime<Utc>)> = on_store!(
            &self.inner.store,
            query_as,
            "SELECT name, created_at FROM tenantry.operators ORDER BY name",
            [],
            fetch_all
        )?;
        Ok(rows
            .into_iter()
            .map(|(name, created_at)| Operator { name, created_at })
            .collect())
    }

    /// Removes an operator, and with them their sessions.
    pub async fn delete_operator(&self, name: &str) -> Result<(), Error> {
        let done = on_store!(
            &self.inner.store,
            query,
            "DELETE FROM tenantry.operators WHERE name = $1",
            [name],
            execute
        )?;
        match done {
            0 => Err(Error::OperatorNotFound(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// The password hash of an operator, to check a login against.
    pub async fn operator_password_hash(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(on_store!(
            &self.inner.store,
            query_scalar,
            "SELECT password_hash FROM tenantry.operators WHERE name = $1",
            [name],
            fetch_optional
        )?)
    }

    /// Starts a session of `operator` for `lifetime_secs`; returns the cookie's token (only
    /// its SHA-256 is stored) and the session's CSRF token. Expired sessions go on the way.
    pub async fn start_operator_session(
        &self,
        operator: &str,
        lifetime_secs: i64,
    ) -> Result<(String, String), Error> {
        let store = &self.inner.store;
        on_store!(
            store,
            query,
            "DELETE FROM tenantry.operator_sessions WHERE expires_at <= $1",
            [now()],
            execute
        )?;
        let (token, csrf) = (random_token(), random_token());
        on_store!(
            store,
            query,
            "INSERT INTO tenantry.operator_sessions (id, operator, csrf, expires_at) \
             VALUES ($1, $2, $3, $4)",
            [
                digest(&token),
                operator,
                &csrf,
                now().saturating_add(lifetime_secs)
            ],
            execute
        )?;
        Ok((token, csrf))
    }

    /// The unexpired session whose cookie holds `token`.
    pub async fn operator_session(&self, token: &str) -> Result<Option<OperatorSession>, Error> {
        if token.len() != 64 {
            return Ok(None);
        }
        let row: Option<(String, String)> = on_store!(
            &self.inner.store,
            query_as,
            "SELECT operator, csrf FROM tenantry.operator_sessions \
             WHERE id = $1 AND expires_at > $2",
            [digest(token), now()],
            fetch_optional
        )?;
        Ok(row.map(|(operator, csrf)| OperatorSession { operator, csrf }))
    }

    /// Ends the session whose cookie holds `token` (logout).
    pub async fn end_operator_session(&self, token: &str) -> Result<(), Error> {
        on_store!(
            &self.inner.store,
            query,
            "DELETE FROM tenantry.operator_sessions WHERE id = $1",
            [digest(token)],
            execute
        )?;
        Ok(())
    }

    /// Records a change in the audit log.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        outcome: &str,
    ) -> Result<(), Error> {
        on_store!(
            &self.inner.store,
            query,
            "INSERT INTO tenantry.audit_log (at, actor, action, target, outcome) \
             VALUES ($1, $2, $3, $4, $5)",
            [Utc::now(), actor, action, target, outcome],
            execute
        )?;
        Ok(())
    }

    /// The audit entries `filter` asks for, newest first.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, Error> {
        let limit = i64::from(if filter.limit == 0 { 100 } else { filter.limit });
        let since = filter.since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        Ok(on_store!(
            &self.inner.store,
            query_as,
            "SELECT at, actor, action, target, outcome FROM tenantry.audit_log \
             WHERE at >= $1 AND ($2 = '' OR target = $2) ORDER BY id DESC LIMIT $3",
            [since, filter.target.as_deref().unwrap_or(""), limit],
            fetch_all
        )?)
    }

    /// The deleted tenants whose deletion is at or before `cutoff`: their grace is over.
    pub async fn deleted_before(&self, cutoff: DateTime<Utc>) -> Result<Vec<Slug>, Error> {
        let slugs: Vec<String> = on_store!(
            &self.inner.store,
            query_scalar,
            "SELECT slug FROM tenantry.tenants WHERE status = 'deleted' AND deleted_at <= $1 \
             ORDER BY slug",
            [cutoff],
            fetch_all
        )?;
        slugs
            .iter()
            .map(|slug| {
                Slug::parse(slug).map_err(|e| Error::CorruptCatalog(format!("slug '{slug}': {e}")))
            })
            .collect()
    }
}
