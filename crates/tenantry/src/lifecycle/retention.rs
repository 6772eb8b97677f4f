//! Deleting with a grace period: a deleted tenant is kept whole (answering 403, as if
//! suspended) and can be restored until its grace is over; then it is purged, by
//! [`Tenancy::purge_deleted`] or the background [`PurgeSweep`].

use std::time::Duration;

use chrono::Utc;

use super::every::Every;
use crate::catalog::TenantDetails;
use crate::error::Error;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::TenantStatus;

impl Tenancy {
    /// Deletes the tenant, keeping it whole until it is purged: its site answers 403, its
    /// data stays (and can be exported), and [`restore_tenant`](Self::restore_tenant)
    /// brings it back.
    pub async fn delete_tenant_later(&self, slug: &Slug) -> Result<TenantDetails, Error> {
        self.set_deleted(slug, true).await
    }

    /// Brings back a tenant deleted with [`delete_tenant_later`](Self::delete_tenant_later),
    /// active, as it was.
    pub async fn restore_tenant(&self, slug: &Slug) -> Result<TenantDetails, Error> {
        self.set_deleted(slug, false).await
    }

    async fn set_deleted(&self, slug: &Slug, deleted: bool) -> Result<TenantDetails, Error> {
        let mut tx = self.catalog().begin().await?;
        let tenant = tx.lock(slug).await?;
        match (tenant.status, deleted) {
            (TenantStatus::Pending, _) => return Err(Error::TenantNotFound(slug.to_string())),
            (TenantStatus::Deleted, true)
            | (TenantStatus::Active | TenantStatus::Suspended, false) => {
                let message = match deleted {
                    true => format!("'{slug}' is deleted already"),
                    false => format!("'{slug}' is not deleted"),
                };
                return Err(Error::Invalid {
                    field: "status",
                    message,
                });
            }
            _ => {}
        }
        tx.mark_deleted(&tenant, deleted).await?;
        tx.commit().await?;
        self.catalog().invalidate();
        #[cfg(feature = "dedicated")]
        if deleted && self.layout(&tenant)?.own_server().is_some() {
            self.stop_instance(&tenant).await?;
        }
        self.catalog().details(slug).await
    }

    /// Purges, for good, every tenant deleted at least `grace` ago; returns their slugs. A
    /// tenant that fails is logged and left for the next purge; the others go on.
    pub async fn purge_deleted(&self, grace: Duration) -> Result<Vec<Slug>, Error> {
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(grace)
            .unwrap_or(chrono::DateTime::<Utc>::UNIX_EPOCH);
        let mut purged = Vec::new();
        for slug in self.catalog().deleted_before(cutoff).await? {
            match self.delete_tenant(&slug).await {
                Ok(()) => {
                    tracing::info!(tenant = %slug, "purged after its grace period");
                    purged.push(slug);
                }
                Err(error) => tracing::error!(tenant = %slug, %error, "not purged"),
            }
        }
        Ok(purged)
    }
}

/// Purges the tenants whose grace is over, every `every`, in the background; it stops when
/// dropped.
#[derive(Debug)]
pub struct PurgeSweep {
    _task: Every,
}

impl PurgeSweep {
    /// Starts the sweep on the current Tokio runtime: one purge now, then one every `every`.
    pub fn start(tenancy: Tenancy, grace: Duration, every: Duration) -> Self {
        let purge = move || {
            let tenancy = tenancy.clone();
            async move { tenancy.purge_deleted(grace).await.map(drop) }
        };
        Self {
            _task: Every::start(every, "the purge of deleted tenants", purge),
        }
    }
}
