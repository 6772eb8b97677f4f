//! Pending tenants: tenants built ahead of signups, in each isolation mode, so that a signup
//! only names one (a rename in the catalog's transaction) instead of building its tables.
//! Until then they are migrated like any tenant, and invisible: no request reaches them and
//! no listing, lookup or export shows them (`TenantCatalog::list_pending` does).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::tenants::{NewTenant, TenantUpdate};
use crate::catalog::TenantDetails;
use crate::error::Error;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, TenantStatus};

impl Tenancy {
    /// Builds one pending tenant of `isolation`, under a slug of its own (`pending-<hex>`).
    pub async fn create_pending(&self, isolation: IsolationMode) -> Result<TenantDetails, Error> {
        let slug = Slug::parse(&format!(
            "pending-{}",
            hex::encode(rand::random::<[u8; 8]>())
        ))
        .expect("pending- and 16 hex digits is a slug");
        self.create(NewTenant::new(slug, isolation), TenantStatus::Pending)
            .await
    }

    /// Takes the oldest pending tenant of `isolation` and makes it `slug`, named `name` (the
    /// slug when absent), active and created now, all or nothing; `None` when there is none.
    /// Concurrent takes never get the same one: each locks the one it takes and skips those
    /// others hold. A slug already taken is [`Error::SlugTaken`], and the pending tenant
    /// stays pending.
    pub async fn take_pending(
        &self,
        isolation: IsolationMode,
        slug: &Slug,
        name: Option<String>,
    ) -> Result<Option<TenantDetails>, Error> {
        self.identification().tenant_may_take(slug)?;
        let mut tx = self.catalog().begin().await?;
        let Some(tenant) = tx.lock_pending(isolation).await? else {
            return Ok(None);
        };
        tx.activate(&tenant).await?;
        let update = TenantUpdate {
            name: Some(name.unwrap_or_else(|| slug.to_string())),
            slug: Some(slug.clone()),
            ..TenantUpdate::default()
        };
        self.apply(tx, tenant, update).await.map(Some)
    }
}

/// How long the refill waits after a failure before it tries again.
const RETRY: Duration = Duration::from_secs(5);

/// Keeps a number of pending tenants of each mode: filled in the background when started,
/// and refilled after each take. Cheap to clone; the refill stops with the last clone.
#[derive(Clone)]
pub struct PendingPool {
    inner: Arc<Inner>,
    refill: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

struct Inner {
    tenancy: Tenancy,
    sizes: Vec<(IsolationMode, usize)>,
    wake: Arc<Notify>,
    /// Held while filling: two fills at once would both count the same gap.
    filling: tokio::sync::Mutex<()>,
    /// Set by [`PendingPool::stop`]: no tenant is started after it.
    stopping: AtomicBool,
}

impl Drop for Inner {
    /// Wakes the refill, which then finds the pool gone and ends.
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

impl std::fmt::Debug for PendingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPool")
            .field("sizes", &self.inner.sizes)
            .finish_non_exhaustive()
    }
}

impl PendingPool {
    /// A pool of `sizes` pending tenants per mode, filled from now on in the background (on
    /// the current Tokio runtime).
    pub fn start(tenancy: Tenancy, sizes: Vec<(IsolationMode, usize)>) -> Self {
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            tenancy,
            sizes,
            wake: wake.clone(),
            filling: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
        });
        let task = tokio::spawn(refill(Arc::downgrade(&inner), wake));
        Self {
            inner,
            refill: Arc::new(tokio::sync::Mutex::new(Some(task))),
        }
    }

    /// Stops the refill and waits for it: a tenant being built is finished, none is
    /// started. Dropped instead, the last clone lets a build in progress run on, and a
    /// runtime shutting down may cut it short between its database and the catalog.
    pub async fn stop(self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        if let Some(task) = self.refill.lock().await.take() {
            let _ = task.await;
        }
    }

    /// The pending tenants kept of `isolation`.
    pub fn size(&self, isolation: IsolationMode) -> usize {
        self.inner
            .sizes
            .iter()
            .find(|(mode, _)| *mode == isolation)
            .map_or(0, |(_, size)| *size)
    }

    /// [`Tenancy::take_pending`], then a refill in the background.
    pub async fn take(
        &self,
        isolation: IsolationMode,
        slug: &Slug,
        name: Option<String>,
    ) -> Result<Option<TenantDetails>, Error> {
        let taken = self.inner.tenancy.take_pending(isolation, slug, name).await;
        if matches!(taken, Ok(Some(_))) {
            self.inner.wake.notify_one();
        }
        taken
    }

    /// Builds the pending tenants missing in each mode, now; returns how many it built.
    pub async fn fill(&self) -> Result<usize, Error> {
        self.inner.fill().await
    }
}

impl Inner {
    async fn fill(&self) -> Result<usize, Error> {
        let _filling = self.filling.lock().await;
        let pending = self.tenancy.catalog().list_pending().await?;
        let mut built = 0;
        for &(isolation, size) in &self.sizes {
            let have = pending
                .iter()
                .filter(|p| p.tenant.isolation == isolation)
                .count();
            for _ in have..size {
                if self.stopping.load(Ordering::Acquire) {
                    return Ok(built);
                }
                self.tenancy.create_pending(isolation).await?;
                built += 1;
            }
        }
        Ok(built)
    }
}

/// The pool's background refill: fills, then waits for a take; a failure is logged and
/// retried after [`RETRY`]. It ends when the pool is dropped.
async fn refill(pool: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(inner) = pool.upgrade() else { return };
        if inner.stopping.load(Ordering::Acquire) {
            return;
        }
        let wait = match inner.fill().await {
            Ok(built) => {
                if built > 0 {
                    tracing::debug!(built, "pending tenants refilled");
                }
                None
            }
            Err(error) => {
                tracing::warn!(%error, "pending tenants could not be refilled");
                Some(RETRY)
            }
        };
        drop(inner);
        match wait {
            Some(wait) => {
                let _ = tokio::time::timeout(wait, wake.notified()).await;
            }
            None => wake.notified().await,
        }
        if pool.strong_count() == 0 {
            return;
        }
    }
}
