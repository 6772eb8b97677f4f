//! Moving a tenant to another placement (shared, schema or database isolation, on any server),
//! and exporting and importing a tenant as a file.
//!
//! A move, in order:
//! 1. opens a transaction on the source and takes a per-tenant advisory lock in it, so only
//!    one move of a tenant runs (the lock ends with the transaction, so it holds through a
//!    transaction pooler), and marks the tenant `moving`: its requests are read-only and
//!    writes get 503 with `Retry-After`;
//! 2. locks the source tables against writes (waiting for writes already under way) and reads
//!    the tenant's rows;
//! 3. builds the target and writes the rows there with their ids, then checks each table's
//!    count;
//! 4. switches the catalog row to the target in one transaction (which, when the target is in
//!    the catalog's database, is the very transaction that wrote it);
//! 5. only then removes the old data.
//!
//! A failure before the switch drops whatever of the target was made and clears the mark:
//! the tenant is where it was, with its data unchanged.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Executor, PgConnection, PgPool};

use crate::catalog_row::TenantDetails;
use crate::error::Error;
use crate::lifecycle::{NewTenant, TenantUpdate};
use crate::migrate::{Migrations, shared_schema_state};
use crate::pooler;
use crate::pools::{Access, PoolLease};
use crate::rows::{self, TableRows};
use crate::safe_transaction::{self, SafeTransaction};
use crate::servers::ServerName;
use crate::slug::{DatabaseName, SchemaName, Slug};
use crate::sqlite::needs_postgres;
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, Placement, Tenant};

/// The `format` field of every export.
pub const EXPORT_FORMAT: &str = "tenantry-tenant-export";
/// The version of the export format this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// A tenant as a file: its catalog entry and its rows. Rows carry their ids but not their
/// `tenant_id`, which an import sets to the new tenant's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantExport {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`] when written by this build.
    pub version: u32,
    pub slug: Slug,
    pub name: String,
    pub isolation: IsolationMode,
    pub settings: serde_json::Value,
    /// Custom domains (the primary one follows the slug).
    pub domains: Vec<String>,
    /// The tenant migration set the rows fit: its newest version and fingerprint.
    pub migration_version: Option<i64>,
    pub migration_fingerprint: String,
    /// Each table's rows, every table after those it refers to.
    pub tables: Vec<TableRows>,
}

/// Where a tenant is to be moved.
#[derive(Debug, Clone)]
pub struct MoveTarget {
    pub isolation: IsolationMode,
    /// A registered server for schema and database isolation; the catalog's own when absent.
    pub server: Option<ServerName>,
}

/// A failure a test injects into a move (see `Tenancy::move_tenant_failing`, feature
/// `testing`). Without that feature nothing can name it, and no move is ever failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub enum MoveFault {
    /// After the rows are written to the target, before the switch.
    AfterCopy,
    /// After the catalog row is updated, before its transaction commits.
    AtSwitch,
}

fn inject(fault: Option<MoveFault>, at: MoveFault) -> Result<(), Error> {
    match fault {
        Some(f) if f == at => Err(Error::Incomplete(format!("injected failure: {at:?}"))),
        _ => Ok(()),
    }
}

/// Opens a transaction on `pool` whose `search_path` is `schema`.
async fn begin_in(
    pool: &PgPool,
    schema: &SchemaName,
) -> Result<SafeTransaction<sqlx::Postgres>, Error> {
    let mut tx = safe_transaction::begin(pool, None).await?;
    tx.execute(AssertSqlSafe(format!(
        "SET LOCAL search_path TO {}",
        schema.quoted()
    )))
    .await?;
    Ok(tx)
}

impl Tenancy {
    /// Moves the tenant to `to`; see the module documentation for the steps and guarantees.
    pub async fn move_tenant(&self, slug: &Slug, to: MoveTarget) -> Result<TenantDetails, Error> {
        self.move_with(slug, to, None).await
    }

    /// [`Tenancy::move_tenant`] with a failure injected at `fault`.
    #[cfg(feature = "testing")]
    pub async fn move_tenant_failing(
        &self,
        slug: &Slug,
        to: MoveTarget,
        fault: MoveFault,
    ) -> Result<TenantDetails, Error> {
        self.move_with(slug, to, Some(fault)).await
    }

    async fn move_with(
        &self,
        slug: &Slug,
        to: MoveTarget,
        fault: Option<MoveFault>,
    ) -> Result<TenantDetails, Error> {
        if self.catalog().sqlite().is_some() {
            return Err(needs_postgres("isolation", "moving a tenant"));
        }
        let tenant = self.catalog().details(slug).await?.tenant;
        check_target(&tenant, &to, self.migrations())?;
        // The move reads the source in one transaction held open until it ends; the lock is
        // taken in it, so it ends with it (through a transaction pooler too, and with the
        // connection if this process dies) and needs no server session of its own.
        let source_lease = self.owner_lease(&tenant.placement).await?;
        let mut source = begin_in(source_lease.pg()?, &tenant.placement.schema).await?;
        let locked: bool =
            pooler::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext($2))")
                .bind(MOVE_LOCK)
                .bind(tenant.id.to_string())
                .fetch_one(&mut *source)
                .await?;
        if !locked {
            return Err(Error::Moving(slug.to_string()));
        }
        let moved = async {
            self.mark_moving(&tenant, true).await?;
            let switched = self.copy_and_switch(&tenant, &to, fault, &mut source).await;
            if switched.is_err() {
                self.mark_moving(&tenant, false).await?;
            }
            switched
        }
        .await;
        source.rollback().await?;
        let old = moved?;
        self.catalog().invalidate();
        self.remove_old(&tenant, &old).await?;
        self.catalog().details(slug).await
    }

    async fn mark_moving(&self, tenant: &Tenant, moving: bool) -> Result<(), Error> {
        pooler::query("UPDATE tenantry.tenants SET moving = $2 WHERE id = $1")
            .bind(tenant.id)
            .bind(moving)
            .execute(pooler::Pinned(self.postgres()?))
            .await?;
        self.catalog().invalidate();
        Ok(())
    }

    /// Steps 2 to 4: returns the old placement once the catalog points at the new one.
    /// `source` is a transaction in the tenant's current schema.
    async fn copy_and_switch(
        &self,
        tenant: &Tenant,
        to: &MoveTarget,
        fault: Option<MoveFault>,
        source: &mut PgConnection,
    ) -> Result<Placement, Error> {
        rows::hold_writes(source, &tenant.placement.schema).await?;
        let data = rows::read(source, &tenant.placement.schema, tenant.id).await?;
        let target = Placement {
            server: to.server.clone(),
            server_url: None,
            // A name of this move's own: another registered server may be this very cluster,
            // where the tenant's current name is its live database.
            database: match to.isolation {
                IsolationMode::Database => Some(DatabaseName::for_move(&tenant.slug, tenant.id)),
                _ => None,
            },
            schema: match to.isolation {
                IsolationMode::Shared => SchemaName::shared(),
                IsolationMode::Database => SchemaName::own_database(),
                _ => tenant.slug.schema_name(),
            },
        };
        let moved = Tenant {
            isolation: to.isolation,
            placement: target.clone(),
            ..tenant.clone()
        };
        let catalog = self.postgres()?;
        if target.in_catalog_database() {
            // Target and catalog in one database: one transaction writes and switches.
            let mut tx = begin_in(catalog, &target.schema).await?;
            self.prepare_target(&mut tx, &moved).await?;
            rows::write(&mut tx, &target.schema, tenant.id, &data).await?;
            inject(fault, MoveFault::AfterCopy)?;
            switch(&mut tx, &moved, self.migrations()).await?;
            inject(fault, MoveFault::AtSwitch)?;
            tx.commit().await?;
        } else {
            let server = self.pools().for_server(target.server.as_ref()).await?;
            self.pools().role().ensure(&server).await?;
            // On failure it removes what it made itself, and nothing else.
            self.build_remote(&server, &moved, &data, fault).await?;
            let switched = async {
                let mut tx = safe_transaction::begin(catalog, None).await?;
                switch(&mut tx, &moved, self.migrations()).await?;
                inject(fault, MoveFault::AtSwitch)?;
                Ok::<_, Error>(tx.commit().await?)
            }
            .await;
            if let Err(error) = switched {
                self.drop_placement(&server, &moved).await?;
                return Err(error);
            }
        }
        Ok(tenant.placement.clone())
    }

    /// Makes the target's tables in `tx`, whose `search_path` is the target schema.
    async fn prepare_target(&self, tx: &mut PgConnection, moved: &Tenant) -> Result<(), Error> {
        match moved.isolation {
            IsolationMode::Shared => {
                shared_schema_state(tx, self.migrations()).await?;
                // Left by an interrupted move: no other tenant has this id.
                rows::delete(tx, &moved.placement.schema, moved.id).await
            }
            _ => self.create_schema(tx, moved).await.map(|_| ()),
        }
    }

    /// Builds a target outside the catalog's database and writes the rows there. On failure
    /// it drops only what it created: a database it made; a schema is created in the very
    /// transaction that writes the rows, so a failure leaves none (and an existing schema of
    /// that name, which made `CREATE SCHEMA` fail, is not touched).
    async fn build_remote(
        &self,
        server: &PgPool,
        moved: &Tenant,
        data: &[TableRows],
        fault: Option<MoveFault>,
    ) -> Result<(), Error> {
        let schema = &moved.placement.schema;
        let lease = match &moved.placement.database {
            Some(database) => {
                self.create_database(server, database).await?;
                match self.owner_lease(&moved.placement).await {
                    Ok(lease) => lease,
                    Err(error) => {
                        self.drop_placement(server, moved).await?;
                        return Err(error);
                    }
                }
            }
            None => PoolLease::unclaimed(server.clone(), self.pools().pooler()),
        };
        let written = async {
            let pool = lease.pg()?;
            let mut tx = match &moved.placement.database {
                Some(_) => begin_in(pool, schema).await?,
                None => {
                    let mut tx = safe_transaction::begin(pool, None).await?;
                    self.create_schema(&mut tx, moved).await?;
                    tx
                }
            };
            rows::write(&mut tx, schema, moved.id, data).await?;
            inject(fault, MoveFault::AfterCopy)?;
            Ok::<_, Error>(tx.commit().await?)
        }
        .await;
        if let (Err(_), Some(_)) = (&written, &moved.placement.database) {
            self.drop_placement(server, moved).await?;
        }
        written
    }

    /// The owning role's pool for a placement; the lease keeps a database tenant's pool from
    /// being closed to make room while it is in use.
    async fn owner_lease(&self, placement: &Placement) -> Result<PoolLease, Error> {
        self.pools().for_placement(placement, Access::Owner).await
    }

    /// Step 5: removes the data at the old placement, now that the catalog points elsewhere.
    async fn remove_old(&self, tenant: &Tenant, old: &Placement) -> Result<(), Error> {
        let server = self.pools().for_server(old.server.as_ref()).await?;
        let removed = match tenant.isolation {
            IsolationMode::Shared => {
                async {
                    let mut tx = begin_in(&server, &old.schema).await?;
                    rows::delete(&mut tx, &old.schema, tenant.id).await?;
                    Ok::<_, Error>(tx.commit().await?)
                }
                .await
            }
            _ => self.drop_placement(&server, tenant).await,
        };
        removed.map_err(|e| {
            Error::Incomplete(format!(
                "tenant '{}' has moved, but its old data could not be removed ({e}); remove it \
                 by hand",
                tenant.slug
            ))
        })
    }

    /// The tenant as a [`TenantExport`], read in one consistent snapshot.
    pub async fn export_tenant(&self, slug: &Slug) -> Result<TenantExport, Error> {
        if self.catalog().sqlite().is_some() {
            return Err(needs_postgres("tenant", "exporting a tenant"));
        }
        let details = self.catalog().details(slug).await?;
        let tenant = &details.tenant;
        let lease = self.owner_lease(&tenant.placement).await?;
        let mut tx = safe_transaction::begin(lease.pg()?, None).await?;
        tx.execute(AssertSqlSafe(format!(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET LOCAL search_path TO {}",
            tenant.placement.schema.quoted()
        )))
        .await?;
        let tables = rows::read(&mut tx, &tenant.placement.schema, tenant.id).await?;
        tx.rollback().await?;
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
        if self.catalog().sqlite().is_some() {
            return Err(needs_postgres("tenant", "importing a tenant"));
        }
        check_export(&export, self.migrations())?;
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
            let lease = self.owner_lease(&tenant.placement).await?;
            let mut tx = begin_in(lease.pg()?, &tenant.placement.schema).await?;
            rows::write(&mut tx, &tenant.placement.schema, tenant.id, &export.tables).await?;
            tx.commit().await?;
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

/// Second key of the advisory lock a move holds ("move").
const MOVE_LOCK: i32 = 0x6d6f_7665;

fn check_target(tenant: &Tenant, to: &MoveTarget, migrations: &Migrations) -> Result<(), Error> {
    let invalid = |message: String| Error::Invalid {
        field: "to",
        message,
    };
    if to.isolation == IsolationMode::Shared && to.server.is_some() {
        return Err(invalid(
            "shared-mode tenants live in the catalog's database; --server applies to schema \
             and database isolation"
                .into(),
        ));
    }
    if tenant.isolation == to.isolation && tenant.placement.server == to.server {
        return Err(invalid(format!(
            "tenant '{}' already has {} isolation there",
            tenant.slug,
            to.isolation.as_str()
        )));
    }
    if tenant.migration_version != migrations.tenant_version() {
        return Err(Error::Migration(format!(
            "tenant '{}' is not at the newest tenant migration; run migrate before moving it",
            tenant.slug
        )));
    }
    Ok(())
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
    if export.version != EXPORT_VERSION {
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

/// Points the catalog row at `moved`'s placement and clears the moving mark.
async fn switch(
    conn: &mut PgConnection,
    moved: &Tenant,
    migrations: &Migrations,
) -> Result<(), Error> {
    pooler::query(
        "UPDATE tenantry.tenants SET isolation = $2, schema_name = $3, server = $4, \
         database_name = $5, moving = false, migration_version = $6, \
         migration_fingerprint = $7, migrated_at = now() WHERE id = $1",
    )
    .bind(moved.id)
    .bind(moved.isolation.as_str())
    .bind(moved.placement.schema.as_str())
    .bind(moved.placement.server.as_ref().map(ServerName::as_str))
    .bind(moved.placement.database.as_ref().map(DatabaseName::as_str))
    .bind(migrations.tenant_version())
    .bind(migrations.tenant_fingerprint())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
