//! The registry of database servers tenants can be placed on, and a pool per server.
//!
//! A tenant with no server lives in the catalog's own database. A server's URL may hold a
//! password: [`ServerUrl`] never shows it, in `Display`, `Debug`, listings or logs.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::error::{Error, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, sqlstate};
use crate::pooler::{self, Pooler};
use crate::slug::Slug;

/// A server's name: the same rules as a tenant slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ServerName(String);

impl<'de> serde::Deserialize<'de> for ServerName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <String as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl ServerName {
    /// Validates `value` as a server name.
    pub fn parse(value: &str) -> Result<Self, Error> {
        Slug::parse(value)
            .map(|slug| Self(slug.as_str().to_owned()))
            .map_err(|e| Error::Invalid {
                field: "server",
                message: format!("server names follow the slug rules: {e}"),
            })
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ServerName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// A PostgreSQL URL that shows its password as `***` however it is printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Checks that `url` is a PostgreSQL URL naming a database.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |message: &str| Error::Invalid {
            field: "url",
            message: message.to_owned(),
        };
        let not_postgres = || invalid("not a PostgreSQL URL (postgres://user@host:port/database)");
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(not_postgres());
        }
        let options = PgConnectOptions::from_str(url).map_err(|_| not_postgres())?;
        if options.get_database().is_none() {
            return Err(invalid("the URL names no database"));
        }
        Ok(Self(url.to_owned()))
    }

    /// A URL the catalog holds (it was checked when the server was added).
    pub(crate) fn from_catalog(url: String) -> Self {
        Self(url)
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "***".into();
        };
        match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => self.0.clone(),
            },
            None => self.0.clone(),
        }
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({})", self.redacted())
    }
}

impl Serialize for ServerUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// A registered server, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub name: ServerName,
    pub url: ServerUrl,
    /// How many tenants live there.
    pub tenants: i64,
}

/// The registry of servers, in the catalog. Cheap to clone.
#[derive(Clone)]
pub struct Servers {
    catalog: PgPool,
    pooler: Pooler,
}

impl Servers {
    /// The registry in the catalog reached through `catalog`.
    pub fn new(catalog: PgPool, pooler: Pooler) -> Self {
        Self { catalog, pooler }
    }

    /// The URL of a registered server.
    pub(crate) async fn url(&self, name: &ServerName) -> Result<ServerUrl, Error> {
        let url: Option<String> =
            pooler::query_scalar("SELECT url FROM tenantry.servers WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(pooler::Pinned(&self.catalog))
                .await?;
        url.map(ServerUrl)
            .ok_or_else(|| Error::ServerNotFound(name.to_string()))
    }

    /// Registers a server after checking that it answers.
    pub async fn add(&self, name: &ServerName, url: &ServerUrl) -> Result<(), Error> {
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
                Some(UNIQUE_VIOLATION) => Error::ServerExists(name.to_string()),
                _ => Error::Database(e),
            })?;
        Ok(())
    }

    /// Every server, with how many tenants it holds.
    pub async fn list(&self) -> Result<Vec<Server>, Error> {
        let rows: Vec<(String, String, i64)> = pooler::query_as(
            "SELECT s.name, s.url, count(t.id) FROM tenantry.servers s \
             LEFT JOIN tenantry.tenants t ON t.server = s.name GROUP BY s.name, s.url ORDER BY s.name",
        )
        .fetch_all(pooler::Pinned(&self.catalog))
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, url, tenants)| Server {
                name: ServerName(name),
                url: ServerUrl(url),
                tenants,
            })
            .collect())
    }

    /// Removes a server; refused while tenants live there.
    pub async fn remove(&self, name: &ServerName) -> Result<(), Error> {
        let removed = pooler::query("DELETE FROM tenantry.servers WHERE name = $1")
            .bind(name.as_str())
            .execute(pooler::Pinned(&self.catalog))
            .await
            .map_err(|e| match sqlstate(&e).as_deref() {
                Some(FOREIGN_KEY_VIOLATION) => Error::ServerInUse(name.to_string()),
                _ => Error::Database(e),
            })?;
        if removed.rows_affected() == 0 {
            return Err(Error::ServerNotFound(name.to_string()));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Servers")
            .field("pooler", &self.pooler)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_show_their_password() {
        let url = ServerUrl::parse("postgres://app:s3cret@db.example:5432/tenants").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.example:5432/tenants"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&url).unwrap().contains("s3cret"));
        let plain = ServerUrl::parse("postgres://app@db.example/tenants").unwrap();
        assert_eq!(plain.to_string(), "postgres://app@db.example/tenants");
        assert!(ServerUrl::parse("postgres://app@db.example").is_err());
        assert!(ServerUrl::parse("mysql://x@y/z").is_err());
    }
}
