//! [`TenantTransaction`]: a database transaction opened in one tenant's context.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::db::Db;
use crate::pools::PoolLease;

use crate::tenant::Tenant;

/// What the commit of a transaction that enqueued jobs calls, with the tenant's id and the
/// earliest time (Unix milliseconds) one of them may run: it tells the workers.
pub(crate) type JobsWake =
    Arc<dyn Fn(uuid::Uuid, i64) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A transaction in the tenant's context: on PostgreSQL its `search_path` and
/// `app.tenant_id` are the tenant's; on SQLite it is in the tenant's own file.
///
/// It is a guard like [`sqlx::Transaction`]: dropped without [`commit`](Self::commit), it rolls
/// back, and because the tenant settings are `SET LOCAL`, they end with it. The connection
/// goes back to the pool with no tenant state: outside a tenant transaction the pool's
/// `search_path` is empty, so unqualified SQL fails instead of reaching some tenant.
///
/// It derefs to [`Db`]: run queries with `tx.query(...)`.
pub struct TenantTransaction {
    db: Db,
    tenant: Arc<Tenant>,
    _pool: PoolLease,
    wake: Option<JobsWake>,
    /// The earliest `run_at` of the jobs this transaction enqueued.
    enqueued: Option<i64>,
}

impl TenantTransaction {
    /// Opens the transaction with `begin`, a statement tenantry built (never request input).
    pub(crate) async fn begin_with(
        pool: &PoolLease,
        tenant: Arc<Tenant>,
        begin: Arc<str>,
    ) -> Result<Self, sqlx::Error> {
        Ok(Self {
            db: pool.begin(begin).await?,
            tenant,
            _pool: pool.clone(),
            wake: None,
            enqueued: None,
        })
    }

    /// Tells the workers through `wake` when a commit carries jobs.
    pub(crate) fn waking(self, wake: Option<JobsWake>) -> Self {
        Self { wake, ..self }
    }

    /// Notes a job enqueued in this transaction, which may run from `run_at`.
    pub(crate) fn enqueued(&mut self, run_at: i64) {
        self.enqueued = Some(self.enqueued.map_or(run_at, |at| at.min(run_at)));
    }

    /// The tenant this transaction acts for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Commits the transaction; if it enqueued jobs, the workers are told once it has.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.db.commit().await?;
        if let (Some(wake), Some(run_at)) = (self.wake, self.enqueued) {
            wake(self.tenant.id, run_at).await;
        }
        Ok(())
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.db.rollback().await
    }
}

impl Deref for TenantTransaction {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.db
    }
}

impl DerefMut for TenantTransaction {
    fn deref_mut(&mut self) -> &mut Db {
        &mut self.db
    }
}

impl std::fmt::Debug for TenantTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTransaction")
            .field("tenant", &self.tenant.slug)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}
