//! The library's error type.

use crate::slug::Slug;

/// What can go wrong managing tenants; each variant maps to one HTTP status and exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no tenant '{0}'")]
    TenantNotFound(String),
    #[error("a tenant with slug '{0}' already exists")]
    SlugTaken(Slug),
    #[error("domain '{0}' already belongs to a tenant")]
    DomainTaken(String),
    #[error("'{0}' already exists on the server outside the catalog; drop or rename it first")]
    ExistsOutsideCatalog(String),
    #[error("domain '{0}' is not one of this tenant's domains")]
    DomainNotFound(String),
    #[error("the primary domain '{0}' cannot be removed; rename the tenant instead")]
    PrimaryDomain(String),
    #[error("no server '{0}'")]
    ServerNotFound(String),
    #[error("a server named '{0}' already exists")]
    ServerExists(String),
    #[error("server '{0}' still holds tenants; move or delete them first")]
    ServerInUse(String),
    #[error("server '{0}' could not be reached: {1}")]
    Unreachable(String, String),
    #[error("{0}")]
    Incomplete(String),
    #[error("every tenant database connection is busy; retry shortly")]
    Busy,
    #[error("the tenant catalog holds an invalid row: {0}")]
    CorruptCatalog(String),
    #[error("tenant '{0}' is being moved; retry when the move has finished")]
    Moving(String),
    #[error("{0}")]
    UnsafeRole(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl Error {
    /// The process exit code for this error: 2 invalid input, 3 not found, 4 conflict,
    /// 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Invalid { .. } => 2,
            Self::TenantNotFound(_) | Self::DomainNotFound(_) | Self::ServerNotFound(_) => 3,
            Self::SlugTaken(_)
            | Self::DomainTaken(_)
            | Self::ExistsOutsideCatalog(_)
            | Self::PrimaryDomain(_)
            | Self::ServerExists(_)
            | Self::ServerInUse(_)
            | Self::Moving(_) => 4,
            Self::Unreachable(..)
            | Self::Incomplete(_)
            | Self::Busy
            | Self::CorruptCatalog(_)
            | Self::UnsafeRole(_)
            | Self::Migration(_)
            | Self::Database(_) => 1,
        }
    }
}

/// Whether `error` says the database could not be reached or its connection was lost (a
/// restart, a pooler going away, a full pool): worth a retry, not a bug.
pub(crate) fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => sqlstate(error).is_some_and(|code| {
            // Connection exceptions, shutdowns and crash recovery, too many connections.
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// The PostgreSQL error code of a database error, if it has one.
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// The constraint a database error names, if any.
pub(crate) fn constraint(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.constraint())
        .map(str::to_owned)
}

pub(crate) const UNIQUE_VIOLATION: &str = "23505";
pub(crate) const DUPLICATE_SCHEMA: &str = "42P06";
pub(crate) const FOREIGN_KEY_VIOLATION: &str = "23503";
pub(crate) const DUPLICATE_DATABASE: &str = "42P04";
pub(crate) const DUPLICATE_OBJECT: &str = "42710";
