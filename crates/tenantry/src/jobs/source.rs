//! Where a [`Worker`](super::Worker) finds its tenants: the catalog of a process serving
//! many, or the one tenant a dedicated tenant's own server serves.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

use super::queue;
use crate::cache::Cache;
use crate::catalog::DueTenant;
use crate::error::Error;
use crate::files::{Files, NO_FILE_STORE, TenantFiles};
use crate::pools::PoolLease;
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, Tenant, TenantStatus};
use crate::transaction::{JobsWake, TenantTransaction};

/// The tenants a worker serves.
pub(crate) enum Source {
    /// Every tenant of the catalog served in process, found by its `job_due` hints.
    Catalog(Tenancy),
    /// One tenant, on a server of its own, which cannot reach the catalog.
    One(Box<OneTenant>),
}

/// A dedicated tenant's own server's view of its tenant, for its worker.
pub(crate) struct OneTenant {
    pub(crate) pool: PoolLease,
    pub(crate) begin: Arc<str>,
    /// The tenant as it is now (its settings change when its supervisor says so).
    pub(crate) tenant: Arc<dyn Fn() -> Arc<Tenant> + Send + Sync>,
    pub(crate) cache: Cache,
    pub(crate) files: Option<Files>,
    pub(crate) due: Arc<LocalDue>,
}

/// The one tenant's hint, kept in process where there is no catalog to keep it: when its
/// work is next due, and a version every enqueue raises.
#[derive(Debug, Default)]
pub(crate) struct LocalDue {
    hint: Mutex<Option<(i64, i64)>>,
    ready: Arc<Notify>,
}

impl LocalDue {
    /// What a commit that enqueued jobs calls.
    pub(crate) fn wake(self: &Arc<Self>) -> JobsWake {
        let due = self.clone();
        Arc::new(move |_, run_at| {
            due.mark(run_at);
            due.ready.notify_one();
            Box::pin(async {})
        })
    }

    fn with<T>(&self, change: impl FnOnce(&mut Option<(i64, i64)>) -> T) -> T {
        change(&mut self.hint.lock().expect("no panic holds this lock"))
    }

    fn mark(&self, at: i64) {
        self.with(|hint| {
            *hint = Some(match *hint {
                Some((due, version)) => (due.min(at), version + 1),
                None => (at, 1),
            });
        });
    }
}

impl Source {
    /// Up to `limit` tenants whose work is due at `now`.
    pub(crate) async fn due(&self, now: i64, limit: i64) -> Result<Vec<DueTenant>, Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.catalog().jobs_due(now, limit).await,
            Self::One(one) => Ok(one
                .due
                .with(|hint| *hint)
                .filter(|(due, _)| *due <= now)
                .map(|(_, version)| DueTenant {
                    tenant_id: (one.tenant)().id,
                    version,
                })
                .into_iter()
                .collect()),
        }
    }

    /// The tenant `id` as it is now; `None` if it is gone.
    pub(crate) async fn current(&self, id: Uuid) -> Result<Option<Tenant>, Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.catalog().current(id).await,
            Self::One(one) => Ok(Some((*(one.tenant)()).clone())),
        }
    }

    /// A transaction in `tenant`'s context whose enqueued jobs are announced.
    pub(crate) async fn begin(&self, tenant: Arc<Tenant>) -> Result<TenantTransaction, Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.begin_tenant(tenant).await,
            Self::One(one) => {
                Ok(
                    TenantTransaction::begin_with(&one.pool, tenant, one.begin.clone())
                        .await?
                        .waking(Some(one.due.wake())),
                )
            }
        }
    }

    /// Whether `tenant` moved, was renamed or suspended since it was read.
    pub(crate) async fn changed_since(&self, tenant: &Tenant) -> Result<bool, Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.catalog().changed_since(tenant).await,
            Self::One(_) => Ok(false),
        }
    }

    /// Woken when a job is enqueued in this process, or one of its jobs finishes.
    pub(crate) fn ready(&self) -> &Arc<Notify> {
        match self {
            Self::Catalog(tenancy) => tenancy.jobs_ready(),
            Self::One(one) => &one.due.ready,
        }
    }

    /// Puts `tenant` behind the others due at `now`, after one of its jobs was taken.
    pub(crate) async fn served(&self, tenant: Uuid, now: i64) -> Result<(), Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.catalog().jobs_served(tenant, now).await,
            Self::One(one) => {
                one.due.with(|hint| {
                    if let Some((due, _)) = hint {
                        *due = (*due).max(now);
                    }
                });
                Ok(())
            }
        }
    }

    /// Brings `tenant`'s hint forward to `now`, after one of its jobs finished.
    pub(crate) async fn finished(&self, tenant: Uuid, now: i64) -> Result<(), Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.catalog().jobs_finished(tenant, now).await,
            Self::One(one) => {
                one.due.with(|hint| {
                    if let Some((due, _)) = hint {
                        *due = (*due).min(now);
                    }
                });
                Ok(())
            }
        }
    }

    /// Sets the hint read as `seen` to `next`, or removes it, unless an enqueue raised it.
    pub(crate) async fn settle(&self, seen: DueTenant, next: Option<i64>) -> Result<(), Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.catalog().settle_jobs_due(seen, next).await,
            Self::One(one) => {
                one.due.with(|hint| {
                    if hint.is_some_and(|(_, version)| version == seen.version) {
                        *hint = next.map(|next| (next, seen.version));
                    }
                });
                Ok(())
            }
        }
    }

    /// `tenant`'s files.
    pub(crate) fn files(&self, tenant: Uuid) -> Result<TenantFiles, Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.files_of(tenant),
            Self::One(one) => one
                .files
                .as_ref()
                .map(|files| files.tenant(tenant))
                .ok_or_else(|| Error::Io(NO_FILE_STORE.into())),
        }
    }

    /// Flushes `tenant`'s cached values.
    pub(crate) async fn flush_cache(&self, tenant: Uuid) {
        match self {
            Self::Catalog(tenancy) => tenancy.cache().flush_tenant(tenant).await,
            Self::One(one) => one.cache.flush_tenant(tenant).await,
        }
    }

    /// Reads the queues of every active tenant served here and marks those with work due:
    /// what a commit could not announce (its process killed in between) is found so.
    pub(crate) async fn sweep(&self) -> Result<(), Error> {
        let tenants = match self {
            Self::Catalog(tenancy) => tenancy
                .catalog()
                .list()
                .await?
                .into_iter()
                .map(|details| details.tenant)
                .filter(|t| t.status == TenantStatus::Active)
                .filter(|t| t.isolation != IsolationMode::Dedicated)
                .collect(),
            Self::One(one) => vec![(*(one.tenant)()).clone()],
        };
        let mut failed = 0;
        for tenant in tenants {
            let id = tenant.id;
            let next = async {
                let mut tx = self.begin(Arc::new(tenant)).await?;
                let next = queue::next_due(&mut tx).await?;
                tx.commit().await?;
                if let Some(at) = next {
                    self.mark(id, at).await?;
                }
                Ok::<_, Error>(())
            };
            if let Err(error) = next.await {
                failed += 1;
                tracing::debug!(%error, tenant = %id, "the job sweep could not read a queue");
            }
        }
        if failed > 0 {
            tracing::warn!(failed, "the job sweep could not read some tenants' queues");
        }
        Ok(())
    }

    async fn mark(&self, tenant: Uuid, at: i64) -> Result<(), Error> {
        match self {
            Self::Catalog(tenancy) => tenancy.catalog().mark_jobs_due(tenant, at).await,
            Self::One(one) => {
                one.due.mark(at);
                Ok(())
            }
        }
    }
}
