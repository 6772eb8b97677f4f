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

mod catalog;
mod catalog_row;
pub mod cli;
mod db;
mod error;
mod extract;
mod host;
mod identify;
pub mod input;
mod layer;
mod lifecycle;
mod migrate;
mod moving;
pub mod platform_api;
mod pooler;
mod pools;
mod rejection;
mod role;
mod rollout;
mod rows;
mod safe_transaction;
mod scope;
mod server;
mod servers;
mod single_tenant;
mod slug;
mod sqlite;
mod template;
mod tenancy;
mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
mod transaction;

pub use catalog::TenantCatalog;
pub use catalog_row::{Domain, TenantDetails};
pub use db::{Backend, Db, Query, Record, Value};
pub use error::{Error, ErrorKind};
pub use extract::{MountPath, TenantDb};
pub use host::{HostError, HostName};
pub use identify::{Identification, PATH_PREFIX, Strategy};
pub use layer::{TenancyLayer, TenancyService};
pub use lifecycle::{NewTenant, TenantUpdate};
pub use migrate::{Applied, Migrations, migrate_shared};
#[cfg(feature = "testing")]
pub use moving::MoveFault;
pub use moving::{EXPORT_FORMAT, EXPORT_VERSION, MoveTarget, TenantExport};
pub use pooler::Pooler;
pub use pools::{Access, DatabaseBudget, PoolLease, Pools};
pub use rejection::TenancyRejection;
pub use role::{AppRole, prepare_roles};
pub use rollout::{
    MigrateOptions, MigrationReport, TenantMigration, TenantOutcome, migrate_tenants,
};
pub use rows::TableRows;
pub use server::{ServerLimits, serve};
pub use servers::{Server, ServerName, ServerUrl, Servers};
pub use single_tenant::{SingleTenantLayer, SingleTenantService};
pub use slug::{DatabaseName, SchemaName, Slug, SlugError};
pub use tenancy::{Tenancy, TenancyOptions, connect_options};
pub use tenant::{IsolationMode, Placement, Tenant, TenantStatus};
pub use transaction::TenantTransaction;
