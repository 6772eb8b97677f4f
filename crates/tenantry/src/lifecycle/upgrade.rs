//! Upgrading dedicated tenants in waves: each tenant's database migrated, then its server
//! started again on the binary now installed, a few tenants at a time, stopping at the first
//! tenant whose new server fails its health check.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dedicated::{health, host_name, terminate_published};
use crate::error::Error;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{Tenant, TenantStatus};

/// What an upgrade did to one dedicated tenant's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerUpgrade {
    /// Stopped, started again through the router, and healthy; `version` is what its
    /// health endpoint says it runs, if it says.
    Restarted {
        /// The pid of the server that was stopped.
        pid: i64,
        /// The version its successor reports.
        version: Option<String>,
    },
    /// It did not run; its next request starts the binary now installed.
    NotRunning,
    /// The migration or the new server failed; the upgrade stopped here.
    Failed(String),
    /// In a wave after a failure: neither migrated nor restarted.
    Untouched,
}

/// One dedicated tenant's line in an upgrade.
#[derive(Debug, Clone)]
pub struct Upgraded {
    /// The tenant.
    pub slug: Slug,
    /// Its tenant migration version after the upgrade.
    pub version: Option<i64>,
    /// What became of its server.
    pub server: ServerUpgrade,
}

/// How long a restarted server has to answer its health check through the router.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

impl Tenancy {
    /// Upgrades the active dedicated tenants, `wave` at a time, in slug order. In each wave,
    /// every tenant's database is migrated; then each server running on this machine (as
    /// its supervisor published it) is stopped with SIGTERM and started again by asking the
    /// supervising server at `router` for the tenant's `/health`, which must answer 200.
    /// The first failure ends the upgrade: the tenants of later waves are left untouched.
    /// `progress` is told each tenant's line as it is known.
    pub async fn upgrade_dedicated(
        &self,
        wave: usize,
        router: SocketAddr,
        progress: impl Fn(&Upgraded),
    ) -> Result<Vec<Upgraded>, Error> {
        let mut tenants: Vec<Tenant> = self
            .catalog()
            .list()
            .await?
            .into_iter()
            .map(|details| details.tenant)
            .filter(|t| self.has_own_server(t) && t.status == TenantStatus::Active)
            .collect();
        tenants.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
        let mut lines = Vec::with_capacity(tenants.len());
        let mut failed = false;
        for group in tenants.chunks(wave.max(1)) {
            if failed {
                for tenant in group {
                    let line = Upgraded {
                        slug: tenant.slug.clone(),
                        version: tenant.migration_version,
                        server: ServerUpgrade::Untouched,
                    };
                    progress(&line);
                    lines.push(line);
                }
                continue;
            }
            let mut versions = Vec::with_capacity(group.len());
            for tenant in group {
                let migrated = self
                    .layout(tenant)?
                    .migrate(self.cx(), tenant, true)
                    .await
                    .map(|applied| applied.to);
                versions.push(migrated);
            }
            for (tenant, version) in group.iter().zip(versions) {
                let (version, server) = match version {
                    Ok(version) => (version, self.restart_through(tenant, router).await),
                    Err(error) => (
                        tenant.migration_version,
                        ServerUpgrade::Failed(format!("migration: {error}")),
                    ),
                };
                let line = Upgraded {
                    slug: tenant.slug.clone(),
                    version,
                    server,
                };
                failed |= matches!(line.server, ServerUpgrade::Failed(_));
                progress(&line);
                lines.push(line);
            }
        }
        Ok(lines)
    }

    /// Stops `tenant`'s server on this machine, if one runs, and has the router start it
    /// again.
    async fn restart_through(&self, tenant: &Tenant, router: SocketAddr) -> ServerUpgrade {
        let stopped = terminate_published(self.catalog(), tenant.id, HEALTHY_WITHIN).await;
        let old = match stopped {
            Ok(Some(old)) => old,
            Ok(None) => return ServerUpgrade::NotRunning,
            Err(error) => return ServerUpgrade::Failed(error.to_string()),
        };
        let deadline = Instant::now() + HEALTHY_WITHIN;
        let host = self.primary_domain(&tenant.slug);
        let mut last = String::new();
        while Instant::now() < deadline {
            match health(router, &host, Duration::from_secs(15)).await {
                Ok(health) if health.status == 200 => match self.running_pid(tenant).await {
                    Some(pid) if pid != old => {
                        let version = health.version;
                        return ServerUpgrade::Restarted { pid, version };
                    }
                    _ => last = "the router answered, but no new server is published".into(),
                },
                Ok(health) => last = format!("its health check answered {}", health.status),
                Err(error) => last = format!("the router at {router}: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ServerUpgrade::Failed(last)
    }

    /// The pid of `tenant`'s server on this machine, as published.
    async fn running_pid(&self, tenant: &Tenant) -> Option<i64> {
        let host = host_name();
        self.instances()
            .await
            .ok()?
            .into_iter()
            .find(|s| s.tenant_id == tenant.id && s.host == host)?
            .pid
    }
}
