//! Test support (feature `testing`): a throwaway PostgreSQL database per test.
//!
//! The server comes from `TENANTRY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). If it cannot be reached the test fails
//! with a message saying so: a test that needs PostgreSQL never passes without it.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};

/// The server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("TENANTRY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database with a random name, dropped (with any open connections) when this is dropped.
pub struct TestDatabase {
    name: String,
    server: PgConnectOptions,
}

impl TestDatabase {
    /// Creates the database.
    pub async fn create() -> Self {
        let url = server_url();
        let server = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|e| panic!("TENANTRY_TEST_DATABASE_URL '{url}' is invalid: {e}"));
        let name = format!("tenantry_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&server)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need PostgreSQL at {url} (set TENANTRY_TEST_DATABASE_URL); \
                 connecting failed: {e}"
                )
            });
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("CREATE DATABASE failed");
        Self { name, server }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for this database, with tenantry's empty `search_path`.
    pub fn options(&self) -> PgConnectOptions {
        self.server
            .clone()
            .database(&self.name)
            .options([("search_path", "")])
    }

    /// The database's URL (without tenantry's connection options).
    pub fn url(&self) -> String {
        let mut url = server_url();
        if let Some(slash) = url.rfind('/')
            && !url[..slash].ends_with('/')
        {
            url.truncate(slash);
        }
        format!("{url}/{}", self.name)
    }

    /// A pool of at most `size` connections on this database, ready for tenantry.
    pub async fn pool(&self, size: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(size)
            .connect_with(self.options())
            .await
            .expect("connecting to the test database failed")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = std::mem::take(&mut self.name);
        // Drop runs outside async context; a runtime of its own does the dropping.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect_with(&server).await?;
                conn.execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await
                .map(drop)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop a test database");
        }
    }
}
