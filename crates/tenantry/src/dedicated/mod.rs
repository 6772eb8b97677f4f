//! Dedicated tenants' own app servers: the supervisor that starts, watches and stops them
//! (`supervisor.rs`, as `options.rs` says), each as a child process (`child.rs`) checked through its health
//! endpoint (`health.rs`); what the supervisors publish in the catalog (`instances.rs`);
//! requests forwarded to them (`forward.rs`); and the operating system's processes
//! (`process.rs`, the crate's only `unsafe`).

#[cfg(feature = "dedicated")]
mod child;
#[cfg(feature = "dedicated")]
pub(crate) mod forward;
#[cfg(feature = "dedicated")]
mod health;
#[cfg(feature = "dedicated")]
mod instances;
#[cfg(feature = "dedicated")]
mod options;
#[cfg(feature = "dedicated")]
pub mod process;
#[cfg(feature = "dedicated")]
mod supervisor;

#[cfg(feature = "dedicated")]
pub use child::server_marker;
#[cfg(feature = "cli")]
pub(crate) use child::serves;
#[cfg(feature = "dedicated")]
pub(crate) use health::health;
#[cfg(feature = "dedicated")]
pub use instances::Instance;
#[cfg(feature = "dedicated")]
pub(crate) use instances::{host_name, terminate_published};
#[cfg(feature = "dedicated")]
pub use options::DedicatedOptions;
#[cfg(feature = "dedicated")]
pub(crate) use supervisor::{Supervisor, stop_everywhere};

/// Set by the router on the requests it forwards to a dedicated tenant's server.
pub const ROUTER_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-tenantry-router");

/// The mount path of a tenant identified by path, set by the router on the requests it
/// forwards to the tenant's own server.
pub(crate) const MOUNT_HEADER: &str = "x-forwarded-prefix";
