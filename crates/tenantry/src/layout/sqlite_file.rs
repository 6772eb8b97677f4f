//! Database isolation on SQLite: each tenant in a file of its own,
//! `<data>/tenants/<slug>.sqlite3`, copied from a template file kept at the newest tenant
//! migration, renamed with its slug. Files run in WAL mode with a busy timeout, and tenant
//! transactions begin `IMMEDIATE`, so concurrent writers wait for each other instead of
//! failing with `SQLITE_BUSY`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, SqliteConnection};
use uuid::Uuid;

#[cfg(feature = "dedicated")]
use super::OwnServer;
use super::{Cx, Layout, Outside, Tables, TxRoute};
use crate::catalog::file_options;
use crate::db::DbPool;
use crate::db_server::DbServerName;
use crate::error::{Error, PgOnly};
use crate::migrate::{Applied, Ledger, apply_pending, up};
use crate::pools::Access;
use crate::slug::{DatabaseName, SchemaName, Slug};
use crate::tenant::{Placement, Tenant};
use crate::transaction::TenantTransaction;

fn io_error(what: &Path, error: std::io::Error) -> Error {
    Error::Incomplete(format!("{}: {error}", what.display()))
}

/// The tenant files of a SQLite deployment: `<data>/tenants` and `<data>/templates`.
#[derive(Clone)]
pub(crate) struct SqliteFiles {
    data: Arc<Path>,
    /// The statement that opens a tenant transaction: it takes the write lock at once.
    begin: Arc<str>,
}

impl SqliteFiles {
    /// Opens (creating if needed) the tenant folders under `data`.
    pub(crate) fn open(data: &Path) -> Result<Self, Error> {
        for dir in [data.join("tenants"), data.join("templates")] {
            std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        }
        Ok(Self {
            data: data.into(),
            begin: Arc::from("BEGIN IMMEDIATE"),
        })
    }

    /// Where a tenant's file is: `<data>/tenants/<stem>.sqlite3`.
    fn tenant_file(&self, database: &DatabaseName) -> PathBuf {
        self.data
            .join("tenants")
            .join(format!("{}.sqlite3", database.as_str()))
    }

    /// The template file at the newest migration of `migrations`, built if missing. Built
    /// under a temporary name and published by a rename; older templates are removed.
    async fn template(&self, migrator: &Migrator, fingerprint: &str) -> Result<PathBuf, Error> {
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
            apply_pending(&mut *tx, &Ledger::sqlite_tenant(), migrator).await?;
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

fn own_file(tenant: &Tenant) -> Result<&DatabaseName, Error> {
    tenant.placement.database.as_ref().ok_or_else(|| {
        Error::CorruptCatalog(format!(
            "tenant {} of a SQLite deployment has no file",
            tenant.id
        ))
    })
}

#[async_trait]
impl Layout for SqliteFiles {
    fn place(
        &self,
        slug: &Slug,
        _: Uuid,
        server: Option<&DbServerName>,
        _fresh: bool,
    ) -> Result<Placement, Error> {
        if server.is_some() {
            return Err(PgOnly::Placement.refused());
        }
        Ok(Placement {
            server: None,
            server_url: None,
            database: Some(DatabaseName::sqlite_file(slug)),
            schema: SchemaName::own_database(),
        })
    }

    fn tables(&self, _: &Placement) -> Tables<'_> {
        Tables::Outside(self)
    }

    fn describe(&self, tenant: &Tenant) -> String {
        match &tenant.placement.database {
            Some(database) => format!("file {}", self.tenant_file(database).display()),
            None => "no file (the catalog lacks its name)".into(),
        }
    }

    /// The file's bytes, with its write-ahead log's.
    async fn size(&self, _: Cx<'_>, tenant: &Tenant) -> Result<Option<i64>, Error> {
        let file = self.tenant_file(own_file(tenant)?);
        let mut wal = file.clone().into_os_string();
        wal.push("-wal");
        let bytes = [file.into_os_string(), wal]
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum::<u64>();
        Ok(Some(i64::try_from(bytes).unwrap_or(i64::MAX)))
    }

    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error> {
        let (migrator, fingerprint) = cx.migrations.sqlite_tenant()?;
        let TxRoute { pool, begin } = self.transaction(cx, tenant, Access::Owner).await?;
        let mut tx = TenantTransaction::begin_with(&pool, Arc::new(tenant.clone()), begin).await?;
        let conn = tx
            .sqlite()
            .ok_or_else(|| Error::Migration("not a SQLite tenant".into()))?;
        let applied = apply_pending(conn, &Ledger::sqlite_tenant(), migrator).await?;
        if !keep {
            tx.rollback().await?;
            return Ok(applied);
        }
        tx.commit().await?;
        let mut catalog = cx.catalog.begin().await?;
        catalog.record(tenant, fingerprint, &applied).await?;
        catalog.commit().await?;
        Ok(applied)
    }

    async fn transaction(&self, cx: Cx<'_>, tenant: &Tenant, _: Access) -> Result<TxRoute, Error> {
        let database = own_file(tenant)?;
        let budget = cx.pools.budget();
        let pool = cx
            .pools
            .database_pool(&tenant.placement, Access::Owner, || {
                Ok(DbPool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(budget.per_tenant)
                        .acquire_timeout(budget.wait)
                        .connect_lazy_with(file_options(&self.tenant_file(database))),
                ))
            })
            .await?;
        Ok(TxRoute {
            pool,
            begin: self.begin.clone(),
        })
    }
}

#[async_trait]
impl Outside for SqliteFiles {
    async fn provision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Applied, Error> {
        let (migrator, fingerprint) = cx.migrations.sqlite_tenant()?;
        let database = own_file(tenant)?;
        let template = self.template(migrator, fingerprint).await?;
        let file = self.tenant_file(database);
        copy_new(&template, &file)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => {
                    Error::ExistsOutsideCatalog(format!("tenants/{}.sqlite3", database.as_str()))
                }
                _ => io_error(&file, e),
            })?;
        let to = up(migrator).map(|m| m.version).max();
        Ok(Applied {
            from: None,
            to,
            count: up(migrator).count(),
        })
    }

    async fn rename(&self, cx: Cx<'_>, tenant: &Tenant, to: &Slug) -> Result<Placement, Error> {
        let renamed = self.place(to, tenant.id, None, false)?;
        let (from, to) = (
            self.tenant_file(own_file(tenant)?),
            self.tenant_file(own_file_of(&renamed)?),
        );
        if to.exists() {
            return Err(Error::ExistsOutsideCatalog(format!(
                "tenants/{}",
                to.file_name().unwrap_or_default().to_string_lossy()
            )));
        }
        cx.pools.close_database(&tenant.placement).await?;
        move_files(&from, &to).map_err(|e| io_error(&from, e))?;
        Ok(renamed)
    }

    async fn deprovision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        cx.pools.close_database(&tenant.placement).await?;
        let file = self.tenant_file(own_file(tenant)?);
        remove_files(&file).map_err(|e| io_error(&file, e))
    }
}

/// SQLite has no roles: a server of the tenant's own is given its file's path and nothing
/// else, so the process boundary and that one path keep it to its data.
#[cfg(feature = "dedicated")]
#[async_trait]
impl OwnServer for SqliteFiles {
    async fn server_url(&self, _: Cx<'_>, tenant: &Tenant) -> Result<String, Error> {
        let file = self.tenant_file(own_file(tenant)?);
        let file = std::path::absolute(&file)
            .map_err(|e| Error::Io(format!("{}: {e}", file.display())))?;
        Ok(format!("sqlite://{}", file.display()))
    }
}

fn own_file_of(placement: &Placement) -> Result<&DatabaseName, Error> {
    placement
        .database
        .as_ref()
        .ok_or_else(|| Error::CorruptCatalog("a SQLite placement without a file".into()))
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
