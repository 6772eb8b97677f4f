//! [`CatalogTx`]: a transaction on the catalog, in PostgreSQL or SQLite, and every change the
//! lifecycle makes to it. The SQL is written once, for PostgreSQL's schema `tenantry`; SQLite
//! runs it with the schema name left out.

use chrono::Utc;
#[cfg(feature = "sqlite")]
use sqlx::{AssertSqlSafe, sqlite::Sqlite};
#[cfg(feature = "postgres")]
use {
    crate::tenant::MoveState,
    sqlx::postgres::{PgConnection, Postgres},
    sqlx::types::Json,
};
#[cfg(feature = "dedicated")]
use {chrono::DateTime, uuid::Uuid};

#[cfg(feature = "postgres")]
use super::row::{TenantRow, select_tenants};
#[cfg(feature = "sqlite")]
use super::sqlite;
use crate::error::{Error, UNIQUE_VIOLATION, constraint, sqlstate};
use crate::migrate::Applied;
#[cfg(feature = "postgres")]
use crate::pooler;
use crate::safe_transaction::SafeTransaction;
use crate::slug::Slug;
use crate::tenant::{IsolationMode, Placement, Tenant, TenantStatus};

/// An open transaction on the catalog; dropped without [`commit`](Self::commit), it rolls
/// back.
pub(crate) enum CatalogTx {
    #[cfg(feature = "postgres")]
    Postgres(SafeTransaction<Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(SafeTransaction<Sqlite>),
}

/// Runs one statement on either store with the same binds; returns the rows it changed.
macro_rules! execute {
    ($tx:expr, $sql:literal $(, $bind:expr)* $(,)?) => {
        match $tx {
            #[cfg(feature = "postgres")]
            CatalogTx::Postgres(tx) => pooler::query($sql)
                $(.bind($bind))*
                .execute(&mut **tx)
                .await
                .map(|done| done.rows_affected()),
            #[cfg(feature = "sqlite")]
            CatalogTx::Sqlite(tx) => sqlx::query(AssertSqlSafe($sql.replace("tenantry.", "")))
                $(.bind($bind))*
                .execute(&mut **tx)
                .await
                .map(|done| done.rows_affected()),
        }
    };
}

/// Turns a unique violation into the conflict it means (PostgreSQL names the constraint,
/// SQLite the column).
fn conflict(error: sqlx::Error, slug: &Slug, domain: &str) -> Error {
    let domain_taken = match sqlstate(&error).as_deref() {
        Some(UNIQUE_VIOLATION) => constraint(&error).as_deref() == Some("domains_pkey"),
        _ => match error.as_database_error() {
            Some(db) if db.is_unique_violation() => db.message().contains("domains.domain"),
            _ => return error.into(),
        },
    };
    match domain_taken {
        true => Error::DomainTaken(domain.to_owned()),
        false => Error::SlugTaken(slug.clone()),
    }
}

impl CatalogTx {
    /// The PostgreSQL connection, when the catalog is in PostgreSQL: layouts whose tables
    /// live in the catalog's database change them in this very transaction.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(&mut self) -> Option<&mut PgConnection> {
        match self {
            Self::Postgres(tx) => Some(tx),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => None,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => tx.commit().await?,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Adds a new tenant's row.
    pub(crate) async fn insert(&mut self, tenant: &Tenant) -> Result<(), Error> {
        let placement = &tenant.placement;
        execute!(
            self,
            "INSERT INTO tenantry.tenants \
             (id, slug, name, schema_name, server, isolation, database_name, created_at, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            tenant.id,
            tenant.slug.as_str(),
            tenant.name.as_str(),
            placement.schema.as_str(),
            placement.server.as_ref().map(|s| s.as_str().to_owned()),
            tenant.isolation.as_str(),
            placement.database.as_ref().map(|d| d.as_str().to_owned()),
            tenant.created_at,
            tenant.status.as_str(),
        )
        .map_err(|e| conflict(e, &tenant.slug, ""))?;
        Ok(())
    }

    /// Adds one of the tenant's domains.
    pub(crate) async fn insert_domain(
        &mut self,
        tenant: &Tenant,
        domain: &str,
        is_primary: bool,
    ) -> Result<(), Error> {
        execute!(
            self,
            "INSERT INTO tenantry.domains (domain, tenant_id, is_primary) VALUES ($1, $2, $3)",
            domain,
            tenant.id,
            is_primary,
        )
        .map_err(|e| conflict(e, &tenant.slug, domain))?;
        Ok(())
    }

    /// Removes a domain that is not the tenant's primary one.
    pub(crate) async fn remove_domain(
        &mut self,
        tenant: &Tenant,
        domain: &str,
    ) -> Result<(), Error> {
        execute!(
            self,
            "DELETE FROM tenantry.domains WHERE domain = $1 AND tenant_id = $2 AND NOT is_primary",
            domain,
            tenant.id,
        )?;
        Ok(())
    }

    /// Removes `tenant`'s claim of `domain` (it is being verified); whether it was there, so
    /// that of two checks verifying one claim only one goes on.
    pub(crate) async fn take_claim(
        &mut self,
        tenant: &Tenant,
        domain: &str,
    ) -> Result<bool, Error> {
        let done = execute!(
            self,
            "DELETE FROM tenantry.domain_claims WHERE tenant_id = $1 AND domain = $2",
            tenant.id,
            domain,
        )?;
        Ok(done > 0)
    }

    /// The tenant with this slug, locked against other changes until this transaction ends.
    pub(crate) async fn lock(&mut self, slug: &Slug) -> Result<Tenant, Error> {
        let tenant = match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => {
                let row: Option<TenantRow> =
                    pooler::query_as(select_tenants!("WHERE t.slug = $1 FOR UPDATE OF t"))
                        .bind(slug.as_str())
                        .fetch_optional(&mut **tx)
                        .await?;
                row.map(Tenant::try_from).transpose()?
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => sqlite::by_slug_in(tx, slug.as_str()).await?,
        };
        tenant.ok_or_else(|| Error::TenantNotFound(slug.to_string()))
    }

    /// The oldest pending tenant of `isolation` that no other transaction holds, locked
    /// until this transaction ends: concurrent takers each get a different one, or none.
    pub(crate) async fn lock_pending(
        &mut self,
        isolation: IsolationMode,
    ) -> Result<Option<Tenant>, Error> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => {
                let row: Option<TenantRow> = pooler::query_as(select_tenants!(
                    "WHERE t.status = 'pending' AND t.isolation = $1 \
                     ORDER BY t.created_at LIMIT 1 FOR UPDATE OF t SKIP LOCKED"
                ))
                .bind(isolation.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                row.map(Tenant::try_from).transpose()
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => sqlite::oldest_pending_in(tx, isolation).await,
        }
    }

    /// Gives the tenant a new slug, placement names and primary domain.
    pub(crate) async fn rename(
        &mut self,
        tenant: &Tenant,
        to: &Slug,
        placement: &Placement,
        primary: &str,
    ) -> Result<(), Error> {
        execute!(
            self,
            "UPDATE tenantry.tenants SET slug = $2, schema_name = $3, database_name = $4 \
             WHERE id = $1",
            tenant.id,
            to.as_str(),
            placement.schema.as_str(),
            placement.database.as_ref().map(|d| d.as_str().to_owned()),
        )
        .map_err(|e| conflict(e, to, primary))?;
        execute!(
            self,
            "UPDATE tenantry.domains SET domain = $2 WHERE tenant_id = $1 AND is_primary",
            tenant.id,
            primary,
        )
        .map_err(|e| conflict(e, to, primary))?;
        Ok(())
    }

    /// Marks the tenant deleted now (kept for its grace period), or, with `deleted` false,
    /// active again.
    pub(crate) async fn mark_deleted(
        &mut self,
        tenant: &Tenant,
        deleted: bool,
    ) -> Result<(), Error> {
        let (status, at) = match deleted {
            true => (TenantStatus::Deleted, Some(Utc::now())),
            false => (TenantStatus::Active, None),
        };
        execute!(
            self,
            "UPDATE tenantry.tenants SET status = $2, deleted_at = $3 WHERE id = $1",
            tenant.id,
            status.as_str(),
            at,
        )?;
        Ok(())
    }

    /// Makes a pending tenant active, created now: a signup has taken it.
    pub(crate) async fn activate(&mut self, tenant: &Tenant) -> Result<(), Error> {
        execute!(
            self,
            "UPDATE tenantry.tenants SET status = 'active', created_at = $2 WHERE id = $1",
            tenant.id,
            Utc::now(),
        )?;
        Ok(())
    }

    /// Changes the name, status and settings given.
    pub(crate) async fn set(
        &mut self,
        tenant: &Tenant,
        name: Option<String>,
        status: Option<TenantStatus>,
        settings: Option<serde_json::Value>,
    ) -> Result<(), Error> {
        execute!(
            self,
            "UPDATE tenantry.tenants SET name = COALESCE($2, name), \
             status = COALESCE($3, status), settings = COALESCE($4, settings) WHERE id = $1",
            tenant.id,
            name,
            status.map(TenantStatus::as_str),
            settings,
        )?;
        Ok(())
    }

    /// Removes the tenant with this slug (and its domains) and returns it.
    pub(crate) async fn delete(&mut self, slug: &Slug) -> Result<Tenant, Error> {
        let tenant = self.lock(slug).await?;
        execute!(
            self,
            "DELETE FROM tenantry.tenants WHERE id = $1",
            tenant.id
        )?;
        Ok(tenant)
    }

    /// Records that `tenant` is at `applied.to` of the tenant set with `fingerprint`.
    pub(crate) async fn record(
        &mut self,
        tenant: &Tenant,
        fingerprint: &str,
        applied: &Applied,
    ) -> Result<(), Error> {
        execute!(
            self,
            "UPDATE tenantry.tenants SET migration_version = $1, migration_fingerprint = $2, \
             migrated_at = $3 WHERE id = $4",
            applied.to,
            fingerprint,
            Utc::now(),
            tenant.id,
        )?;
        Ok(())
    }

    /// Marks the tenant as moving (read-only), with the move's state.
    #[cfg(feature = "postgres")]
    pub(crate) async fn start_move(
        &mut self,
        tenant: &Tenant,
        state: &MoveState,
    ) -> Result<(), Error> {
        execute!(
            self,
            "UPDATE tenantry.tenants SET moving = true, move_state = $2 WHERE id = $1",
            tenant.id,
            Json(state),
        )?;
        Ok(())
    }

    /// Ends the tenant's move: writable again, no move state.
    #[cfg(feature = "postgres")]
    pub(crate) async fn end_move(&mut self, tenant: &Tenant) -> Result<(), Error> {
        execute!(
            self,
            "UPDATE tenantry.tenants SET moving = false, move_state = NULL WHERE id = $1",
            tenant.id,
        )?;
        Ok(())
    }

    /// Points the moving tenant at its new isolation and placement, writable again, at the
    /// newest tenant migration (`applied`, of the set with `fingerprint`); `state` is what
    /// remains of the move (removing the old data).
    #[cfg(feature = "postgres")]
    pub(crate) async fn switch(
        &mut self,
        moved: &Tenant,
        state: &MoveState,
        fingerprint: &str,
        applied: &Applied,
    ) -> Result<(), Error> {
        let placement = &moved.placement;
        let changed = execute!(
            self,
            "UPDATE tenantry.tenants SET isolation = $2, server = $3, database_name = $4, \
             schema_name = $5, moving = false, move_state = $6, migration_version = $7, \
             migration_fingerprint = $8 WHERE id = $1 AND moving",
            moved.id,
            moved.isolation.as_str(),
            placement.server.as_ref().map(|s| s.as_str().to_owned()),
            placement.database.as_ref().map(|d| d.as_str().to_owned()),
            placement.schema.as_str(),
            Json(state),
            applied.to,
            fingerprint,
        )?;
        if changed == 0 {
            return Err(Error::Incomplete(format!(
                "tenant '{}' is no longer being moved; the move was abandoned",
                moved.slug
            )));
        }
        Ok(())
    }
}

/// What the supervisors of dedicated tenants' servers publish: which server runs for which
/// tenant on which machine.
#[cfg(feature = "dedicated")]
impl CatalogTx {
    /// Records the server of `tenant` on `host` as it is now (`pid` `None`: not running).
    pub(crate) async fn publish_instance(
        &mut self,
        tenant: Uuid,
        host: &str,
        (pid, port): (Option<i64>, Option<i32>),
        started_at: Option<DateTime<Utc>>,
        restarts: i32,
    ) -> Result<(), Error> {
        execute!(
            self,
            "INSERT INTO tenantry.dedicated_servers \
             (tenant_id, host, pid, port, started_at, restarts, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, host) DO UPDATE SET pid = $3, port = $4, \
             started_at = $5, restarts = $6, updated_at = $7",
            tenant,
            host,
            pid,
            port,
            started_at,
            restarts,
            Utc::now(),
        )?;
        Ok(())
    }

    /// Forgets the server of `tenant` on `host`.
    pub(crate) async fn unpublish_instance(
        &mut self,
        tenant: Uuid,
        host: &str,
    ) -> Result<(), Error> {
        execute!(
            self,
            "DELETE FROM tenantry.dedicated_servers WHERE tenant_id = $1 AND host = $2",
            tenant,
            host,
        )?;
        Ok(())
    }

    /// Records that the server `pid` of `tenant` on `host` was stopped by another process.
    pub(crate) async fn instance_stopped(
        &mut self,
        tenant: Uuid,
        host: &str,
        pid: i64,
    ) -> Result<(), Error> {
        execute!(
            self,
            "UPDATE tenantry.dedicated_servers SET pid = NULL, updated_at = $4 \
             WHERE tenant_id = $1 AND host = $2 AND pid = $3",
            tenant,
            host,
            pid,
            Utc::now(),
        )?;
        Ok(())
    }
}
