//! The registry of database servers tenants can be placed on, kept in the catalog. A tenant
//! with no server lives in the catalog's own database.

use serde::Serialize;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::db_server::{DbServerName, DbServerUrl};
use crate::error::{Error, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, sqlstate};
use crate::pooler::{self, Pooler};

/// A registered server, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DbServer {
    /// The server's name.
    pub name: DbServerName,
    /// Its URL (the password never shown).
    pub url: DbServerUrl,
    /// How many tenants live there.
    pub tenants: i64,
}

/// The registry of servers, in the catalog. Cheap to clone.
#[derive(Clone)]
pub struct DbServers {
    catalog: PgPool,
    pooler: Pooler,
}

impl DbServers {
    /// The registry in the catalog reached through `catalog`.
    pub fn new(catalog: PgPool, pooler: Pooler) -> Self {
        Self { catalog, pooler }
    }

    /// The URL of a registered server.
    pub(crate) async fn url(&self, name: &DbServerName) -> Result<DbServerUrl, Error> {
        let url: Option<String> =
            pooler::query_scalar("SELECT url FROM tenantry.servers WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(pooler::Pinned(&self.catalog))
                .await?;
        url.map(DbServerUrl::from_catalog)
            .ok_or_else(|| Error::DbServerNotFound(name.to_string()))
    }

    /// Registers a server after checking that it answers.
    pub async fn add(&self, name: &DbServerName, url: &DbServerUrl) -> Result<(), Error> {
        let mut conn = PgConnection::connect_with(&self.pooler.connect_options(url.expose())?)
            .await
            .map_err(|source| Error::Unreachable {
                server: name.to_string(),
                source,
            })?;
        conn.execute("SELECT 1").await?;
        pooler::query("INSERT INTO tenantry.servers (name, url) VALUES ($1, $2)")
            .bind(name.as_str())
            .bind(url.expose())
            .execute(pooler::Pinned(&self.catalog))
            .await
            .map_err(|e| match sqlstate(&e).as_deref() {
                Some(UNIQUE_VIOLATION) => Error::DbServerExists(name.to_string()),
                _ => Error::Database(e),
            })?;
        Ok(())
    }

    /// Every server, with how many tenants it holds.
    pub async fn list(&self) -> Result<Vec<DbServer>, Error> {
        let rows: Vec<(String, String, i64)> = pooler::query_as(
            "SELECT s.name, s.url, count(t.id) FROM tenantry.servers s \
             LEFT JOIN tenantry.tenants t ON t.server = s.name GROUP BY s.name, s.url ORDER BY s.name",
        )
        .fetch_all(pooler::Pinned(&self.catalog))
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, url, tenants)| DbServer {
                name: DbServerName::from_catalog(name),
                url: DbServerUrl::from_catalog(url),
                tenants,
            })
            .collect())
    }

    /// Removes a server; refused while tenants live there.
    pub async fn remove(&self, name: &DbServerName) -> Result<(), Error> {
        let removed = pooler::query("DELETE FROM tenantry.servers WHERE name = $1")
            .bind(name.as_str())
            .execute(pooler::Pinned(&self.catalog))
            .await
            .map_err(|e| match sqlstate(&e).as_deref() {
                Some(FOREIGN_KEY_VIOLATION) => Error::DbServerInUse(name.to_string()),
                _ => Error::Database(e),
            })?;
        if removed.rows_affected() == 0 {
            return Err(Error::DbServerNotFound(name.to_string()));
        }
        Ok(())
    }
}

impl std::fmt::Debug for DbServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbServers")
            .field("pooler", &self.pooler)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_show_their_password() {
        let url = DbServerUrl::parse("postgres://app:s3cret@db.example:5432/tenants").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.example:5432/tenants"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&url).unwrap().contains("s3cret"));
        let plain = DbServerUrl::parse("postgres://app@db.example/tenants").unwrap();
        assert_eq!(plain.to_string(), "postgres://app@db.example/tenants");
        assert!(DbServerUrl::parse("postgres://app@db.example").is_err());
        assert!(DbServerUrl::parse("mysql://x@y/z").is_err());
    }
}
