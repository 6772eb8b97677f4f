//! The app servers of dedicated tenants on this machine: a child process per tenant on a
//! loopback port of its own, started on the tenant's first request, used once its health
//! endpoint answers, started again after it dies (backing off while it keeps dying),
//! stopped after an idle time, and killed with this process (its parent-death signal is
//! SIGKILL, so a parent killed with SIGKILL leaves no child behind).
//!
//! Each child is the app's own command ([`DedicatedOptions::command`]) with an environment
//! of nothing but the app's chosen settings ([`DedicatedOptions::env`]) and its own:
//! `TENANT_ID`, `TENANT_SLUG`, `TENANT_NAME`, `TENANT_SETTINGS`, `TENANT_HOSTS` (its
//! domains, the only hosts it may answer for), `BIND` (`127.0.0.1:<port>`) and
//! `DATABASE_URL=-`, which says that the database's URL (the tenant's database, as the
//! tenant's own role with a password set for this start) is the first line of its standard
//! input, and this process's router mark the second: a secret is never in a process's
//! environment, where `/proc/<pid>/environ` would show it. The pipe stays open: a change of
//! the tenant's name or settings is written on it ([`crate::profile`]) instead of starting
//! the server again. Its `argv[0]` names its tenant
//! ([`server_marker`]), so that another process can tell which tenant a pid serves.
//! What runs is published in `tenantry.dedicated_servers`, for `tenants list` and `show`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex as SyncMutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use uuid::Uuid;

use super::child::{self, Running, free_port, hand_over, healthy, port_free, profile_of, stop};
use super::instances::{host_name, terminate_published};
use super::options::DedicatedOptions;
use crate::catalog::TenantCatalog;
use crate::error::Error;
use crate::layout::{Cx, OwnServer};
use crate::tenant::{Tenant, TenantStatus};

/// One tenant's server as it is now, in this process.
struct ServerState {
    pub pid: Option<u32>,
    /// Where it listens, or listened last and will again.
    pub port: Option<u16>,
    /// Seconds since it started; `None` when it does not run.
    pub uptime: Option<u64>,
    /// Starts after the first one.
    pub restarts: u32,
}

#[derive(Default)]
struct Slot {
    running: Option<Running>,
    /// The port it last listened on, taken again when free: a router's configuration
    /// (`deploy nginx`) stays valid across restarts.
    port: Option<u16>,
    /// Starts so far.
    starts: u32,
    /// Deaths since the last server that stayed up.
    failures: u32,
    retry_at: Option<Instant>,
    last_used: Option<Instant>,
}

/// The servers of the dedicated tenants this process has started.
pub(crate) struct Supervisor {
    options: DedicatedOptions,
    /// Where what runs is published.
    catalog: TenantCatalog,
    slots: SyncMutex<HashMap<Uuid, Arc<Mutex<Slot>>>>,
    reaper: SyncMutex<Option<tokio::task::JoinHandle<()>>>,
    /// Addresses of servers run elsewhere, as last resolved, and when.
    resolved: SyncMutex<HashMap<Uuid, (SocketAddr, Instant)>>,
    /// The mark this process's router puts on the requests it forwards, made at start and
    /// given to the servers it starts alone: no other process can pass for it.
    router_secret: String,
}

/// How long the address of a server run elsewhere is used before it is resolved again.
const RESOLVED_FOR: Duration = Duration::from_secs(5);

/// A server that stays up this long is healthy again: its next death starts at once.
const STABLE: Duration = Duration::from_secs(30);

impl Supervisor {
    /// Whether servers start with tenancy rather than on their first request.
    pub(crate) fn eager(&self) -> bool {
        self.options.eager && self.options.external.is_none()
    }

    pub(crate) fn new(options: DedicatedOptions, catalog: TenantCatalog) -> Arc<Self> {
        Arc::new(Self {
            options,
            catalog,
            slots: SyncMutex::default(),
            reaper: SyncMutex::default(),
            resolved: SyncMutex::default(),
            router_secret: hex::encode(rand::random::<[u8; 32]>()),
        })
    }

    /// The mark for the requests forwarded to the servers started here; `None` for servers
    /// run elsewhere, which were given none.
    pub(crate) fn router_secret(&self) -> Option<&str> {
        match self.options.external {
            Some(_) => None,
            None => Some(&self.router_secret),
        }
    }

    fn slot(self: &Arc<Self>, tenant: &Tenant) -> Arc<Mutex<Slot>> {
        let mut reaper = self.reaper.lock().expect("reaper");
        if reaper.is_none() {
            *reaper = Some(tokio::spawn(reap(Arc::downgrade(self))));
        }
        let mut slots = self.slots.lock().expect("slots");
        slots.entry(tenant.id).or_default().clone()
    }

    /// Where the tenant's server listens: started (and waited for) if it does not run.
    /// [`Error::Busy`] (503 with `Retry-After`) while it backs off after dying.
    pub(crate) async fn address(
        self: &Arc<Self>,
        cx: Cx<'_>,
        tenant: &Tenant,
        own: &dyn OwnServer,
    ) -> Result<SocketAddr, Error> {
        if let Some(template) = &self.options.external {
            return self.external(template, tenant).await;
        }
        let slot = self.slot(tenant);
        let mut slot = slot.lock().await;
        slot.last_used = Some(Instant::now());
        let mut latest = None;
        if let Some(running) = &mut slot.running {
            match running.child.try_wait() {
                Ok(None) if running.profile == profile_of(tenant) => {
                    return Ok(SocketAddr::from(([127, 0, 0, 1], running.port)));
                }
                Ok(None) => {
                    // This request may have read the tenant before the server's last restart:
                    // the server takes what the catalog holds now, so the requests that
                    // waited here through changes share one restart and none goes back.
                    let now = self.catalog.current(tenant.id).await?;
                    let now = now.unwrap_or_else(|| tenant.clone());
                    if running.profile == profile_of(&now) {
                        return Ok(SocketAddr::from(([127, 0, 0, 1], running.port)));
                    }
                    if hand_over(running, &now).await {
                        return Ok(SocketAddr::from(([127, 0, 0, 1], running.port)));
                    }
                    latest = Some(now);
                    tracing::info!(tenant = %tenant.slug, "its settings changed: restarting its server");
                    // Its requests in progress finish first; new ones wait for its successor.
                    stop(&mut running.child).await;
                    slot.running = None;
                }
                _ => {
                    let lived = running.started.elapsed();
                    slot.running = None;
                    self.died(&mut slot, lived);
                    self.publish(tenant.id, &slot).await;
                }
            }
        }
        if slot.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(Error::InstanceUnavailable(tenant.slug.to_string()));
        }
        if slot.port.is_none() {
            slot.port = self.published_port(tenant.id).await;
        }
        let tenant = latest.as_ref().unwrap_or(tenant);
        match self.start(cx, tenant, own, slot.port).await {
            Ok(running) => {
                let port = running.port;
                slot.port = Some(port);
                slot.starts += 1;
                slot.retry_at = None;
                slot.running = Some(running);
                self.publish(tenant.id, &slot).await;
                Ok(SocketAddr::from(([127, 0, 0, 1], port)))
            }
            Err(error) => {
                slot.starts += 1;
                self.died(&mut slot, Duration::ZERO);
                self.publish(tenant.id, &slot).await;
                tracing::warn!(tenant = %tenant.slug, %error, "the tenant's server did not start");
                Err(Error::InstanceUnavailable(tenant.slug.to_string()))
            }
        }
    }

    /// Starts the tenant's server again if it runs here with another name or settings than
    /// the tenant now has, so that requests reaching it directly (a router such as nginx)
    /// see the change too. A failure is logged; the next request retries.
    pub(crate) async fn refresh(
        self: &Arc<Self>,
        cx: Cx<'_>,
        tenant: &Tenant,
        own: &dyn OwnServer,
    ) {
        let stale = match self.slots.lock().expect("slots").get(&tenant.id) {
            Some(slot) => slot.try_lock().map_or(true, |slot| {
                slot.running
                    .as_ref()
                    .is_some_and(|r| r.profile != profile_of(tenant))
            }),
            None => false,
        };
        if stale
            && tenant.status == TenantStatus::Active
            && let Err(error) = self.address(cx, tenant, own).await
        {
            tracing::warn!(tenant = %tenant.slug, %error, "its server did not start again");
        }
    }

    /// The tenant's server did not answer at its address: it is taken for dead (killed if
    /// it still runs), and started again as [`Supervisor::address`] does.
    pub(crate) async fn restart(
        self: &Arc<Self>,
        cx: Cx<'_>,
        tenant: &Tenant,
        own: &dyn OwnServer,
    ) -> Result<SocketAddr, Error> {
        self.resolved.lock().expect("resolved").remove(&tenant.id);
        {
            let slot = self.slot(tenant);
            let mut slot = slot.lock().await;
            if let Some(running) = &mut slot.running {
                // The server the request failed on may be gone already, replaced by one that
                // answers (a settings change restarted it): that one is not killed.
                if matches!(running.child.try_wait(), Ok(None)) && healthy(running.port).await {
                    return Ok(SocketAddr::from(([127, 0, 0, 1], running.port)));
                }
            }
            if let Some(mut running) = slot.running.take() {
                running.child.kill().await.ok();
                let lived = running.started.elapsed();
                self.died(&mut slot, lived);
            }
        }
        self.address(cx, tenant, own).await
    }

    /// The address of a server run by something else, from `template` (`{slug}` replaced):
    /// resolved again after [`RESOLVED_FOR`], or after it failed to answer (a restarted
    /// container may have a new address), not on every request.
    async fn external(&self, template: &str, tenant: &Tenant) -> Result<SocketAddr, Error> {
        let known = self
            .resolved
            .lock()
            .expect("resolved")
            .get(&tenant.id)
            .copied();
        if let Some((address, at)) = known
            && at.elapsed() < RESOLVED_FOR
        {
            return Ok(address);
        }
        let target = template.replace("{slug}", tenant.slug.as_str());
        let found = match tokio::net::lookup_host(&target).await {
            Ok(mut found) => found.next(),
            Err(error) => {
                tracing::warn!(tenant = %tenant.slug, %target, %error, "the tenant's server has no address");
                None
            }
        };
        let address = found.ok_or_else(|| Error::InstanceUnavailable(tenant.slug.to_string()))?;
        self.resolved
            .lock()
            .expect("resolved")
            .insert(tenant.id, (address, Instant::now()));
        Ok(address)
    }

    /// Counts a death and sets when the next start may be.
    fn died(&self, slot: &mut Slot, lived: Duration) {
        if lived >= STABLE {
            slot.failures = 0;
        }
        slot.failures += 1;
        let wait = match slot.failures {
            1 => Duration::ZERO,
            n => (self.options.backoff * 2u32.saturating_pow(n - 2)).min(self.options.max_backoff),
        };
        slot.retry_at = Some(Instant::now() + wait);
    }

    async fn start(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        own: &dyn OwnServer,
        preferred: Option<u16>,
    ) -> Result<Running, Error> {
        let url = own.server_url(cx, tenant).await?;
        let hosts: Vec<String> = cx
            .catalog
            .details(&tenant.slug)
            .await?
            .domains
            .into_iter()
            .map(|d| d.domain)
            .collect();
        let port = match preferred.filter(|port| port_free(*port)) {
            Some(port) => port,
            None => self.fresh_port(tenant.id).await?,
        };
        child::spawn(
            &self.options,
            tenant,
            (&url, &self.router_secret),
            &hosts,
            port,
        )
        .await
    }

    /// The port the tenant's server had on this machine, as the catalog keeps it across
    /// restarts of this process: a router's configuration (`deploy nginx`) stays valid.
    async fn published_port(&self, tenant: Uuid) -> Option<u16> {
        let host = host_name();
        match self.catalog.published_instances().await {
            Ok(servers) => servers
                .into_iter()
                .find(|s| s.tenant_id == tenant && s.host == host)
                .and_then(|s| u16::try_from(s.port?).ok()),
            Err(error) => {
                tracing::warn!(%error, "cannot read the dedicated servers' ports");
                None
            }
        }
    }

    /// A free loopback port that no other tenant's server on this machine has had, so that
    /// a stale router configuration never sends one tenant's hosts to another's server.
    async fn fresh_port(&self, tenant: Uuid) -> Result<u16, Error> {
        let host = host_name();
        let taken: Vec<i32> = self
            .catalog
            .published_instances()
            .await?
            .into_iter()
            .filter(|s| s.tenant_id != tenant && s.host == host)
            .filter_map(|s| s.port)
            .collect();
        for _ in 0..64 {
            let port = free_port()?;
            if !taken.contains(&i32::from(port)) {
                return Ok(port);
            }
        }
        Err(Error::Incomplete(
            "no free port that no other tenant had".into(),
        ))
    }

    /// Records what runs for the tenant here, for `tenants list` and `show` in other
    /// processes; a failure to record is logged, never a failed request.
    async fn publish(&self, tenant: Uuid, slot: &Slot) {
        let state = state_of(slot);
        let started_at = state
            .uptime
            .map(|secs| chrono::Utc::now() - chrono::Duration::seconds(secs as i64));
        let published = self
            .catalog
            .publish_instance(
                tenant,
                &host_name(),
                (state.pid.map(i64::from), state.port.map(i32::from)),
                started_at,
                i32::try_from(state.restarts).unwrap_or(i32::MAX),
            )
            .await;
        if let Err(error) = published {
            tracing::warn!(%error, "cannot publish a dedicated server's state");
        }
    }

    async fn unpublish(&self, tenant: Uuid) {
        if let Err(error) = self.catalog.unpublish_instance(tenant, &host_name()).await {
            tracing::warn!(%error, "cannot publish a dedicated server's state");
        }
    }

    /// Stops the tenant's server, if it runs (the tenant is deleted, suspended or moved).
    pub(crate) async fn stop(&self, tenant: &Tenant) {
        let slot = self.slots.lock().expect("slots").remove(&tenant.id);
        if let Some(slot) = slot {
            let mut slot = slot.lock().await;
            if let Some(mut running) = slot.running.take() {
                stop(&mut running.child).await;
            }
        }
        self.unpublish(tenant.id).await;
    }
}

fn state_of(slot: &Slot) -> ServerState {
    let running = slot.running.as_ref();
    ServerState {
        pid: running.and_then(|r| r.child.id()),
        // Kept while it is stopped: its next start takes it again.
        port: running.map(|r| r.port).or(slot.port),
        uptime: running.map(|r| r.started.elapsed().as_secs()),
        restarts: slot.starts.saturating_sub(1),
    }
}

/// Stops servers idle for longer than the options allow, every second, until the
/// supervisor is gone.
async fn reap(supervisor: Weak<Supervisor>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(supervisor) = supervisor.upgrade() else {
            return;
        };
        let slots: Vec<_> = supervisor
            .slots
            .lock()
            .expect("slots")
            .iter()
            .map(|(id, slot)| (*id, slot.clone()))
            .collect();
        for (tenant, slot) in slots {
            let Ok(mut slot) = slot.try_lock() else {
                continue;
            };
            let idle = slot
                .last_used
                .is_some_and(|used| used.elapsed() >= supervisor.options.idle);
            if idle && let Some(mut running) = slot.running.take() {
                stop(&mut running.child).await;
                supervisor.publish(tenant, &slot).await;
            }
        }
    }
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("options", &self.options)
            .field("tenants", &self.slots.lock().map(|s| s.len()).unwrap_or(0))
            .finish()
    }
}

/// Stops `tenant`'s own server on this machine, whether this process or another supervises
/// it: before its data is renamed or dropped, or when it is suspended (routers in front of
/// the app, such as nginx, would otherwise still reach it).
pub(crate) async fn stop_everywhere(
    supervisor: Option<&Supervisor>,
    catalog: &TenantCatalog,
    tenant: &Tenant,
) -> Result<(), Error> {
    if let Some(supervisor) = supervisor {
        supervisor.stop(tenant).await;
    }
    terminate_published(catalog, tenant.id, Duration::from_secs(10)).await?;
    Ok(())
}
