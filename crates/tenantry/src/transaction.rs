//! [`TenantTransaction`]: a database transaction opened in one tenant's context.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::db::Db;
use crate::pools::PoolLease;

use crate::tenant::Tenant;

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
        })
    }

    /// The tenant this transaction acts for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.db.commit().await
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
