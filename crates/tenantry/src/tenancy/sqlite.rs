//! Tenancy on SQLite: the catalog and every tenant in files under one data directory.

use super::{Opened, Tenancy, TenancyOptions};
use crate::catalog::TenantCatalog;
use crate::error::Error;
use crate::identify::Identification;
use crate::layout::Layouts;
use crate::migrate::Migrations;
use crate::pools::{DatabaseBudget, Pools};
use crate::tenant::IsolationMode;

impl Tenancy {
    /// Starts tenancy with no database server: the catalog in `<data>/catalog.sqlite3`
    /// (created and migrated if needed) and every tenant in its own SQLite file under
    /// `<data>/tenants`. Only database isolation exists there, so that is the default, and
    /// `migrations` needs its SQLite set ([`Migrations::with_sqlite`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sqlx::migrate::Migrator;
    /// use tenantry::{DatabaseBudget, HostName, Identification, IsolationMode, Migrations};
    /// use tenantry::{NewTenant, Slug, Tenancy};
    ///
    /// let data = tempfile::tempdir()?;
    /// let migrations = Migrations::new(Migrator::DEFAULT, Migrator::DEFAULT)?
    ///     .with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite"))?;
    /// let identification = Identification::new(HostName::parse("app.localhost")?);
    /// let budget = DatabaseBudget::default();
    /// let tenancy = Tenancy::open_sqlite(data.path(), identification, migrations, budget).await?;
    /// let thor = Slug::parse("thor")?;
    /// tenancy.create_tenant(NewTenant::new(thor, IsolationMode::Database)).await?;
    /// assert!(data.path().join("tenants/thor.sqlite3").exists());
    /// # Ok(()) }
    /// ```
    pub async fn open_sqlite(
        data: &std::path::Path,
        identification: Identification,
        migrations: Migrations,
        budget: DatabaseBudget,
    ) -> Result<Self, Error> {
        let options = TenancyOptions {
            budget,
            ..TenancyOptions::default()
        };
        Self::open_sqlite_with(data, identification, migrations, options).await
    }

    /// [`Tenancy::open_sqlite`] with options: the budget, the dedicated tenants' servers
    /// (each given its tenant's file) and, when it is `dedicated`, the default isolation
    /// (otherwise `database`). The role and pooler have no meaning there.
    pub async fn open_sqlite_with(
        data: &std::path::Path,
        identification: Identification,
        migrations: Migrations,
        options: TenancyOptions,
    ) -> Result<Self, Error> {
        migrations.sqlite_tenant()?;
        let layouts = Layouts::sqlite(data)?;
        let default_isolation = match options.default_isolation {
            None => IsolationMode::Database,
            Some(mode) => {
                layouts.of(mode)?;
                mode
            }
        };
        let catalog = TenantCatalog::open_sqlite(data).await?;
        let opened = Opened {
            catalog,
            pools: Pools::without_servers(options.budget),
            default_isolation,
            layouts,
        };
        Self::assemble(opened, identification, migrations, options)
    }
}
