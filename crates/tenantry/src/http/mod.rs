//! Serving tenants over HTTP: the tenancy layer, its extractors and rejections, the server
//! with its limits, the single-tenant layer and the platform API.

mod client;
mod connection;
mod extract;
#[cfg(feature = "dedicated")]
mod forwarded;
mod identify;
pub mod input;
mod layer;
pub mod platform_api;
mod rejection;
mod scope;
mod server;
mod settings_update;
mod single_tenant;
mod site_url;
mod tenant_cache;
mod tenant_domains;
mod tenant_files;
mod tls_ask;

pub use crate::dedicated::ROUTER_HEADER;
pub use crate::files::TenantFiles;
pub use client::{ClientAddr, TrustedProxies};
pub use extract::{LazyTenantDb, MountPath, TenantDb};
pub use layer::{TenancyLayer, TenancyService};
pub use rejection::TenancyRejection;
pub use server::{ServerLimits, serve};
pub use settings_update::{SETTINGS_HEADER, SettingsUpdate};
pub use single_tenant::{SingleTenantLayer, SingleTenantService};
pub use site_url::site_url;
pub use tenant_cache::TenantCache;
pub use tenant_domains::TenantDomains;
pub use tls_ask::{TLS_ASK_PATH, tls_ask};
