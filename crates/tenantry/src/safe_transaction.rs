//! [`SafeTransaction`]: a transaction whose connection never goes back to its pool in an
//! unknown state.
//!
//! sqlx counts a transaction only once the reply to its `BEGIN` has been read, so a future
//! dropped while that reply is in flight (a client that hung up, a timeout) returns the
//! connection to the pool inside a transaction nobody will end: the next borrower's `BEGIN`
//! merges into it. Here every step that changes the transaction state marks the state unknown
//! until its reply is read; a transaction dropped in that state closes its connection
//! instead of returning it. Dropped in a known open state, it queues a `ROLLBACK`, which the
//! pool flushes before the connection is reused, as sqlx's own guard does.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, SqlStr};
use sqlx_core::transaction::TransactionManager;

/// An open transaction on a pooled connection; dropped without [`commit`](Self::commit), it
/// rolls back. Derefs to the connection.
pub(crate) struct SafeTransaction<DB: Database> {
    conn: PoolConnection<DB>,
    /// Whether the server's transaction state is the one sqlx counts: false while a
    /// `BEGIN`, `COMMIT` or `ROLLBACK` is in flight or after one failed.
    known: bool,
}

/// Begins a transaction on a connection from `pool`, with `BEGIN` or `statement`.
pub(crate) async fn begin<DB: Database>(
    pool: &Pool<DB>,
    statement: Option<SqlStr>,
) -> Result<SafeTransaction<DB>, sqlx::Error> {
    let mut tx = SafeTransaction {
        conn: pool.acquire().await?,
        known: false,
    };
    DB::TransactionManager::begin(&mut tx.conn, statement).await?;
    tx.known = true;
    Ok(tx)
}

impl<DB: Database> SafeTransaction<DB> {
    /// Commits the transaction.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.known = false;
        DB::TransactionManager::commit(&mut self.conn).await?;
        self.known = true;
        Ok(())
    }

    /// Rolls the transaction back.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.known = false;
        DB::TransactionManager::rollback(&mut self.conn).await?;
        self.known = true;
        Ok(())
    }
}

impl<DB: Database> Drop for SafeTransaction<DB> {
    fn drop(&mut self) {
        if !self.known {
            self.conn.close_on_drop();
        } else if DB::TransactionManager::get_transaction_depth(&self.conn) > 0 {
            DB::TransactionManager::start_rollback(&mut self.conn);
        }
    }
}

impl<DB: Database> Deref for SafeTransaction<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database> DerefMut for SafeTransaction<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}
