//! [`TenantTransaction`]: a database transaction opened in one tenant's context.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{AssertSqlSafe, PgConnection, Postgres, Transaction};

use crate::pools::PoolLease;

use crate::tenant::Tenant;

/// A transaction whose `search_path` and `app.tenant_id` are the tenant's.
///
/// It is a guard like [`sqlx::Transaction`]: dropped without [`commit`](Self::commit), it rolls
/// back, and because the tenant settings are `SET LOCAL`, they end with it. The connection
/// goes back to the pool with no tenant state: outside a tenant transaction the pool's
/// `search_path` is empty, so unqualified SQL fails instead of reaching some tenant.
///
/// Use it as an executor with `&mut *tx`.
pub struct TenantTransaction {
    tx: Transaction<'static, Postgres>,
    tenant: Arc<Tenant>,
    _pool: PoolLease,
}

impl TenantTransaction {
    pub(crate) async fn begin(pool: &PoolLease, tenant: Arc<Tenant>) -> Result<Self, sqlx::Error> {
        let begin = tenant.begin_sql.clone();
        Self::begin_with(pool, tenant, begin).await
    }

    /// Opens the transaction with `begin`, a statement tenantry built (never request input).
    pub(crate) async fn begin_with(
        pool: &PoolLease,
        tenant: Arc<Tenant>,
        begin: Arc<str>,
    ) -> Result<Self, sqlx::Error> {
        let tx = pool.begin_with(AssertSqlSafe(begin)).await?;
        Ok(Self {
            tx,
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
        self.tx.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for TenantTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
