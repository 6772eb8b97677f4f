//! Tenancy's dedicated tenants: their own servers, started, stopped and refreshed by this
//! process's supervisor or found where other processes published them.

use super::Tenancy;
use crate::dedicated::{self, Instance};

use crate::error::Error;
use crate::pools::Access;
use crate::tenant::Tenant;

impl Tenancy {
    /// Whether `tenant`'s requests are served by a server of its own (dedicated tenants).
    pub fn has_own_server(&self, tenant: &Tenant) -> bool {
        self.layout(tenant)
            .is_ok_and(|layout| layout.own_server().is_some())
    }

    /// Starts `tenant`'s own server again after it failed to answer; where it listens now.
    pub(crate) async fn restart_instance(
        &self,
        tenant: &Tenant,
    ) -> Result<std::net::SocketAddr, Error> {
        let own = self.layout(tenant)?.own_server();
        match (&self.inner.supervisor, own) {
            (Some(supervisor), Some(own)) => supervisor.restart(self.cx(), tenant, own).await,
            _ => Err(Error::InstanceUnavailable(tenant.slug.to_string())),
        }
    }

    /// Stops `tenant`'s own server on this machine, whichever process supervises it.
    pub(crate) async fn stop_instance(&self, tenant: &Tenant) -> Result<(), Error> {
        let supervisor = self.inner.supervisor.as_deref();
        dedicated::stop_everywhere(supervisor, self.catalog(), tenant).await
    }

    /// The mark this process's router puts on the requests it forwards to the dedicated
    /// servers it started, which take settings changes only under it.
    pub(crate) fn router_secret(&self) -> Option<&str> {
        self.inner
            .supervisor
            .as_ref()
            .and_then(|s| s.router_secret())
    }

    /// The dedicated tenants' servers, as the processes supervising them published them
    /// (none in a SQLite deployment).
    pub async fn instances(&self) -> Result<Vec<Instance>, Error> {
        self.inner.catalog.published_instances().await
    }

    /// Gives `tenant`'s own server, if it runs here with another name or settings than the
    /// tenant now has, the ones it has.
    pub(crate) async fn refresh_instance(&self, tenant: &Tenant) {
        let own = self.layout(tenant).ok().and_then(|l| l.own_server());
        if let (Some(supervisor), Some(own)) = (&self.inner.supervisor, own) {
            supervisor.refresh(self.cx(), tenant, own).await;
        }
    }
}

/// Starts the server of every active tenant that has one.
pub(super) async fn start_all(tenancy: Tenancy) {
    let tenants = match tenancy.catalog().list().await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(%error, "cannot list the dedicated tenants to start their servers");
            return;
        }
    };
    for details in tenants {
        let tenant = details.tenant;
        if tenant.status == crate::tenant::TenantStatus::Active
            && tenancy.has_own_server(&tenant)
            && let Err(error) = tenancy.route(&tenant, Access::Tenant).await
        {
            tracing::warn!(tenant = %tenant.slug, %error, "cannot start the tenant's server");
        }
    }
}
