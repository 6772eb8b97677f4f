//! A database server's name and URL, as a tenant's placement and the registry
//! (`db_servers.rs`) hold them. A URL may hold a password: [`DbServerUrl`] never shows it, in
//! `Display`, `Debug`, listings or logs.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
#[cfg(feature = "postgres")]
use sqlx::postgres::PgConnectOptions;

use crate::error::Error;
use crate::slug::Slug;

/// A server's name: the same rules as a tenant slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DbServerName(String);

impl<'de> serde::Deserialize<'de> for DbServerName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <String as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl DbServerName {
    /// A name the catalog holds (it was checked when the server was added).
    #[cfg(feature = "postgres")]
    pub(crate) fn from_catalog(name: String) -> Self {
        Self(name)
    }

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

impl fmt::Display for DbServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DbServerName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// A PostgreSQL URL that shows its password as `***` however it is printed.
#[derive(Clone, PartialEq, Eq)]
pub struct DbServerUrl(String);

impl DbServerUrl {
    /// Checks that `url` is a PostgreSQL URL naming a database.
    #[cfg(feature = "postgres")]
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

impl fmt::Display for DbServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DbServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbServerUrl({})", self.redacted())
    }
}

impl Serialize for DbServerUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}
