//! Rolling the tenant migrations out: every tenant whose migrations may be pending, a few at a
//! time, each in a transaction of its own, and a report of what each one did.

use futures::StreamExt;

use crate::error::Error;
use crate::migrate::Applied;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::IsolationMode;

/// Which tenants a run covers, and how.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// How many tenants migrate at once.
    pub jobs: usize,
    /// Only this tenant.
    pub tenant: Option<Slug>,
    /// Visit every tenant schema, checking its ledger against the source, instead of trusting
    /// the catalog's record of which tenants are current.
    pub verify: bool,
    /// Apply nothing: run each tenant's pending migrations in a transaction that is rolled
    /// back, to report what is pending and whether it would apply.
    pub check: bool,
    /// Leave dedicated tenants out (an upgrade in waves takes them).
    pub skip_dedicated: bool,
}

impl Default for MigrateOptions {
    /// Every tenant the catalog does not show as current, four at a time.
    fn default() -> Self {
        Self {
            jobs: 4,
            tenant: None,
            verify: false,
            check: false,
            skip_dedicated: false,
        }
    }
}

/// What a run did to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantOutcome {
    /// Migrations ran.
    Applied(Applied),
    /// Nothing was pending.
    UpToDate,
    /// The tenant's transaction rolled back; it is where it was before the run.
    Failed(String),
}

/// One tenant's line in a [`MigrationReport`].
#[derive(Debug, Clone)]
pub struct TenantMigration {
    /// The tenant.
    pub slug: Slug,
    /// What happened to it.
    pub outcome: TenantOutcome,
}

/// The result of a tenant migration run.
#[derive(Debug, Clone, Default)]
pub struct MigrationReport {
    /// Tenants that were visited, in the order they finished.
    pub visited: Vec<TenantMigration>,
    /// Tenants the catalog showed to be current, so not visited.
    pub skipped_current: u64,
}

impl MigrationReport {
    /// Tenants where migrations ran.
    pub fn applied(&self) -> usize {
        self.count(|o| matches!(o, TenantOutcome::Applied(a) if a.count > 0))
    }

    /// Tenants with nothing pending, visited or not.
    pub fn up_to_date(&self) -> u64 {
        self.skipped_current
            + self.count(|o| {
                matches!(o, TenantOutcome::UpToDate)
                    || matches!(o, TenantOutcome::Applied(a) if a.count == 0)
            }) as u64
    }

    /// Tenants whose migration failed.
    pub fn failures(&self) -> impl Iterator<Item = (&Slug, &str)> {
        self.visited.iter().filter_map(|t| match &t.outcome {
            TenantOutcome::Failed(error) => Some((&t.slug, error.as_str())),
            _ => None,
        })
    }

    fn count(&self, pred: impl Fn(&TenantOutcome) -> bool) -> usize {
        self.visited.iter().filter(|t| pred(&t.outcome)).count()
    }
}

impl Tenancy {
    /// The tenants whose migrations may be pending (the catalog does not record them as
    /// current with this build's set), by slug, and how many are current. Shared-mode
    /// tenants count as current: they migrate with the shared tables.
    pub async fn tenants_to_migrate(&self) -> Result<(Vec<crate::tenant::Tenant>, i64), Error> {
        let (mut tenants, current) = self
            .catalog()
            .to_migrate(self.migrations(), false, None)
            .await?;
        tenants.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok((tenants, current))
    }

    /// Migrates tenants, `options.jobs` at a time, each as its layout does it. One tenant's
    /// failure does not stop the others. `started` is told how many tenants will be visited,
    /// `progress` each one's outcome.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let data = tempfile::tempdir()?;
    /// # let migrations = tenantry::Migrations::new(sqlx::migrate::Migrator::DEFAULT, sqlx::migrate::Migrator::DEFAULT)?
    /// #     .with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite"))?;
    /// # let identification = tenantry::Identification::new(tenantry::HostName::parse("app.localhost")?);
    /// # let tenancy = tenantry::Tenancy::open_sqlite(data.path(), identification, migrations, Default::default()).await?;
    /// use tenantry::lifecycle::MigrateOptions;
    ///
    /// let report = tenancy.migrate_tenants(&MigrateOptions::default(), |_| {}, |_| {}).await?;
    /// assert_eq!(report.failures().count(), 0);
    /// # Ok(()) }
    /// ```
    pub async fn migrate_tenants(
        &self,
        options: &MigrateOptions,
        started: impl FnOnce(usize),
        progress: impl Fn(&TenantMigration),
    ) -> Result<MigrationReport, Error> {
        let slug = options.tenant.as_ref().map(Slug::as_str);
        let (mut tenants, skipped_current) = self
            .catalog()
            .to_migrate(self.migrations(), options.verify || options.check, slug)
            .await?;
        if options.skip_dedicated {
            tenants.retain(|tenant| tenant.isolation != IsolationMode::Dedicated);
        }
        if let Some(slug) = &options.tenant
            && tenants.is_empty()
            && skipped_current == 0
        {
            return Err(Error::TenantNotFound(slug.to_string()));
        }
        started(tenants.len());
        let mut visited = Vec::with_capacity(tenants.len());
        let mut runs = futures::stream::iter(tenants)
            .map(|tenant| async move {
                let migrated = async {
                    self.layout(&tenant)?
                        .migrate(self.cx(), &tenant, !options.check)
                        .await
                };
                let outcome = match migrated.await {
                    Ok(applied) if applied.count == 0 => TenantOutcome::UpToDate,
                    Ok(applied) => TenantOutcome::Applied(applied),
                    Err(error) => TenantOutcome::Failed(error.to_string()),
                };
                TenantMigration {
                    slug: tenant.slug,
                    outcome,
                }
            })
            .buffer_unordered(options.jobs.max(1));
        while let Some(result) = runs.next().await {
            progress(&result);
            visited.push(result);
        }
        Ok(MigrationReport {
            visited,
            skipped_current: u64::try_from(skipped_current).unwrap_or_default(),
        })
    }
}
