//! What the supervisors of dedicated tenants' servers publish in the catalog, in either
//! store: which server runs for which tenant on which machine, for `tenants list`,
//! `deploy nginx`, upgrades and stops from other processes.

use chrono::{DateTime, Utc};
#[cfg(feature = "sqlite")]
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use std::time::{Duration, Instant};

use super::child::serves;
use super::process;
use crate::catalog::{Store, TenantCatalog};
use crate::error::Error;
#[cfg(feature = "postgres")]
use crate::pooler;

/// A dedicated tenant's server, as the process supervising it published it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instance {
    /// The tenant it serves.
    pub tenant_id: Uuid,
    /// The machine it runs on.
    pub host: String,
    /// `None` when it does not run (stopped when idle, or dead and not yet started again).
    pub pid: Option<i64>,
    /// The loopback port it listens on, kept while it is stopped.
    pub port: Option<i32>,
    /// Seconds since it started; `None` when it does not run.
    pub uptime_secs: Option<i64>,
    /// Starts after the first.
    pub restarts: i32,
}

type Row = (
    Uuid,
    String,
    Option<i64>,
    Option<i32>,
    Option<DateTime<Utc>>,
    i32,
);

const PUBLISHED: &str = "SELECT tenant_id, host, pid, port, started_at, restarts \
     FROM tenantry.dedicated_servers ORDER BY tenant_id, host";

impl TenantCatalog {
    /// Every published server; stopped ones have no pid.
    pub(crate) async fn published_instances(&self) -> Result<Vec<Instance>, Error> {
        let rows: Vec<Row> = match self.store() {
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => {
                pooler::query_as(PUBLISHED)
                    .fetch_all(pooler::Pinned(pool))
                    .await?
            }
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => {
                sqlx::query_as(AssertSqlSafe(PUBLISHED.replace("tenantry.", "")))
                    .fetch_all(pool)
                    .await?
            }
        };
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .map(
                |(tenant_id, host, pid, port, started_at, restarts)| Instance {
                    uptime_secs: pid
                        .and(started_at)
                        .map(|at| (now - at).num_seconds().max(0)),
                    tenant_id,
                    host,
                    pid,
                    port,
                    restarts,
                },
            )
            .collect())
    }

    /// Records the server of `tenant` on `host` as it is now.
    pub(crate) async fn publish_instance(
        &self,
        tenant: Uuid,
        host: &str,
        running: (Option<i64>, Option<i32>),
        started_at: Option<DateTime<Utc>>,
        restarts: i32,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.publish_instance(tenant, host, running, started_at, restarts)
            .await?;
        tx.commit().await
    }

    /// Forgets the server of `tenant` on `host`.
    pub(crate) async fn unpublish_instance(&self, tenant: Uuid, host: &str) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.unpublish_instance(tenant, host).await?;
        tx.commit().await
    }

    /// Records that another process stopped the server `pid` of `tenant` on `host`.
    pub(crate) async fn instance_stopped(
        &self,
        tenant: Uuid,
        host: &str,
        pid: i64,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.instance_stopped(tenant, host, pid).await?;
        tx.commit().await
    }
}

/// This machine's name, which tells the supervisors of several machines apart.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Stops with SIGTERM the server of `tenant` that a supervisor on this machine published as
/// running (whichever process that is) and waits up to `within` for it to exit. Only a
/// process whose environment names the tenant is signalled: a stale row's pid may have been
/// reused. Returns the pid stopped, if any; an error if it would not stop.
pub(crate) async fn terminate_published(
    catalog: &TenantCatalog,
    tenant: Uuid,
    within: Duration,
) -> Result<Option<i64>, Error> {
    let host = host_name();
    let pid = catalog
        .published_instances()
        .await?
        .into_iter()
        .find(|s| s.tenant_id == tenant && s.host == host)
        .and_then(|s| s.pid);
    let Some(pid) = pid.filter(|&pid| serves(pid, tenant)) else {
        return Ok(None);
    };
    // The process is this tenant's server (checked above).
    process::signal(pid, libc::SIGTERM).ok();
    let deadline = Instant::now() + within;
    while process::runs(pid) {
        if Instant::now() > deadline {
            return Err(Error::InstanceUnavailable(format!(
                "{tenant} (its server, pid {pid}, did not stop)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stopped: so says the published row, until its supervisor starts it again.
    catalog.instance_stopped(tenant, &host, pid).await?;
    Ok(Some(pid))
}
