//! SQLite deployments: the catalog in `<data>/catalog.sqlite3`, each tenant in a file of its
//! own, `<data>/tenants/<slug>.sqlite3`, copied from a template kept at the newest tenant
//! migration.
//!
//! Only database isolation exists here: schemas, row-level security and servers need
//! PostgreSQL. Files run in WAL mode with a busy timeout, and tenant transactions begin
//! `IMMEDIATE`, so concurrent writers wait for each other instead of failing.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};
use uuid::Uuid;

use crate::catalog_row::{Domain, TenantDetails, TenantRow, assemble, tenant_columns};
use crate::error::Error;
use crate::migrate::{Applied, failed, millis, pending, up};
use crate::safe_transaction;
use crate::slug::{DatabaseName, SchemaName, Slug};
use crate::tenant::{IsolationMode, Tenant};

static CATALOG: Migrator = sqlx::migrate!("./migrations/catalog-sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Selects tenants as `t`, with `$tail` appended.
macro_rules! select_tenants {
    ($tail:literal) => {
        concat!("SELECT ", tenant_columns!(), " FROM tenants t ", $tail)
    };
}

/// The error for asking a SQLite deployment for what only PostgreSQL offers.
pub(crate) fn needs_postgres(field: &'static str, what: &str) -> Error {
    Error::Invalid {
        field,
        message: format!(
            "{what} needs PostgreSQL, and this deployment keeps its catalog in SQLite; \
             configure a PostgreSQL database URL to use it"
        ),
    }
}

/// Options for a SQLite file tenantry uses: WAL, a busy timeout, foreign keys on.
fn file_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
}

fn io_error(what: &Path, error: std::io::Error) -> Error {
    Error::Incomplete(format!("{}: {error}", what.display()))
}

/// The data directory of a SQLite deployment and its catalog pool.
#[derive(Clone)]
pub(crate) struct SqliteHome {
    pub(crate) catalog: SqlitePool,
    data: Arc<Path>,
}

impl SqliteHome {
    /// Opens (creating if needed) the data directory and its catalog, and migrates the
    /// catalog: it belongs to this deployment alone, so there is no one to coordinate with.
    pub(crate) async fn open(data: &Path) -> Result<Self, Error> {
        for dir in [data.join("tenants"), data.join("templates")] {
            std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        }
        let catalog = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(file_options(&data.join("catalog.sqlite3")).create_if_missing(true))
            .await?;
        CATALOG
            .run(&catalog)
            .await
            .map_err(|e| Error::Migration(format!("the SQLite catalog: {e}")))?;
        Ok(Self {
            catalog,
            data: data.into(),
        })
    }

    /// Where a tenant's file is: `<data>/tenants/<stem>.sqlite3`.
    pub(crate) fn tenant_file(&self, database: &DatabaseName) -> PathBuf {
        self.data
            .join("tenants")
            .join(format!("{}.sqlite3", database.as_str()))
    }

    /// Options for a tenant's file, which must exist: a missing file is an error, never a
    /// new empty database.
    pub(crate) fn tenant_options(&self, database: &DatabaseName) -> SqliteConnectOptions {
        file_options(&self.tenant_file(database))
    }

    /// The tenant with this domain or slug.
    pub(crate) async fn by_domain(&self, domain: &str) -> Result<Option<Tenant>, Error> {
        let row: Option<TenantRow> = sqlx::query_as(select_tenants!(
            "JOIN domains d ON d.tenant_id = t.id WHERE d.domain = $1"
        ))
        .bind(domain)
        .fetch_optional(&self.catalog)
        .await?;
        row.map(tenant).transpose()
    }

    pub(crate) async fn by_id(&self, id: Uuid) -> Result<Option<Tenant>, Error> {
        let row: Option<TenantRow> = sqlx::query_as(select_tenants!("WHERE t.id = $1"))
            .bind(id)
            .fetch_optional(&self.catalog)
            .await?;
        row.map(tenant).transpose()
    }

    pub(crate) async fn by_slug(&self, slug: &str) -> Result<Option<Tenant>, Error> {
        let row: Option<TenantRow> = sqlx::query_as(select_tenants!("WHERE t.slug = $1"))
            .bind(slug)
            .fetch_optional(&self.catalog)
            .await?;
        row.map(tenant).transpose()
    }

    /// Every tenant with its domains, by slug.
    pub(crate) async fn list(&self) -> Result<Vec<TenantDetails>, Error> {
        let rows: Vec<TenantRow> = sqlx::query_as(select_tenants!("ORDER BY t.slug"))
            .fetch_all(&self.catalog)
            .await?;
        let domains = sqlx::query_as(
            "SELECT tenant_id, domain, is_primary FROM domains ORDER BY is_primary DESC, domain",
        )
        .fetch_all(&self.catalog)
        .await?;
        assemble(rows.into_iter().map(tenant), domains)
    }

    /// A tenant's domains, primary first.
    pub(crate) async fn domains(&self, id: Uuid) -> Result<Vec<Domain>, Error> {
        Ok(sqlx::query_as(
            "SELECT domain, is_primary FROM domains WHERE tenant_id = $1 \
             ORDER BY is_primary DESC, domain",
        )
        .bind(id)
        .fetch_all(&self.catalog)
        .await?)
    }

    /// Tenants whose migrations may be pending (all with `verify`), and how many are current.
    pub(crate) async fn to_migrate(
        &self,
        fingerprint: &str,
        verify: bool,
        slug: Option<&str>,
    ) -> Result<(Vec<Tenant>, i64), Error> {
        let rows: Vec<TenantRow> = sqlx::query_as(select_tenants!(
            "WHERE ($1 OR t.migration_fingerprint IS NOT $2) AND ($3 IS NULL OR t.slug = $3) \
             ORDER BY t.slug"
        ))
        .bind(verify)
        .bind(fingerprint)
        .bind(slug)
        .fetch_all(&self.catalog)
        .await?;
        let current = sqlx::query_scalar(
            "SELECT count(*) FROM tenants \
             WHERE migration_fingerprint = $1 AND NOT $2 AND ($3 IS NULL OR slug = $3)",
        )
        .bind(fingerprint)
        .bind(verify)
        .bind(slug)
        .fetch_one(&self.catalog)
        .await?;
        Ok((
            rows.into_iter().map(tenant).collect::<Result<_, _>>()?,
            current,
        ))
    }

    /// Records that `tenant` is at `applied.to` of the set with `fingerprint`.
    pub(crate) async fn record(
        &self,
        tenant: &Tenant,
        fingerprint: &str,
        applied: &Applied,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE tenants SET migration_version = $1, migration_fingerprint = $2, \
             migrated_at = CURRENT_TIMESTAMP WHERE id = $3",
        )
        .bind(applied.to)
        .bind(fingerprint)
        .bind(tenant.id)
        .execute(&self.catalog)
        .await?;
        Ok(())
    }

    /// Creates a tenant: its file, copied from the template, then its catalog rows. If the
    /// catalog refuses them, the file is removed again.
    pub(crate) async fn create(
        &self,
        slug: &Slug,
        name: &str,
        domains: &[(String, bool)],
        migrations: (&Migrator, &str),
    ) -> Result<(), Error> {
        if self.by_slug(slug.as_str()).await?.is_some() {
            return Err(Error::SlugTaken(slug.clone()));
        }
        let database = DatabaseName::sqlite_file(slug);
        let template = self.template(migrations).await?;
        let file = self.tenant_file(&database);
        copy_new(&template, &file)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => {
                    Error::ExistsOutsideCatalog(format!("tenants/{}.sqlite3", database.as_str()))
                }
                _ => io_error(&file, e),
            })?;
        let id = Uuid::new_v4();
        let inserted = async {
            let mut tx = safe_transaction::begin(&self.catalog, None).await?;
            sqlx::query(
                "INSERT INTO tenants (id, slug, name, schema_name, isolation, database_name, \
                 created_at, migration_version, migration_fingerprint) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id)
            .bind(slug.as_str())
            .bind(name)
            .bind(SchemaName::own_database().as_str())
            .bind(IsolationMode::Database.as_str())
            .bind(database.as_str())
            .bind(chrono::Utc::now())
            .bind(up(migrations.0).map(|m| m.version).max())
            .bind(migrations.1)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, slug, ""))?;
            for (domain, is_primary) in domains {
                insert_domain(&mut tx, id, slug, domain, *is_primary).await?;
            }
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        if let Err(error) = inserted.await {
            remove_files(&file).map_err(|e| io_error(&file, e))?;
            return Err(error);
        }
        Ok(())
    }

    /// Changes name, status and settings, and renames the slug with the tenant's file.
    /// `close` closes the tenant's pool before its file moves.
    pub(crate) async fn update(
        &self,
        tenant: &Tenant,
        new_slug: Option<(&Slug, &str)>,
        fields: (Option<String>, Option<&str>, Option<serde_json::Value>),
        close: impl AsyncFnOnce() -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut tx = safe_transaction::begin(&self.catalog, None).await?;
        let (name, status, settings) = fields;
        sqlx::query(
            "UPDATE tenants SET name = COALESCE($2, name), status = COALESCE($3, status), \
             settings = COALESCE($4, settings) WHERE id = $1",
        )
        .bind(tenant.id)
        .bind(name)
        .bind(status)
        .bind(settings)
        .execute(&mut *tx)
        .await?;
        let Some((slug, primary)) = new_slug else {
            tx.commit().await?;
            return Ok(());
        };
        let database = DatabaseName::sqlite_file(slug);
        sqlx::query("UPDATE tenants SET slug = $2, database_name = $3 WHERE id = $1")
            .bind(tenant.id)
            .bind(slug.as_str())
            .bind(database.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, slug, primary))?;
        sqlx::query("UPDATE domains SET domain = $2 WHERE tenant_id = $1 AND is_primary")
            .bind(tenant.id)
            .bind(primary)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, slug, primary))?;
        let Some(old) = &tenant.placement.database else {
            return Err(Error::CorruptCatalog(format!(
                "tenant {} has no file",
                tenant.id
            )));
        };
        let (from, to) = (self.tenant_file(old), self.tenant_file(&database));
        if to.exists() {
            return Err(Error::ExistsOutsideCatalog(format!(
                "tenants/{}.sqlite3",
                database.as_str()
            )));
        }
        close().await?;
        move_files(&from, &to).map_err(|e| io_error(&from, e))?;
        if let Err(error) = tx.commit().await {
            move_files(&to, &from).map_err(|e| io_error(&to, e))?;
            return Err(error.into());
        }
        Ok(())
    }

    /// Removes the tenant's catalog rows, then (after `close`) its file.
    pub(crate) async fn delete(
        &self,
        slug: &Slug,
        close: impl AsyncFnOnce(&Tenant) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let not_found = || Error::TenantNotFound(slug.to_string());
        let tenant = self.by_slug(slug.as_str()).await?.ok_or_else(not_found)?;
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(tenant.id)
            .execute(&self.catalog)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(not_found());
        }
        close(&tenant).await?;
        if let Some(database) = &tenant.placement.database {
            let file = self.tenant_file(database);
            remove_files(&file).map_err(|e| {
                Error::Incomplete(format!(
                    "tenant '{slug}' is deleted, but its file {} could not be removed ({e}); \
                     remove it by hand",
                    file.display()
                ))
            })?;
        }
        Ok(())
    }

    pub(crate) async fn add_domain(&self, tenant: &Tenant, domain: &str) -> Result<(), Error> {
        let mut conn = self.catalog.acquire().await?;
        insert_domain(&mut conn, tenant.id, &tenant.slug, domain, false).await
    }

    pub(crate) async fn remove_domain(&self, tenant: &Tenant, domain: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM domains WHERE domain = $1 AND tenant_id = $2 AND NOT is_primary")
            .bind(domain)
            .bind(tenant.id)
            .execute(&self.catalog)
            .await?;
        Ok(())
    }

    /// The template file at the newest migration of `migrations`, built if missing. Built
    /// under a temporary name and published by a rename; older templates are removed.
    async fn template(&self, (migrator, fingerprint): (&Migrator, &str)) -> Result<PathBuf, Error> {
        let dir = self.data.join("templates");
        let path = dir.join(format!("{}.sqlite3", &fingerprint[..16]));
        if path.exists() {
            return Ok(path);
        }
        let building = dir.join(format!(
            "{}.{}.building",
            &fingerprint[..16],
            Uuid::new_v4()
        ));
        let options = SqliteConnectOptions::new()
            .filename(&building)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Delete);
        let built = async {
            let mut conn = SqliteConnection::connect_with(&options).await?;
            let mut tx = conn.begin().await?;
            apply_pending(&mut tx, migrator).await?;
            tx.commit().await?;
            conn.close().await?;
            std::fs::rename(&building, &path).map_err(|e| io_error(&path, e))
        };
        if let Err(error) = built.await {
            remove_files(&building).map_err(|e| io_error(&building, e))?;
            return Err(error);
        }
        for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
            let old = entry.map_err(|e| io_error(&dir, e))?.path();
            if old != path && old.extension().is_some_and(|e| e == "sqlite3") {
                remove_files(&old).map_err(|e| io_error(&old, e))?;
            }
        }
        Ok(path)
    }
}

/// A catalog row as a tenant: a file stem for a database name, and transactions that take
/// the write lock at once.
fn tenant(row: TenantRow) -> Result<Tenant, Error> {
    let mut tenant = row.into_tenant(DatabaseName::sqlite_file_from_catalog)?;
    tenant.begin_sql = Arc::from("BEGIN IMMEDIATE");
    Ok(tenant)
}

async fn insert_domain(
    conn: &mut SqliteConnection,
    id: Uuid,
    slug: &Slug,
    domain: &str,
    is_primary: bool,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO domains (domain, tenant_id, is_primary) VALUES ($1, $2, $3)")
        .bind(domain)
        .bind(id)
        .bind(is_primary)
        .execute(&mut *conn)
        .await
        .map_err(|e| conflict(e, slug, domain))?;
    Ok(())
}

/// Turns a unique violation into the conflict it means: SQLite names the column, not the
/// constraint.
fn conflict(error: sqlx::Error, slug: &Slug, domain: &str) -> Error {
    let Some(db) = error
        .as_database_error()
        .filter(|e| e.is_unique_violation())
    else {
        return error.into();
    };
    if db.message().contains("domains.domain") {
        Error::DomainTaken(domain.to_owned())
    } else {
        Error::SlugTaken(slug.clone())
    }
}

/// Applies the pending migrations of `migrator` on `conn`, in an open transaction, with the
/// ledger in the same file.
pub(crate) async fn apply_pending(
    conn: &mut SqliteConnection,
    migrator: &Migrator,
) -> Result<Applied, Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS tenantry_migrations (
            version INTEGER PRIMARY KEY,
            description TEXT NOT NULL,
            checksum BLOB NOT NULL,
            applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
            execution_ms INTEGER NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await?;
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM tenantry_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    let from = applied.last().map(|(v, _)| *v);
    let pending = pending(migrator, &applied)?;
    for m in &pending {
        let started = Instant::now();
        sqlx::raw_sql(AssertSqlSafe(m.sql.as_str()))
            .execute(&mut *conn)
            .await
            .map_err(|e| failed(m, e))?;
        sqlx::query(
            "INSERT INTO tenantry_migrations (version, description, checksum, execution_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .bind(millis(started))
        .execute(&mut *conn)
        .await?;
    }
    let to = up(migrator).map(|m| m.version).max().or(from);
    Ok(Applied {
        from,
        to,
        count: pending.len(),
    })
}

/// Copies `from` to `to`, which must not exist yet.
async fn copy_new(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut source = tokio::fs::File::open(from).await?;
    let mut target = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .await?;
    let copied = async {
        tokio::io::copy(&mut source, &mut target).await?;
        target.sync_all().await
    };
    if let Err(error) = copied.await {
        remove_files(to)?;
        return Err(error);
    }
    Ok(())
}

/// A database file and its WAL companions.
fn companions(file: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [file.to_owned(), with("-wal"), with("-shm")]
}

/// Removes a database file and its WAL companions; missing ones are fine.
fn remove_files(file: &Path) -> std::io::Result<()> {
    for path in companions(file) {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Moves a database file and its WAL companions.
fn move_files(from: &Path, to: &Path) -> std::io::Result<()> {
    for (from, to) in companions(from).into_iter().zip(companions(to)) {
        match std::fs::rename(&from, &to) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
