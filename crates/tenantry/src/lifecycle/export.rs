//! Exporting a tenant as a file and importing it, in any layout on PostgreSQL.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Executor};

use crate::catalog::TenantDetails;
use crate::error::{Error, PgOnly};
use crate::layout::{TxRoute, begin_in};
use crate::lifecycle::{NewTenant, TenantUpdate};
use crate::migrate::Migrations;
use crate::pools::Access;
use crate::rows::{self, TableRows};
use crate::safe_transaction;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::IsolationMode;

/// The `format` field of every export.
pub const EXPORT_FORMAT: &str = "tenantry-tenant-export";
/// The version of the export format this build writes; it reads this one and version 1,
/// which had no files.
pub const EXPORT_VERSION: u32 = 2;

/// A tenant as a file: its catalog entry and its rows. Rows carry their ids but not their
/// `tenant_id`, which an import sets to the new tenant's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantExport {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`] when written by this build.
    pub version: u32,
    /// The tenant's slug when exported.
    pub slug: Slug,
    /// Its display name.
    pub name: String,
    /// Its isolation when exported.
    pub isolation: IsolationMode,
    /// The settings it set (not the defaults).
    pub settings: serde_json::Value,
    /// Custom domains (the primary one follows the slug).
    pub domains: Vec<String>,
    /// The tenant migration set the rows fit: its newest version and fingerprint.
    pub migration_version: Option<i64>,
    /// The fingerprint of that migration set.
    pub migration_fingerprint: String,
    /// Each table's rows, every table after those it refers to.
    pub tables: Vec<TableRows>,
    /// Its files, if the deployment keeps tenants' files.
    #[serde(default)]
    pub files: Vec<ExportedFile>,
}

/// One of a tenant's files in an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedFile {
    /// Its name, relative to the tenant's files.
    pub name: String,
    /// The SHA-256 (hex) of its bytes, checked on import.
    pub sha256: String,
    /// Its bytes, in base64.
    pub data: String,
}

impl ExportedFile {
    /// Its bytes, if they match its checksum.
    fn bytes(&self) -> Result<Vec<u8>, Error> {
        let damaged = |why: &str| Error::Invalid {
            field: "export",
            message: format!("file '{}' {why}: the export is damaged", self.name),
        };
        let bytes = BASE64
            .decode(&self.data)
            .map_err(|_| damaged("is not base64"))?;
        match hex::encode(Sha256::digest(&bytes)) == self.sha256 {
            true => Ok(bytes),
            false => Err(damaged("does not match its checksum")),
        }
    }
}

impl Tenancy {
    /// The tenant as a [`TenantExport`], read in one consistent snapshot.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let database = tenantry::testing::TestDatabase::create().await;
    /// # let url = database.url();
    /// # use sqlx::migrate::Migrator;
    /// # use tenantry::{AppRole, HostName, Identification, Migrations, Tenancy};
    /// #
    /// # let pool = sqlx::PgPool::connect_with(tenantry::connect_options(&url)?).await?;
    /// # let migrations = Migrations::new(Migrator::DEFAULT, sqlx::migrate!("./tests/migrations/tenant"))?;
    /// # tenantry::migrate_shared(&pool, &migrations, &AppRole::default()).await?;
    /// # let identification = Identification::new(HostName::parse("app.localhost")?);
    /// # let tenancy = Tenancy::connect(pool, identification, migrations).await?;
    /// use tenantry::{IsolationMode, NewTenant, Slug};
    ///
    /// let thor = Slug::parse("thor")?;
    /// tenancy.create_tenant(NewTenant::new(thor.clone(), IsolationMode::Schema)).await?;
    /// let export = tenancy.export_tenant(&thor).await?;
    /// let copy = Slug::parse("thor-copy")?;
    /// let imported = tenancy.import_tenant(export, Some(copy), Some(IsolationMode::Shared)).await?;
    /// assert_eq!(imported.tenant.isolation, IsolationMode::Shared);
    /// # Ok(()) }
    /// ```
    pub async fn export_tenant(&self, slug: &Slug) -> Result<TenantExport, Error> {
        self.postgres_for(PgOnly::Exporting)?;
        let details = self.catalog().details(slug).await?;
        let tenant = &details.tenant;
        let TxRoute { pool, .. } = self.transaction(tenant, Access::Owner).await?;
        let mut tx = safe_transaction::begin(pool.pg()?, None).await?;
        tx.execute(AssertSqlSafe(format!(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET LOCAL search_path TO {}",
            tenant.placement.schema.quoted()
        )))
        .await?;
        let tables = rows::read(&mut tx, &tenant.placement.schema, tenant.id).await?;
        tx.rollback().await?;
        let mut files = Vec::new();
        if self.files().is_some() {
            let store = self.files_of(tenant.id)?;
            for file in store.list("").await? {
                let bytes = store.get(&file.name).await?.unwrap_or_default();
                files.push(ExportedFile {
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    data: BASE64.encode(&bytes),
                    name: file.name,
                });
            }
        }
        Ok(TenantExport {
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
            slug: tenant.slug.clone(),
            name: tenant.name.clone(),
            isolation: tenant.isolation,
            settings: tenant.settings.clone(),
            domains: details
                .domains
                .iter()
                .filter(|d| !d.is_primary)
                .map(|d| d.domain.clone())
                .collect(),
            migration_version: self.migrations().tenant_version(),
            migration_fingerprint: self.migrations().tenant_fingerprint().into(),
            tables,
            files,
        })
    }

    /// Creates a tenant from an export, as `slug` if given (custom domains are then left
    /// out: they belong to the original) and with `isolation` if given. All or nothing: if
    /// the rows cannot be written, the new tenant is deleted again.
    pub async fn import_tenant(
        &self,
        export: TenantExport,
        slug: Option<Slug>,
        isolation: Option<IsolationMode>,
    ) -> Result<TenantDetails, Error> {
        self.postgres_for(PgOnly::Importing)?;
        check_export(&export, self.migrations())?;
        let files = export
            .files
            .iter()
            .map(|file| {
                crate::files::check_name(&file.name)?;
                Ok((file.name.as_str(), file.bytes()?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if !files.is_empty() && self.files().is_none() {
            return Err(Error::Io(format!(
                "the export has {} file(s), and {}",
                files.len(),
                crate::files::NO_FILE_STORE
            )));
        }
        let renamed = slug.is_some();
        let slug = slug.unwrap_or(export.slug);
        let domains = match renamed {
            true => Vec::new(),
            false => export
                .domains
                .iter()
                .map(|d| crate::host::HostName::parse(d))
                .collect::<Result<_, _>>()
                .map_err(|e| Error::Invalid {
                    field: "domains",
                    message: e.to_string(),
                })?,
        };
        let created = self
            .create_tenant(NewTenant {
                name: Some(export.name),
                domains,
                ..NewTenant::new(slug.clone(), isolation.unwrap_or(export.isolation))
            })
            .await?;
        let filled = async {
            let tenant = &created.tenant;
            let TxRoute { pool, .. } = self.transaction(tenant, Access::Owner).await?;
            let mut tx = begin_in(pool.pg()?, &tenant.placement.schema).await?;
            rows::write(&mut tx, &tenant.placement.schema, tenant.id, &export.tables).await?;
            tx.commit().await?;
            if !files.is_empty() {
                let store = self.files_of(tenant.id)?;
                for (name, bytes) in &files {
                    store.put(name, bytes.clone()).await?;
                }
            }
            let update = TenantUpdate {
                settings: Some(export.settings),
                ..TenantUpdate::default()
            };
            self.update_tenant(&slug, update).await
        }
        .await;
        match filled {
            Ok(details) => Ok(details),
            Err(error) => {
                self.delete_tenant(&slug).await?;
                Err(error)
            }
        }
    }
}

fn check_export(export: &TenantExport, migrations: &Migrations) -> Result<(), Error> {
    let invalid = |message: String| Error::Invalid {
        field: "export",
        message,
    };
    if export.format != EXPORT_FORMAT {
        return Err(invalid(format!(
            "not a tenant export (format '{}', expected '{EXPORT_FORMAT}')",
            export.format
        )));
    }
    if !(1..=EXPORT_VERSION).contains(&export.version) {
        return Err(invalid(format!(
            "export format version {} is not supported (this build reads {EXPORT_VERSION})",
            export.version
        )));
    }
    if export.migration_fingerprint != migrations.tenant_fingerprint() {
        return Err(invalid(format!(
            "the rows fit tenant migration {:?} of another migration set; this deployment is at \
             {:?}: export and import between deployments at the same migrations",
            export.migration_version,
            migrations.tenant_version()
        )));
    }
    Ok(())
}
