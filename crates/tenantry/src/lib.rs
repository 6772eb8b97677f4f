#![warn(missing_docs)]
//! Multi-tenancy for axum + sqlx services.
//!
//! A [`Tenancy`] keeps a catalog of tenants, tells from each request which tenant it is for
//! ([`Strategy`]: domain, subdomain, path prefix or header), and serves it inside a
//! transaction in that tenant's context. Handlers stay single-tenant code: they take a
//! [`TenantDb`] and run their queries on it, the same SQL on PostgreSQL and SQLite
//! ([`Tenancy::open_sqlite`] runs with no database server at all).
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use sqlx::migrate::Migrator;
//! use tenantry::{HostName, Identification, Migrations, Tenancy, TenancyLayer, TenantDb};
//! use tower::Layer;
//!
//! async fn count_notes(mut db: TenantDb) -> Result<String, tenantry::TenancyRejection> {
//!     let n: i64 = db.query("SELECT count(*) FROM notes").fetch_scalar().await?;
//!     Ok(n.to_string())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let options = tenantry::connect_options("postgres://localhost/app")?;
//! let pool = sqlx::PgPool::connect_with(options).await?;
//! let migrations = Migrations::new(Migrator::DEFAULT, sqlx::migrate!("./tests/migrations/tenant"))?;
//! tenantry::migrate_shared(&pool, &migrations, &tenantry::AppRole::default()).await?;
//! let identification = Identification::new(HostName::parse("app.localhost")?);
//! let tenancy = Tenancy::connect(pool, identification, migrations).await?;
//!
//! let routes = Router::new().route("/notes/count", get(count_notes));
//! let app = Router::new().fallback_service(TenancyLayer::new(tenancy).layer(routes));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `postgres` (default): the catalog and tenants on PostgreSQL, in shared, schema and
//!   database isolation ([`Tenancy::connect`]), with moves, export and import, templates and
//!   a registry of database servers.
//! - `sqlite` (default): the catalog and a file per tenant ([`Tenancy::open_sqlite`]). At
//!   least one engine is needed; with both, handler code runs unchanged on either.
//! - `dedicated` (default): dedicated isolation, each tenant on an app server of its own:
//!   the supervisor that runs them, what it publishes in the catalog, and forwarding.
//! - `web` (default): login sessions with CSRF tokens, cookies scoped to a tenant's mount,
//!   login throttling and logos, for tenants' pages.
//! - `deploy` (default): files for nginx, Docker Compose and Kubernetes from the catalog;
//!   turns on `postgres` and `dedicated`.
//! - `cli` (default): clap commands an app mounts (`migrate`, `tenants`, `servers`, `sql`,
//!   `deploy`); turns on `deploy`.
//! - `testing`: fixtures for an app's own tests: a database per test that drops everything
//!   its catalog made, a second PostgreSQL server, PgBouncer and nginx; turns on `postgres`
//!   and `dedicated`.

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!("tenantry needs a database engine: enable its `postgres` or `sqlite` feature");

pub mod cache;
pub mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
pub mod db;
pub mod db_server;
#[cfg(feature = "postgres")]
pub mod db_servers;
/// Dedicated tenants' servers: how they are run and what runs.
pub mod dedicated;
#[cfg(feature = "deploy")]
pub mod deploy;
pub mod dns;
mod engine;
mod error;
pub mod files;
pub mod host;
pub mod http;
pub mod identify;
pub mod jobs;
mod layout;
pub mod lifecycle;
pub mod migrate;
mod pooler;
mod pools;
mod profile;
pub mod role;
#[cfg(feature = "postgres")]
mod rows;
mod safe_transaction;
pub mod secret;
pub mod settings;
#[cfg(feature = "web")]
pub mod signup;
pub mod slug;
mod tenancy;
pub mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
mod transaction;
#[cfg(feature = "web")]
pub mod web;

pub use db::Db;
pub use error::{Error, ErrorKind};
pub use host::HostName;
pub use http::{ServerLimits, TenancyLayer, TenancyRejection, TenantDb, serve};
pub use identify::{Identification, Strategy};
pub use lifecycle::{NewTenant, TenantUpdate};
pub use migrate::Migrations;
#[cfg(feature = "postgres")]
pub use migrate::migrate_shared;
pub use pooler::Pooler;
pub use pools::DatabaseBudget;
pub use role::AppRole;
pub use slug::Slug;
#[cfg(feature = "postgres")]
pub use tenancy::connect_options;
pub use tenancy::{Tenancy, TenancyOptions};
pub use tenant::{IsolationMode, Tenant, TenantStatus};
pub use transaction::TenantTransaction;
