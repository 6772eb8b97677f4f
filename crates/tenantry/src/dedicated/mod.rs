//! Dedicated tenants' own app servers: the supervisor that starts, watches and stops them
//! (`supervisor.rs`, as `options.rs` says), each as a child process (`child.rs`) checked through its health
//! endpoint (`health.rs`); what the supervisors publish in the catalog (`instances.rs`);
//! requests forwarded to them (`forward.rs`); and the operating system's processes
//! (`process.rs`, the crate's only `unsafe`).

mod child;
pub(crate) mod forward;
mod health;
mod instances;
mod options;
pub mod process;
mod supervisor;

pub use child::server_marker;
#[cfg(feature = "cli")]
pub(crate) use child::serves;
pub(crate) use health::health;
pub use instances::Instance;
pub(crate) use instances::{host_name, terminate_published};
pub use options::DedicatedOptions;
pub(crate) use supervisor::{Supervisor, stop_everywhere};
