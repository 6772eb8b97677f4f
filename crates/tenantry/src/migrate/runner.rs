//! The one migration runner, for both engines: the pending migrations of a set applied in
//! an open transaction and recorded in the target's ledger table, each engine's SQL behind
//! [`LedgerConnection`].

use std::time::Instant;

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use sqlx::migrate::{Migration, Migrator};
#[cfg(feature = "postgres")]
use sqlx::postgres::PgConnection;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqliteConnection;

#[cfg(feature = "postgres")]
use super::LOCK_NAMESPACE;
use super::{Applied, failed, millis, pending, up};
use crate::error::Error;
#[cfg(feature = "postgres")]
use crate::pooler;
#[cfg(feature = "postgres")]
use crate::slug::SchemaName;

/// Where one migration set is recorded. The SQL naming a ledger is the same for every tenant
/// (the table resolves through the transaction's `search_path`), so its statements are
/// prepared once per connection, not once per tenant.
pub(crate) struct Ledger {
    /// The ledger table, as SQL: unqualified for tenants.
    table: &'static str,
    /// Keys the advisory lock: the schema being migrated.
    #[cfg(feature = "postgres")]
    lock: String,
}

impl Ledger {
    /// Used with `search_path` `tenantry`.
    #[cfg(feature = "postgres")]
    pub(crate) fn catalog() -> Self {
        Self {
            table: "tenantry.catalog_migrations",
            lock: "tenantry".into(),
        }
    }

    /// Used with `search_path` `public`.
    #[cfg(feature = "postgres")]
    pub(crate) fn shared() -> Self {
        Self {
            table: "tenantry.shared_migrations",
            lock: "public".into(),
        }
    }

    /// Used inside a tenant transaction, whose `search_path` is the tenant's schema.
    #[cfg(feature = "postgres")]
    pub(crate) fn tenant(schema: &SchemaName) -> Self {
        Self {
            table: "tenantry_migrations",
            lock: schema.to_string(),
        }
    }

    /// A SQLite tenant's file, whose transaction began `IMMEDIATE` and so holds the write
    /// lock already.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_tenant() -> Self {
        Self {
            table: "tenantry_migrations",
            #[cfg(feature = "postgres")]
            lock: String::new(),
        }
    }
}

impl Ledger {
    /// The statement that creates the ledger table, with the engine's types for an integer,
    /// bytes, and the time a row is added.
    fn create_sql(&self, (integer, bytes, now): (&str, &str, &str)) -> AssertSqlSafe<String> {
        AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {} (
                version {integer} PRIMARY KEY,
                description TEXT NOT NULL,
                checksum {bytes} NOT NULL,
                applied_at {now},
                execution_ms {integer} NOT NULL
            )",
            self.table
        ))
    }

    fn recorded_sql(&self) -> AssertSqlSafe<String> {
        AssertSqlSafe(format!(
            "SELECT version, checksum FROM {} ORDER BY version",
            self.table
        ))
    }

    fn record_sql(&self) -> AssertSqlSafe<String> {
        AssertSqlSafe(format!(
            "INSERT INTO {} (version, description, checksum, execution_ms) VALUES ($1, $2, $3, $4)",
            self.table
        ))
    }
}

/// A connection in an open transaction that a migration set is applied on: its engine's SQL
/// for the ledger.
#[async_trait]
pub(crate) trait LedgerConnection: Send {
    /// Makes concurrent runs on the same target wait for each other until the transaction
    /// ends.
    async fn lock(&mut self, ledger: &Ledger) -> Result<(), Error>;
    /// Creates the ledger table if it is missing.
    async fn create(&mut self, ledger: &Ledger) -> Result<(), Error>;
    /// The versions and checksums recorded, oldest first.
    async fn recorded(&mut self, ledger: &Ledger) -> Result<Vec<(i64, Vec<u8>)>, Error>;
    /// Runs `m`'s SQL.
    async fn run(&mut self, m: &Migration) -> Result<(), Error>;
    /// Records that `m` ran, in `millis` milliseconds.
    async fn record(&mut self, ledger: &Ledger, m: &Migration, millis: i64) -> Result<(), Error>;
}

/// Applies the pending migrations of `migrator` on `conn`, in its open transaction, and
/// records them in `ledger`. Fails, changing nothing the transaction keeps, if a recorded
/// migration is missing from the set or was changed.
pub(crate) async fn apply_pending(
    conn: &mut impl LedgerConnection,
    ledger: &Ledger,
    migrator: &Migrator,
) -> Result<Applied, Error> {
    conn.lock(ledger).await?;
    conn.create(ledger).await?;
    let recorded = conn.recorded(ledger).await?;
    let from = recorded.last().map(|(v, _)| *v);
    let pending = pending(migrator, &recorded)?;
    for m in &pending {
        let started = Instant::now();
        conn.run(m).await?;
        conn.record(ledger, m, millis(started)).await?;
    }
    let to = up(migrator).map(|m| m.version).max().or(from);
    Ok(Applied {
        from,
        to,
        count: pending.len(),
    })
}

/// A [`LedgerConnection`] for `$conn`: its lock (`$lock`, given the connection and the
/// ledger), its ledger's column types, and its statements (`$query`, `$query_as`: unnamed on
/// PostgreSQL, for a transaction pooler). Migrations run as simple SQL on both.
macro_rules! ledger_connection {
    ($conn:ty, $types:expr, $query:path, $query_as:path, |$this:ident, $ledger:ident| $lock:expr) => {
        #[async_trait]
        impl LedgerConnection for $conn {
            async fn lock(&mut self, ledger: &Ledger) -> Result<(), Error> {
                let ($this, $ledger) = (self, ledger);
                $lock
            }

            async fn create(&mut self, ledger: &Ledger) -> Result<(), Error> {
                sqlx::raw_sql(ledger.create_sql($types))
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn recorded(&mut self, ledger: &Ledger) -> Result<Vec<(i64, Vec<u8>)>, Error> {
                Ok($query_as(ledger.recorded_sql())
                    .fetch_all(&mut *self)
                    .await?)
            }

            async fn run(&mut self, m: &Migration) -> Result<(), Error> {
                sqlx::raw_sql(AssertSqlSafe(m.sql.as_str()))
                    .execute(&mut *self)
                    .await
                    .map_err(|e| failed(m, e))?;
                Ok(())
            }

            async fn record(
                &mut self,
                ledger: &Ledger,
                m: &Migration,
                millis: i64,
            ) -> Result<(), Error> {
                $query(ledger.record_sql())
                    .bind(m.version)
                    .bind(&*m.description)
                    .bind(&*m.checksum)
                    .bind(millis)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }
        }
    };
}

#[cfg(feature = "postgres")]
ledger_connection! {
    PgConnection, ("bigint", "bytea", "timestamptz NOT NULL DEFAULT now()"),
    pooler::query, pooler::query_as, |conn, ledger| {
        let lock = pooler::query("SELECT pg_advisory_xact_lock($1, hashtext($2))");
        lock.bind(LOCK_NAMESPACE).bind(&ledger.lock).execute(&mut *conn).await?;
        Ok(())
    }
}

// The transaction began `IMMEDIATE`: it holds the file's write lock already.
#[cfg(feature = "sqlite")]
ledger_connection! {
    SqliteConnection, ("INTEGER", "BLOB", "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP"),
    sqlx::query, sqlx::query_as, |_conn, _ledger| Ok(())
}
