//! Validated tenant identifiers: [`Slug`] and the [`SchemaName`] derived from it.
//!
//! A slug is the tenant's public name (`thor` in `thor.polls.localhost`). Every SQL identifier
//! the framework emits for a tenant is derived from a `Slug`, so a value of these types is
//! safe to quote into SQL: the only way to make one is through validation.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Names a tenant may not take: they collide with schemas, subdomains or routes of the platform.
const RESERVED: &[&str] = &[
    "public",
    "tenantry",
    "information_schema",
    "www",
    "api",
    "admin",
    "static",
    "media",
    "mail",
    "localhost",
];

/// The shared-mode schema's name.
const SHARED_SCHEMA: &str = "tenantry_shared";

/// Why a slug was refused; the message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("a slug cannot be empty")]
    /// Nothing was given.
    Empty,
    #[error("a slug has at most 40 characters")]
    /// More than 40 characters.
    TooLong,
    #[error("a slug starts with a lower-case letter (a-z)")]
    /// The first character is not a lower-case letter.
    BadStart,
    #[error("a slug has only lower-case letters, digits and '-'")]
    /// A character other than a-z, 0-9 and `-`.
    BadCharacter,
    #[error("a slug cannot end with '-'")]
    /// The last character is `-`.
    TrailingHyphen,
    #[error("'{0}' is reserved")]
    /// A name kept for the platform (`www`, `api`, ...).
    Reserved(String),
}

/// A tenant slug: `^[a-z][a-z0-9-]{0,39}$`, not ending in `-`, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Validates `value` as a slug.
    pub fn parse(value: &str) -> Result<Self, SlugError> {
        let mut chars = value.chars();
        match chars.next() {
            None => return Err(SlugError::Empty),
            Some(c) if !c.is_ascii_lowercase() => return Err(SlugError::BadStart),
            Some(_) => {}
        }
        if value.len() > 40 {
            return Err(SlugError::TooLong);
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(SlugError::BadCharacter);
        }
        if value.ends_with('-') {
            return Err(SlugError::TrailingHyphen);
        }
        if RESERVED.contains(&value) || value.starts_with("pg-") || value.starts_with("tenantry-") {
            return Err(SlugError::Reserved(value.to_owned()));
        }
        Ok(Self(value.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The PostgreSQL schema that holds this tenant in schema mode.
    pub fn schema_name(&self) -> SchemaName {
        SchemaName::from_slug(self)
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Slug {
    type Err = SlugError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Slug::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A PostgreSQL schema name derived from a [`Slug`] (`-` becomes `_`).
///
/// It is a valid unquoted identifier of at most 40 bytes, never `public`, `tenantry`,
/// `information_schema` or `pg_*`; [`SchemaName::quoted`] is still used wherever it meets SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SchemaName(String);

impl SchemaName {
    fn from_slug(slug: &Slug) -> Self {
        Self(slug.as_str().replace('-', "_"))
    }

    /// Checks a schema name read back from the catalog: it must be what some slug derives to.
    pub fn from_catalog(value: &str) -> Option<Self> {
        if value == SHARED_SCHEMA {
            return Some(Self::shared());
        }
        let slug = Slug::parse(&value.replace('_', "-")).ok()?;
        let schema = slug.schema_name();
        (schema.0 == value).then_some(schema)
    }

    /// The schema of the catalog's database holding every shared-mode tenant's rows. No slug
    /// derives to it: slugs starting `tenantry-` are reserved.
    pub(crate) fn shared() -> Self {
        Self(SHARED_SCHEMA.into())
    }

    /// The schema holding a database-mode tenant's tables inside its own database.
    pub(crate) fn own_database() -> Self {
        Self("tenant".into())
    }

    /// The bare name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a double-quoted SQL identifier.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The database of a tenant in database mode: `tenant_<schema name>_<12 hex digits of its
/// id>` when it was created (database names are global to a server, and other catalogs may
/// have a tenant of the same slug there).
///
/// It is stored in the catalog and never renamed, so it is checked only for its form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DatabaseName(String);

impl DatabaseName {
    #[cfg(feature = "postgres")]
    pub(crate) fn for_tenant(slug: &Slug, id: uuid::Uuid) -> Self {
        let id = id.simple().to_string();
        Self(format!("tenant_{}_{}", slug.schema_name(), &id[..12]))
    }

    /// A fresh name for the tenant's database built by a move: like [`Self::for_tenant`]'s,
    /// but its last 6 hex digits are random, so it is never the database the tenant lives in
    /// now, wherever that is.
    #[cfg(feature = "postgres")]
    pub(crate) fn for_move(slug: &Slug, id: uuid::Uuid) -> Self {
        let (id, fresh) = (
            id.simple().to_string(),
            uuid::Uuid::new_v4().simple().to_string(),
        );
        Self(format!(
            "tenant_{}_{}{}",
            slug.schema_name(),
            &id[..6],
            &fresh[..6]
        ))
    }

    /// The stem of a SQLite tenant's file name: its slug, which allows no path separators
    /// and no dots.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_file(slug: &Slug) -> Self {
        Self(slug.as_str().to_owned())
    }

    /// Checks a SQLite tenant's file stem read back from the catalog.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_file_from_catalog(value: &str) -> Option<Self> {
        Slug::parse(value).ok().map(|slug| Self::sqlite_file(&slug))
    }

    /// Checks a database name read back from the catalog.
    pub fn from_catalog(value: &str) -> Option<Self> {
        let rest = value.strip_prefix("tenant_")?;
        let ok = (1..=56).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        ok.then(|| Self(value.to_owned()))
    }

    /// The bare name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a double-quoted SQL identifier.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SchemaName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::from_catalog(&raw).ok_or_else(|| serde::de::Error::custom("invalid schema name"))
    }
}

impl<'de> Deserialize<'de> for DatabaseName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::from_catalog(&raw).ok_or_else(|| serde::de::Error::custom("invalid database name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_slugs() {
        for ok in ["thor", "a", "potter-2", "x1-y2-z3", &"a".repeat(40)] {
            assert_eq!(Slug::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_hostile_slugs() {
        let cases = [
            ("", SlugError::Empty),
            ("'; DROP SCHEMA public CASCADE; --", SlugError::BadStart),
            ("thor'; DROP SCHEMA public; --", SlugError::BadCharacter),
            ("../etc", SlugError::BadStart),
            ("a/../b", SlugError::BadCharacter),
            ("Thor", SlugError::BadStart),
            ("1thor", SlugError::BadStart),
            ("thor_x", SlugError::BadCharacter),
            ("thor-", SlugError::TrailingHyphen),
            ("þór", SlugError::BadStart),
            ("tþór", SlugError::BadCharacter),
            ("public", SlugError::Reserved("public".into())),
            ("tenantry", SlugError::Reserved("tenantry".into())),
            ("pg-catalog", SlugError::Reserved("pg-catalog".into())),
            (
                "tenantry-shared",
                SlugError::Reserved("tenantry-shared".into()),
            ),
            ("www", SlugError::Reserved("www".into())),
        ];
        for (input, expected) in cases {
            assert_eq!(Slug::parse(input), Err(expected), "{input:?}");
        }
        assert_eq!(Slug::parse(&"a".repeat(41)), Err(SlugError::TooLong));
        assert_eq!(Slug::parse(&"a".repeat(300)), Err(SlugError::TooLong));
    }

    #[test]
    fn schema_names_round_trip_through_the_catalog() {
        let schema = Slug::parse("potter-2").unwrap().schema_name();
        assert_eq!(schema.as_str(), "potter_2");
        assert_eq!(schema.quoted(), "\"potter_2\"");
        assert_eq!(SchemaName::from_catalog("potter_2"), Some(schema));
        assert_eq!(
            SchemaName::from_catalog("tenantry_shared"),
            Some(SchemaName::shared())
        );
        for bad in ["public", "pg_catalog", "x\"y", "Potter", "a-b", ""] {
            assert_eq!(SchemaName::from_catalog(bad), None, "{bad:?}");
        }
    }
}
