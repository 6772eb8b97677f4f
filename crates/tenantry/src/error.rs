//! The library's error type.

use axum::http::StatusCode;

use crate::slug::Slug;

/// What can go wrong managing tenants; [`Error::kind`] says how it is reported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field}: {message}")]
    /// A value broke a rule: which field, and why.
    Invalid {
        /// The field or argument.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    #[error("invalid settings: {}", settings_errors(.0))]
    /// Settings the app's schema refused, key by key.
    InvalidSettings(std::collections::BTreeMap<String, String>),
    #[error("no tenant '{0}'")]
    /// No tenant has this slug.
    TenantNotFound(String),
    #[error("a tenant with slug '{0}' already exists")]
    /// Another tenant has this slug.
    SlugTaken(Slug),
    #[error("domain '{0}' already belongs to a tenant")]
    /// Another tenant has this domain.
    DomainTaken(String),
    #[error("'{0}' already exists on the server outside the catalog; drop or rename it first")]
    /// A schema, database or file by this name exists that the catalog does not know.
    ExistsOutsideCatalog(String),
    #[error("domain '{0}' is not one of this tenant's domains")]
    /// The tenant has no such domain.
    DomainNotFound(String),
    #[error("the primary domain '{0}' cannot be removed; rename the tenant instead")]
    /// The primary domain follows the slug and cannot be removed.
    PrimaryDomain(String),
    #[error("no server '{0}'")]
    /// No database server has this name.
    DbServerNotFound(String),
    #[error("tenant '{tenant}' has no job {id}")]
    /// No such job in the tenant's queue.
    JobNotFound {
        /// The tenant's slug.
        tenant: String,
        /// The job's id.
        id: i64,
    },
    #[error("job {id} is {state}; {remedy}")]
    /// The job is not in a state the action applies to.
    JobState {
        /// The job's id.
        id: i64,
        /// Its state.
        state: String,
        /// What can be done instead.
        remedy: &'static str,
    },
    #[error("no operator '{0}'")]
    /// No operator of the console has this name.
    OperatorNotFound(String),
    #[error("an operator named '{0}' already exists")]
    /// An operator has this name already.
    OperatorExists(String),
    #[error("a server named '{0}' already exists")]
    /// A database server has this name already.
    DbServerExists(String),
    #[error("server '{0}' still holds tenants; move or delete them first")]
    /// The database server still holds tenants.
    DbServerInUse(String),
    #[error("server '{server}' could not be reached: {}", database_message(.source))]
    /// A database server did not answer.
    Unreachable {
        /// Its name.
        server: String,
        #[source]
        /// What the driver said.
        source: sqlx::Error,
    },
    #[error("{0}")]
    /// An operation could not finish; the message says why.
    Incomplete(String),
    /// Work that was committed, and a step after it that failed: what is left to do by hand.
    #[error("{done}, but {left} ({source}); {remedy}")]
    Unfinished {
        /// What was committed.
        done: String,
        /// What failed after it.
        left: String,
        /// What to do about it.
        remedy: &'static str,
        #[source]
        /// The failure.
        source: Box<Error>,
    },
    #[error("every tenant database connection is busy; retry shortly")]
    /// Every connection of the pool is in use.
    Busy,
    #[error("the server of tenant '{0}' is starting or backing off after dying; retry shortly")]
    /// A dedicated tenant's own server is starting or backing off.
    InstanceUnavailable(String),
    #[error("the tenant catalog holds an invalid row: {0}")]
    /// A catalog row tenantry cannot read.
    CorruptCatalog(String),
    #[error("tenant '{0}' is being moved; retry when the move has finished")]
    /// The tenant is being moved: writes wait for the move to finish.
    Moving(String),
    #[error("{0}")]
    /// The app role may do more than tenant transactions should.
    UnsafeRole(String),
    #[error("migration failed: {0}")]
    /// A migration set or ledger is not as it should be.
    Migration(String),
    #[error(
        "migration failed: migration {version} ({description}): {}",
        database_message(.source)
    )]
    /// A migration's SQL failed.
    MigrationFailed {
        /// Its version.
        version: i64,
        /// Its description.
        description: String,
        #[source]
        /// What the database said.
        source: sqlx::Error,
    },
    #[error("database error: {}", database_message(.0))]
    /// Any other database error.
    Database(#[from] sqlx::Error),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
}

/// What kind of failure an [`Error`] is. Exit codes, HTTP statuses and the platform API's
/// replies are all chosen from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: exit 2, 400.
    Invalid,
    /// Something it names does not exist: exit 3, 404.
    NotFound,
    /// It clashes with what exists or is under way: exit 4, 409.
    Conflict,
    /// A database or server cannot take the work now, and a retry may succeed: exit 1, 503
    /// with `Retry-After`.
    Unavailable,
    /// A failure on the server's side: exit 1, 500.
    Internal,
}

impl ErrorKind {
    /// The process exit code: 2 invalid input, 3 not found, 4 conflict, 1 anything else.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Invalid => 2,
            Self::NotFound => 3,
            Self::Conflict => 4,
            Self::Unavailable | Self::Internal => 1,
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Invalid => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } | Self::InvalidSettings(_) => ErrorKind::Invalid,
            Self::TenantNotFound(_)
            | Self::DomainNotFound(_)
            | Self::DbServerNotFound(_)
            | Self::OperatorNotFound(_)
            | Self::JobNotFound { .. } => ErrorKind::NotFound,
            Self::SlugTaken(_)
            | Self::DomainTaken(_)
            | Self::ExistsOutsideCatalog(_)
            | Self::PrimaryDomain(_)
            | Self::DbServerExists(_)
            | Self::OperatorExists(_)
            | Self::DbServerInUse(_)
            | Self::JobState { .. }
            | Self::Moving(_) => ErrorKind::Conflict,
            Self::Unreachable { .. } | Self::Busy | Self::InstanceUnavailable(_) => {
                ErrorKind::Unavailable
            }
            Self::Database(e) if is_unavailable(e) => ErrorKind::Unavailable,
            Self::Incomplete(_)
            | Self::Unfinished { .. }
            | Self::CorruptCatalog(_)
            | Self::UnsafeRole(_)
            | Self::Migration(_)
            | Self::Io(_)
            | Self::MigrationFailed { .. }
            | Self::Database(_) => ErrorKind::Internal,
        }
    }

    /// The process exit code of [`Self::kind`].
    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
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

/// A driver error as a person reads it: the server's message, without the driver's
/// "at line N" (a line of the server's own source code).
fn database_message(error: &sqlx::Error) -> String {
    match error.as_database_error() {
        Some(db) => db.message().to_owned(),
        None => error.to_string(),
    }
}

/// Each setting's error, as one line.
fn settings_errors(errors: &std::collections::BTreeMap<String, String>) -> String {
    let each: Vec<String> = errors.iter().map(|(k, m)| format!("{k}: {m}")).collect();
    each.join("; ")
}

/// What only a PostgreSQL deployment does: the one list, each refused in a SQLite deployment
/// at its entry with [`PgOnly::refused`].
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "postgres"), expect(dead_code))]
pub(crate) enum PgOnly {
    /// A move between layouts: its lock, copy and switch are PostgreSQL's.
    Moving,
    /// Export and import read and write rows as PostgreSQL keeps them.
    Exporting,
    Importing,
    /// The template databases database-mode tenants are copied from.
    Templates,
    /// The registry of database servers, and placing a tenant on one.
    DbServers,
    Placement,
    /// An isolation mode SQLite has no layout for.
    #[cfg(feature = "sqlite")]
    Isolation(&'static str),
    /// The app's own work across tenants on the catalog's or a tenant's PostgreSQL pool.
    AppWork,
}

impl PgOnly {
    /// The refusal, naming the operation and the field it came through.
    pub(crate) fn refused(self) -> Error {
        let (field, what) = match self {
            Self::Moving => ("catalog", "moving a tenant".to_owned()),
            Self::Exporting => ("catalog", "exporting a tenant".to_owned()),
            Self::Importing => ("catalog", "importing a tenant".to_owned()),
            Self::Templates | Self::AppWork => ("catalog", "this operation".to_owned()),
            Self::DbServers => ("server", "a registry of servers".to_owned()),
            Self::Placement => ("server", "placing a tenant on a server".to_owned()),
            #[cfg(feature = "sqlite")]
            Self::Isolation(mode) => ("isolation", format!("{mode} isolation")),
        };
        Error::Invalid {
            field,
            message: format!(
                "{what} needs PostgreSQL, and this deployment keeps its catalog in SQLite; \
                 configure a PostgreSQL database URL to use it"
            ),
        }
    }
}

pub(crate) const UNIQUE_VIOLATION: &str = "23505";
#[cfg(feature = "postgres")]
pub(crate) const DUPLICATE_SCHEMA: &str = "42P06";
#[cfg(feature = "postgres")]
pub(crate) const FOREIGN_KEY_VIOLATION: &str = "23503";
#[cfg(feature = "postgres")]
pub(crate) const DUPLICATE_DATABASE: &str = "42P04";
#[cfg(feature = "postgres")]
pub(crate) const DUPLICATE_OBJECT: &str = "42710";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_statuses_follow_the_kind() {
        let cases = [
            (
                Error::Invalid {
                    field: "slug",
                    message: "bad".into(),
                },
                ErrorKind::Invalid,
                2,
                400,
            ),
            (
                Error::DbServerNotFound("x".into()),
                ErrorKind::NotFound,
                3,
                404,
            ),
            (Error::Moving("thor".into()), ErrorKind::Conflict, 4, 409),
            (Error::Busy, ErrorKind::Unavailable, 1, 503),
            (
                Error::Database(sqlx::Error::PoolTimedOut),
                ErrorKind::Unavailable,
                1,
                503,
            ),
            (
                Error::Database(sqlx::Error::RowNotFound),
                ErrorKind::Internal,
                1,
                500,
            ),
        ];
        for (error, kind, code, status) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.exit_code(), code, "{error}");
            assert_eq!(error.kind().status().as_u16(), status, "{error}");
        }
    }
}
