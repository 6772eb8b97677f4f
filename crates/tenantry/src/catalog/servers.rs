//! What the supervisors of dedicated tenants' servers publish in the catalog, in either
//! store: which server runs for which tenant on which machine, for `tenants list`,
//! `deploy nginx`, upgrades and stops from other processes.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Store, TenantCatalog};
use crate::error::Error;
use crate::pooler;

/// A dedicated tenant's server, as the process supervising it published it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DedicatedServer {
    pub tenant_id: Uuid,
    /// The machine it runs on.
    pub host: String,
    /// `None` when it does not run (stopped when idle, or dead and not yet started again).
    pub pid: Option<i64>,
    pub port: Option<i32>,
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
    pub(crate) async fn published_servers(&self) -> Result<Vec<DedicatedServer>, Error> {
        let rows: Vec<Row> = match &self.inner.store {
            Store::Postgres(pool) => {
                pooler::query_as(PUBLISHED)
                    .fetch_all(pooler::Pinned(pool))
                    .await?
            }
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
                |(tenant_id, host, pid, port, started_at, restarts)| DedicatedServer {
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
    pub(crate) async fn publish_server(
        &self,
        tenant: Uuid,
        host: &str,
        running: (Option<i64>, Option<i32>),
        started_at: Option<DateTime<Utc>>,
        restarts: i32,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.publish_server(tenant, host, running, started_at, restarts)
            .await?;
        tx.commit().await
    }

    /// Forgets the server of `tenant` on `host`.
    pub(crate) async fn unpublish_server(&self, tenant: Uuid, host: &str) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.unpublish_server(tenant, host).await?;
        tx.commit().await
    }

    /// Records that another process stopped the server `pid` of `tenant` on `host`.
    pub(crate) async fn server_stopped(
        &self,
        tenant: Uuid,
        host: &str,
        pid: i64,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.server_stopped(tenant, host, pid).await?;
        tx.commit().await
    }
}
