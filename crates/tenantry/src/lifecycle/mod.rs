//! The tenant lifecycle: create, update, delete and domains ([`tenants`]), rolling migrations
//! out ([`rollout`]) and upgrading dedicated tenants in waves ([`upgrade`]), moves between layouts ([`moving`]), export and import ([`export`]).
//! Each operation is a short orchestration over [`commit`], the one protocol by which a change
//! to a tenant's tables commits with the catalog's rows, or is undone.

mod audit;
mod commit;
mod custom_domains;
mod every;
pub(crate) use every::Every;
#[cfg(feature = "postgres")]
pub(crate) mod export;
#[cfg(feature = "postgres")]
pub(crate) mod moving;
mod pending;
mod retention;
pub(crate) mod rollout;
mod tenants;
#[cfg(feature = "dedicated")]
mod upgrade;

#[cfg(feature = "postgres")]
pub use crate::rows::TableRows;
pub use custom_domains::{DomainCheck, DomainCheckSchedule, DomainChecks, MAX_CLAIMS};
#[cfg(feature = "postgres")]
pub use export::{EXPORT_FORMAT, EXPORT_VERSION, ExportedFile, TenantExport};
#[cfg(feature = "postgres")]
pub use moving::MoveTarget;
#[cfg(feature = "testing")]
pub use moving::{MoveFault, MoveStage};
pub use pending::PendingPool;
pub use retention::PurgeSweep;
pub use rollout::{MigrateOptions, MigrationReport, TenantMigration, TenantOutcome};
pub use tenants::{NewTenant, TenantUpdate};
#[cfg(feature = "dedicated")]
pub use upgrade::{ServerUpgrade, Upgraded};
