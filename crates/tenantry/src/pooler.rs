//! Reaching PostgreSQL through a transaction-mode pooler such as PgBouncer, which hands each
//! transaction whatever server connection is free.
//!
//! Such a pooler breaks what a session holds: startup parameters (it refuses `options`),
//! named prepared statements (two clients on one backend both create `sqlx_s_1`), `LISTEN`
//! and session advisory locks. And a parameterized statement outside a transaction is two
//! round trips (parse, then bind and execute), which may reach two different backends. So:
//!
//! - the empty `search_path` is set on the roles ([`crate::prepare_roles`]) instead of at
//!   connect;
//! - tenantry's own statements are unnamed ([`query`], [`query_as`], [`query_scalar`]), and
//!   one that runs on its own runs in a transaction of its own ([`Pinned`]);
//! - tenant transactions start by dropping the backend's prepared statements, and sqlx keeps
//!   none across transactions, so an app's named statements live only in their transaction;
//! - the catalog is followed by polling a version row instead of `LISTEN`, and every lock
//!   tenantry takes ends with its transaction.

use std::str::FromStr;
use std::sync::Arc;

#[cfg(feature = "postgres")]
use {
    crate::safe_transaction,
    futures::future::BoxFuture,
    futures::stream::BoxStream,
    futures::{StreamExt, TryStreamExt},
    sqlx::postgres::{PgArguments, PgConnectOptions, PgQueryResult, PgRow, PgStatement},
    sqlx::query::{Query, QueryAs, QueryScalar},
    sqlx::{Either, Execute, Executor, FromRow, PgPool, Postgres, SqlSafeStr, SqlStr},
};

/// What stands between tenantry and PostgreSQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pooler {
    /// Nothing, or a pooler in session mode: a connection is one server session.
    #[default]
    None,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`): consecutive
    /// transactions of one connection may run on different server sessions.
    Transaction,
}

impl FromStr for Pooler {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "transaction" => Ok(Self::Transaction),
            other => Err(format!(
                "unknown pooler '{other}' (expected none or transaction)"
            )),
        }
    }
}

impl std::fmt::Display for Pooler {
    /// The name [`FromStr`] reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Transaction => "transaction",
        })
    }
}

impl Pooler {
    /// Connection options for `url` that leave SQL outside a tenant transaction with no
    /// tables to find: directly, an empty `search_path` in the startup packet; through a
    /// transaction pooler, nothing it would refuse or that sessions could clash on (the
    /// roles carry the empty `search_path`, see [`crate::prepare_roles`]).
    #[cfg(feature = "postgres")]
    pub fn connect_options(self, url: &str) -> Result<PgConnectOptions, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?;
        Ok(match self {
            Self::None => options.options([("search_path", "")]),
            Self::Transaction => options.statement_cache_capacity(0).extra_float_digits(None),
        })
    }

    /// `begin`, a statement tenantry built that opens a tenant transaction, followed by
    /// what this pooler needs at the start of every transaction.
    pub(crate) fn begin_statement(self, begin: Arc<str>) -> Arc<str> {
        match self {
            Self::None => begin,
            // The backend may hold named statements another client prepared and sqlx would
            // create again under the same names.
            Self::Transaction => Arc::from(format!("{begin}; DEALLOCATE ALL")),
        }
    }
}

/// A statement that is never named on the server, so it cannot clash with another client's
/// on a shared backend.
#[cfg(feature = "postgres")]
pub(crate) fn query(sql: impl SqlSafeStr) -> Query<'static, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}

/// [`query`], mapped to `O`.
#[cfg(feature = "postgres")]
pub(crate) fn query_as<O>(sql: impl SqlSafeStr) -> QueryAs<'static, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as(sql).persistent(false)
}

/// [`query`], its first column.
#[cfg(feature = "postgres")]
pub(crate) fn query_scalar<O>(
    sql: impl SqlSafeStr,
) -> QueryScalar<'static, Postgres, O, PgArguments>
where
    (O,): for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(false)
}

/// Runs each statement in a transaction of its own on the pool, so that its parse and its
/// execution reach the same server session through a transaction pooler. Statements are
/// never named.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pinned<'p>(pub &'p PgPool);

/// A statement sent unnamed whatever it asked for.
#[cfg(feature = "postgres")]
struct Unnamed<E>(E);

#[cfg(feature = "postgres")]
impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> SqlStr {
        self.0.sql()
    }

    fn statement(&self) -> Option<&PgStatement> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, sqlx::error::BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

#[cfg(feature = "postgres")]
impl<'p> Executor<'p> for Pinned<'p> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.0.clone();
        futures::stream::once(async move {
            let mut tx = safe_transaction::begin(&pool, None).await?;
            let results: Vec<_> = tx.fetch_many(Unnamed(query)).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(futures::stream::iter(results.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.0.clone();
        Box::pin(async move {
            let mut tx = safe_transaction::begin(&pool, None).await?;
            let row = tx.fetch_optional(Unnamed(query)).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [sqlx::postgres::PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        self.0.prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'p: 'e,
    {
        self.0.describe(sql)
    }
}
