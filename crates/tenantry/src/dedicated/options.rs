//! How the dedicated tenants' servers are run.

use std::ffi::OsString;
use std::time::Duration;

/// How the dedicated tenants' servers are run.
#[derive(Debug, Clone)]
pub struct DedicatedOptions {
    /// The program and its arguments that serve one tenant (see the module documentation
    /// for its environment); it must answer `GET /health` with 200 once it is ready.
    pub command: Vec<OsString>,
    /// A server with no request for this long is stopped; the next request starts it again.
    pub idle: Duration,
    /// Start every active dedicated tenant's server when tenancy starts, instead of on its
    /// first request.
    pub eager: bool,
    /// How long a start may take until its health endpoint answers.
    pub start_timeout: Duration,
    /// The wait before the second start of a server that keeps dying; it doubles with each
    /// death, up to `max_backoff`. The first start after a death is at once.
    pub backoff: Duration,
    /// The longest wait between starts of a server that keeps dying.
    pub max_backoff: Duration,
    /// The settings every tenant's server is given, besides its own (see the module
    /// documentation). Nothing else of this process's environment reaches it: no secret of
    /// the platform's, such as the owner's URL or the app role's password.
    pub env: Vec<(OsString, OsString)>,
    /// Run each PostgreSQL tenant's server as a user of its own: uid and gid `uid_base +
    /// port` (its port is its own on this machine and kept across restarts). The uids
    /// `uid_base ..= uid_base + 65535` must be unused on the machine, and the supervisor must
    /// run as root. A SQLite tenant's server stays the supervisor's user: its file's
    /// directory is shared with the other tenants' files.
    pub uid_base: Option<u32>,
    /// Where the servers run already, started by something else (Compose, Kubernetes):
    /// `host:port`, with `{slug}` standing for the tenant's slug. Requests are forwarded
    /// there (resolved again every few seconds, and after a failure), and no server is
    /// started here.
    pub external: Option<String>,
}

impl DedicatedOptions {
    /// `command`, with the defaults: started on first request, stopped after 10 minutes
    /// idle, 10 s to start, backoff from 500 ms to 30 s.
    pub fn new(command: Vec<OsString>) -> Self {
        Self {
            command,
            idle: Duration::from_secs(600),
            eager: false,
            start_timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            env: Vec::new(),
            uid_base: None,
            external: None,
        }
    }
}
