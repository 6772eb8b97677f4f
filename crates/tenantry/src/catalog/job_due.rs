//! Which tenants have background work due, and from when: a hint per tenant that workers
//! read to know where to look, since each tenant's jobs are in its own data.

use uuid::Uuid;

use super::TenantCatalog;
use crate::error::Error;

/// A tenant whose jobs or schedules may be due, with the version of its hint as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct DueTenant {
    pub tenant_id: Uuid,
    pub version: i64,
}

impl TenantCatalog {
    /// Marks `tenant` as having work due at `due_at` (Unix milliseconds), keeping an earlier
    /// mark, and raises the hint's version so that a worker's "nothing left" read before this
    /// does not delete it.
    pub(crate) async fn mark_jobs_due(&self, tenant: Uuid, due_at: i64) -> Result<(), Error> {
        on_store!(
            &self.inner.store,
            query,
            "INSERT INTO tenantry.job_due AS d (tenant_id, due_at) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET version = d.version + 1, \
             due_at = CASE WHEN excluded.due_at < d.due_at THEN excluded.due_at ELSE d.due_at END",
            [tenant, due_at],
            execute
        )?;
        Ok(())
    }

    /// Up to `limit` active tenants served in process whose work is due at `now`, the longest
    /// waiting first. Dedicated tenants are left to their own servers' workers.
    pub(crate) async fn jobs_due(&self, now: i64, limit: i64) -> Result<Vec<DueTenant>, Error> {
        Ok(on_store!(
            &self.inner.store,
            query_as,
            "SELECT d.tenant_id, d.version FROM tenantry.job_due d \
             JOIN tenantry.tenants t ON t.id = d.tenant_id \
             WHERE d.due_at <= $1 AND t.status = 'active' AND NOT t.moving \
             AND t.isolation <> 'dedicated' ORDER BY d.due_at LIMIT $2",
            [now, limit],
            fetch_all
        )?)
    }

    /// Puts `tenant` behind the others due at `now`, after a worker took one of its jobs: the
    /// round-robin that keeps one tenant's backlog from delaying the others.
    pub(crate) async fn jobs_served(&self, tenant: Uuid, now: i64) -> Result<(), Error> {
        on_store!(
            &self.inner.store,
            query,
            "UPDATE tenantry.job_due SET due_at = $2 WHERE tenant_id = $1 AND due_at < $2",
            [tenant, now],
            execute
        )?;
        Ok(())
    }

    /// Brings `tenant`'s hint forward to `now`, after one of its jobs finished: a hint a
    /// worker moved to a running job's lease end is then settled soon, not at that end.
    pub(crate) async fn jobs_finished(&self, tenant: Uuid, now: i64) -> Result<(), Error> {
        on_store!(
            &self.inner.store,
            query,
            "UPDATE tenantry.job_due SET due_at = $2 WHERE tenant_id = $1 AND due_at > $2",
            [tenant, now],
            execute
        )?;
        Ok(())
    }

    /// Sets the hint a worker read (`seen`) to `next`, the tenant's next due time, or deletes
    /// it when nothing is left; an enqueue since the read (a newer version) keeps it as it is.
    pub(crate) async fn settle_jobs_due(
        &self,
        seen: DueTenant,
        next: Option<i64>,
    ) -> Result<(), Error> {
        match next {
            Some(next) => on_store!(
                &self.inner.store,
                query,
                "UPDATE tenantry.job_due SET due_at = $3 WHERE tenant_id = $1 AND version = $2",
                [seen.tenant_id, seen.version, next],
                execute
            )?,
            None => on_store!(
                &self.inner.store,
                query,
                "DELETE FROM tenantry.job_due WHERE tenant_id = $1 AND version = $2",
                [seen.tenant_id, seen.version],
                execute
            )?,
        };
        Ok(())
    }
}
