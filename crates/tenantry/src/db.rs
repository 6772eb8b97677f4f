//! [`Db`]: a tenant transaction on PostgreSQL or SQLite behind one query API, so handler
//! code is written once and runs on either backend.
//!
//! SQL uses `$1`, `$2`, ... placeholders, which both backends read, and the subset of SQL
//! both understand. Values bound and read must have a mapping on both backends ([`Value`],
//! [`Record`]); what has none (arrays, PostgreSQL-only types) goes through
//! [`Db::postgres`] or [`Db::sqlite`].

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgArguments, PgConnection, PgPool, Postgres};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqlitePool};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};

pub use crate::engine::{Bind, Record, Value};
use crate::pooler::Pooler;
use crate::safe_transaction::{self, SafeTransaction};

/// The database engine behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// A pool of either engine, which opens [`Db`] transactions.
#[derive(Clone)]
pub(crate) enum DbPool {
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
}

impl DbPool {
    /// The statement that opens a transaction of a connection already in its tenant's
    /// context. On SQLite it takes the write lock at once, so that concurrent writers wait
    /// for each other instead of failing when they upgrade.
    pub(crate) fn plain_begin(&self) -> &'static str {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "BEGIN",
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "BEGIN IMMEDIATE",
        }
    }

    /// Opens a transaction with `begin`, a statement tenantry built (never request input),
    /// as `pooler` needs it (SQLite has none).
    pub(crate) async fn begin(
        &self,
        begin: std::sync::Arc<str>,
        pooler: Pooler,
    ) -> Result<Db, sqlx::Error> {
        let sql = Some(AssertSqlSafe(pooler.begin_statement(begin)).into_sql_str());
        Ok(Db(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => Open::Postgres(safe_transaction::begin(pool, sql).await?),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => Open::Sqlite(safe_transaction::begin(pool, sql).await?),
        }))
    }

    /// The PostgreSQL pool, if it is one.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(&self) -> Option<&PgPool> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => Some(pool),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => None,
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => pool.close().await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => pool.close().await,
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }
}

pub(crate) enum Open {
    #[cfg(feature = "postgres")]
    Postgres(SafeTransaction<Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(SafeTransaction<Sqlite>),
}

/// An open transaction in a tenant's database. Run queries with [`Db::query`].
pub struct Db(pub(crate) Open);

impl Db {
    /// Starts a query; `sql` is a constant with `$N` placeholders for its bound values.
    pub fn query(&mut self, sql: &'static str) -> Query<'_> {
        Query(match &mut self.0 {
            #[cfg(feature = "postgres")]
            Open::Postgres(tx) => Bound::Postgres(tx, sqlx::query(sql)),
            #[cfg(feature = "sqlite")]
            Open::Sqlite(tx) => Bound::Sqlite(tx, sqlx::query(sql)),
        })
    }

    /// Runs `sql`, which may hold several statements and binds no values; returns how many
    /// rows it changed.
    pub async fn execute_script(&mut self, sql: impl SqlSafeStr) -> Result<u64, sqlx::Error> {
        let script = sqlx::raw_sql(sql);
        Ok(match &mut self.0 {
            #[cfg(feature = "postgres")]
            Open::Postgres(tx) => script.execute(&mut **tx).await?.rows_affected(),
            #[cfg(feature = "sqlite")]
            Open::Sqlite(tx) => script.execute(&mut **tx).await?.rows_affected(),
        })
    }

    /// The engine this transaction runs on.
    pub fn backend(&self) -> Backend {
        match self.0 {
            #[cfg(feature = "postgres")]
            Open::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Open::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The PostgreSQL connection, for SQL only PostgreSQL runs; `None` on SQLite.
    #[cfg(feature = "postgres")]
    pub fn postgres(&mut self) -> Option<&mut PgConnection> {
        match &mut self.0 {
            #[cfg(feature = "postgres")]
            Open::Postgres(tx) => Some(tx),
            #[cfg(feature = "sqlite")]
            Open::Sqlite(_) => None,
        }
    }

    /// The SQLite connection, for SQL only SQLite runs; `None` on PostgreSQL.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match &mut self.0 {
            #[cfg(feature = "sqlite")]
            Open::Sqlite(tx) => Some(tx),
            #[cfg(feature = "postgres")]
            Open::Postgres(_) => None,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self.0 {
            #[cfg(feature = "postgres")]
            Open::Postgres(tx) => tx.commit().await,
            #[cfg(feature = "sqlite")]
            Open::Sqlite(tx) => tx.commit().await,
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.0 {
            #[cfg(feature = "postgres")]
            Open::Postgres(tx) => tx.rollback().await,
            #[cfg(feature = "sqlite")]
            Open::Sqlite(tx) => tx.rollback().await,
        }
    }
}

enum Bound<'c> {
    #[cfg(feature = "postgres")]
    Postgres(
        &'c mut PgConnection,
        sqlx::query::Query<'static, Postgres, PgArguments>,
    ),
    #[cfg(feature = "sqlite")]
    Sqlite(
        &'c mut SqliteConnection,
        sqlx::query::Query<'static, Sqlite, SqliteArguments>,
    ),
}

/// Runs `$body` with `$conn` and `$query` bound to whichever backend the query is for.
macro_rules! on_backend {
    ($bound:expr, |$conn:ident, $query:ident| $body:expr) => {
        match $bound {
            #[cfg(feature = "postgres")]
            Bound::Postgres($conn, $query) => $body,
            #[cfg(feature = "sqlite")]
            Bound::Sqlite($conn, $query) => $body,
        }
    };
}

/// A query on a [`Db`], with its values bound in order.
#[must_use = "a query does nothing until it is executed or fetched"]
pub struct Query<'c>(Bound<'c>);

impl Query<'_> {
    /// Binds the next `$N` placeholder.
    pub fn bind<'t, T: Bind<'t>>(self, value: T) -> Self {
        Query(match self.0 {
            #[cfg(feature = "postgres")]
            Bound::Postgres(conn, query) => Bound::Postgres(conn, query.bind(value)),
            #[cfg(feature = "sqlite")]
            Bound::Sqlite(conn, query) => Bound::Sqlite(conn, query.bind(value)),
        })
    }

    /// Runs the statement; returns how many rows it changed.
    pub async fn execute(self) -> Result<u64, sqlx::Error> {
        on_backend!(self.0, |conn, query| Ok(query
            .execute(conn)
            .await?
            .rows_affected()))
    }

    /// Every row, as `T`.
    pub async fn fetch_all<T: Record>(self) -> Result<Vec<T>, sqlx::Error> {
        on_backend!(self.0, |conn, query| query
            .try_map(|row| T::from_row(&row))
            .fetch_all(conn)
            .await)
    }

    /// The one row there must be, as `T`.
    pub async fn fetch_one<T: Record>(self) -> Result<T, sqlx::Error> {
        on_backend!(self.0, |conn, query| query
            .try_map(|row| T::from_row(&row))
            .fetch_one(conn)
            .await)
    }

    /// The first row, if any, as `T`.
    pub async fn fetch_optional<T: Record>(self) -> Result<Option<T>, sqlx::Error> {
        on_backend!(self.0, |conn, query| query
            .try_map(|row| T::from_row(&row))
            .fetch_optional(conn)
            .await)
    }

    /// The first column of the one row there must be.
    pub async fn fetch_scalar<T: Value>(self) -> Result<T, sqlx::Error> {
        on_backend!(self.0, |conn, query| query
            .try_map(|row| row.try_get(0))
            .fetch_one(conn)
            .await)
    }

    /// The first column of the first row, if any.
    pub async fn fetch_optional_scalar<T: Value>(self) -> Result<Option<T>, sqlx::Error> {
        on_backend!(self.0, |conn, query| query
            .try_map(|row| row.try_get(0))
            .fetch_optional(conn)
            .await)
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.0 {
            #[cfg(feature = "postgres")]
            Bound::Postgres(..) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Bound::Sqlite(..) => Backend::Sqlite,
        };
        f.debug_struct("Query")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}
