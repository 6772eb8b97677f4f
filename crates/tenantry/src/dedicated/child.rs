//! A dedicated tenant's server as a child process: started with its environment and its
//! secrets on standard input, checked through its health endpoint, handed changes of its
//! name and settings, and stopped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use uuid::Uuid;

use super::health::health;
use super::options::DedicatedOptions;
use super::process;
use crate::error::Error;
use crate::profile;
use crate::tenant::Tenant;

/// A started server.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) started: Instant,
    /// The name and settings it serves with: a server cannot read the catalog, so a change
    /// is written to it (see [`hand_over`]), or it is started again.
    pub(crate) profile: (String, serde_json::Value),
    /// Its standard input, on which changes of its profile are written.
    pub(crate) control: Option<ChildStdin>,
}

/// What a tenant's server is given of its catalog row besides its id and slug.
pub(crate) fn profile_of(tenant: &Tenant) -> (String, serde_json::Value) {
    (tenant.name.clone(), tenant.settings.clone())
}

/// Starts `tenant`'s server on `port`, hands it its database URL and the router's mark
/// on standard input, and waits until it answers its health check.
pub(crate) async fn spawn(
    options: &DedicatedOptions,
    tenant: &Tenant,
    (url, mark): (&str, &str),
    hosts: &[String],
    port: u16,
) -> Result<Running, Error> {
    let Some((program, args)) = options.command.split_first() else {
        return Err(Error::Incomplete(
            "no command serves dedicated tenants".into(),
        ));
    };
    let mut command = Command::new(program);
    command
        .arg0(server_marker(tenant.id))
        .args(args)
        .env_clear()
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .env("TENANT_ID", tenant.id.to_string())
        .env("TENANT_SLUG", tenant.slug.as_str())
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", "-")
        .env("TENANT_NAME", &tenant.name)
        .env("TENANT_SETTINGS", tenant.settings.to_string())
        .env("TENANT_HOSTS", hosts.join(","))
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(base) = options.uid_base
        && url.starts_with("postgres")
    {
        let id = base.saturating_add(u32::from(port));
        command.uid(id).gid(id);
    }
    process::die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| Error::Incomplete(format!("cannot start {}: {e}", program.display())))?;
    let mut control = child.stdin.take();
    if let Some(stdin) = &mut control {
        // Written whole or not at all: the pipe holds far more than one line.
        let handed = format!("{url}\n{mark}\n");
        if let Err(error) = stdin.write_all(handed.as_bytes()).await {
            child.kill().await.ok();
            return Err(Error::Incomplete(format!(
                "cannot hand it its database: {error}"
            )));
        }
    }
    wait_healthy(&mut child, port, options.start_timeout).await?;
    Ok(Running {
        child,
        port,
        started: Instant::now(),
        profile: profile_of(tenant),
        control,
    })
}

/// SIGTERM, then SIGKILL if it has not exited within 2 s.
pub(crate) async fn stop(child: &mut Child) {
    // Our own child, not reaped yet: its pid is still its own.
    if let Some(pid) = child.id()
        && process::signal(i64::from(pid), libc::SIGTERM).is_ok()
        && tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .is_ok()
    {
        return;
    }
    child.kill().await.ok();
}

/// Waits up to `within` for a server just started on `port` to answer its health check;
/// kills it if it does not.
async fn wait_healthy(child: &mut Child, port: u16, within: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + within;
    loop {
        if healthy(port).await {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Incomplete(format!("it exited at once ({status})")));
        }
        if Instant::now() >= deadline {
            child.kill().await.ok();
            return Err(Error::Incomplete(
                "its health endpoint did not answer".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether nothing listens on this loopback port now.
pub(crate) fn port_free(port: u16) -> bool {
    // Bound as the server's listener binds it (tokio sets SO_REUSEADDR): the closed
    // connections of the server that listened there before, waiting out TIME_WAIT, do not
    // hold the port, so a restarted server keeps it and a router's configuration stays valid.
    tokio::net::TcpSocket::new_v4().is_ok_and(|socket| {
        socket.set_reuseaddr(true).is_ok()
            && socket
                .bind(SocketAddr::from(([127, 0, 0, 1], port)))
                .is_ok()
    })
}

/// A loopback port nothing listens on now.
pub(crate) fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Incomplete(format!("no free port: {e}")))?;
    Ok(listener
        .local_addr()
        .map_err(|e| Error::Incomplete(e.to_string()))?
        .port())
}

/// Writes `tenant`'s name and settings to its running server, and waits (a second at most)
/// until its health endpoint says it serves with them. Whether it does: if not, the caller
/// starts it again.
pub(crate) async fn hand_over(running: &mut Running, tenant: &Tenant) -> bool {
    let Some(control) = &mut running.control else {
        return false;
    };
    let (name, settings) = profile_of(tenant);
    let line = profile::line(&name, &settings);
    if control.write_all(line.as_bytes()).await.is_err() {
        running.control = None;
        return false;
    }
    let expected = profile::digest(&name, &settings);
    let address = SocketAddr::from(([127, 0, 0, 1], running.port));
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if profile_served(address).await.as_deref() == Some(expected.as_str()) {
            running.profile = (name, settings);
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// Whether `GET /health` on the port answers 200 within a second.
pub(crate) async fn healthy(port: u16) -> bool {
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    health(local, "localhost", Duration::from_secs(1))
        .await
        .is_ok_and(|health| health.status == 200)
}

/// The profile digest a dedicated server at `address` serves with, if it answers.
async fn profile_served(address: SocketAddr) -> Option<String> {
    let health = health(address, "localhost", Duration::from_secs(1)).await;
    health.ok().and_then(|health| health.profile)
}

/// The `argv[0]` of the server of `tenant`: readable in `/proc/<pid>/cmdline` by any
/// process, even once the server has made itself undumpable.
pub fn server_marker(tenant: Uuid) -> String {
    format!("tenantry-server:{tenant}")
}

/// Whether process `pid` runs and is the server of `tenant` (its `argv[0]` says so).
pub(crate) fn serves(pid: i64, tenant: Uuid) -> bool {
    process::runs(pid) && process::argv0(pid) == Some(server_marker(tenant).into_bytes())
}
