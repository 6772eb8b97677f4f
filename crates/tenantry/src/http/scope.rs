//! [`RequestScope`]: the tenant of one request and its lazily opened transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use tokio::sync::Mutex;

use crate::cache::Cache;
use crate::catalog::TenantCatalog;
use crate::files::Files;
use crate::http::rejection::TenancyRejection;
use crate::pools::PoolLease;
use crate::settings::SettingsSchema;
use crate::tenancy::Tenancy;
use crate::tenant::Tenant;
use crate::transaction::{JobsWake, TenantTransaction};

/// Where a request's settings changes go.
#[derive(Clone)]
pub(crate) enum SettingsWriter {
    /// Straight to the catalog.
    Catalog(Tenancy),
    /// Back through the router, checked here against the app's schema first.
    Router(SettingsSchema),
    /// Nowhere: this server cannot change them.
    None,
}

/// Placed in the request's extensions by the tenancy layer; read by the extractors.
#[derive(Clone)]
pub(crate) struct RequestScope {
    pub(crate) pool: PoolLease,
    pub(crate) tenant: Arc<Tenant>,
    /// The statement that opens the request's transaction.
    pub(crate) begin: Arc<str>,
    pub(crate) mount: Arc<str>,
    pub(crate) transaction: Arc<Mutex<Option<TenantTransaction>>>,
    /// For a request that may write: the catalog, checked before the commit.
    fence: Option<TenantCatalog>,
    /// Where a change to the tenant's settings goes.
    pub(crate) settings: SettingsWriter,
    /// The tenant's cache, and whether to flush it once the transaction commits.
    pub(crate) cache: Cache,
    pub(crate) flush_cache: Arc<AtomicBool>,
    /// What the transaction's commit calls when it enqueued jobs.
    pub(crate) jobs_wake: Option<JobsWake>,
    /// Where tenants' files are kept, if anywhere.
    pub(crate) files: Option<Files>,
}

impl RequestScope {
    pub(crate) fn new(
        pool: PoolLease,
        tenant: Arc<Tenant>,
        begin: Arc<str>,
        mount: String,
        cache: Cache,
    ) -> Self {
        Self {
            pool,
            tenant,
            begin,
            mount: mount.into(),
            transaction: Arc::default(),
            fence: None,
            settings: SettingsWriter::None,
            cache,
            flush_cache: Arc::default(),
            jobs_wake: None,
            files: None,
        }
    }

    /// Handlers' `TenantFiles` are the tenant's in `files`.
    pub(crate) fn with_files(self, files: Option<Files>) -> Self {
        Self { files, ..self }
    }

    /// Jobs the request's transaction enqueues are announced through `wake`.
    pub(crate) fn waking_jobs(self, wake: JobsWake) -> Self {
        Self {
            jobs_wake: Some(wake),
            ..self
        }
    }

    /// Changes to the tenant's settings go through `writer`.
    pub(crate) fn writing_settings(self, writer: SettingsWriter) -> Self {
        Self {
            settings: writer,
            ..self
        }
    }

    /// Checks the tenant's catalog row before committing: a write that waited on a move's
    /// lock ran on the placement the tenant just left, whose data the move then removes, so
    /// it is rolled back (503) instead of acknowledged.
    pub(crate) fn fenced(self, catalog: TenantCatalog) -> Self {
        Self {
            fence: Some(catalog),
            ..self
        }
    }

    pub(crate) fn of(parts: &Parts) -> Result<&Self, TenancyRejection> {
        parts.extensions.get::<Self>().ok_or_else(|| {
            tracing::error!("a tenant extractor was used on a route outside TenancyLayer");
            TenancyRejection::Internal("Tenant context missing.")
        })
    }

    /// Ends the request's transaction: commits it when the response is a success (below 400),
    /// rolls it back otherwise.
    pub(crate) async fn finish(self, response: Response) -> Response {
        let transaction = match self.transaction.try_lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => {
                tracing::error!("a TenantDb outlived its request; its transaction is abandoned");
                return TenancyRejection::Internal("Transaction still in use.").into_response();
            }
        };
        let Some(transaction) = transaction else {
            return response;
        };
        if response.status().as_u16() < 400 {
            if let Some(catalog) = &self.fence {
                let refused = match catalog.changed_since(&self.tenant).await {
                    Ok(false) => None,
                    Ok(true) => Some(TenancyRejection::Changed(self.tenant.slug.to_string())),
                    Err(error) => Some(TenancyRejection::from(error)),
                };
                if let Some(refused) = refused {
                    if let Err(error) = transaction.rollback().await {
                        tracing::warn!(%error, "rollback failed; the connection will be discarded");
                    }
                    return refused.into_response();
                }
            }
            match transaction.commit().await {
                Ok(()) => {
                    if self.flush_cache.load(Ordering::Acquire) {
                        self.cache.flush_tenant(self.tenant.id).await;
                    }
                    response
                }
                Err(error) => TenancyRejection::from(error).into_response(),
            }
        } else {
            if let Err(error) = transaction.rollback().await {
                tracing::warn!(%error, "rollback failed; the connection will be discarded");
            }
            response
        }
    }
}
