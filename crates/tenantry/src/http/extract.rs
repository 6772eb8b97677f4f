//! Extractors for handlers behind [`TenancyLayer`](crate::TenancyLayer).

use std::ops::{Deref, DerefMut};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::sync::{OwnedMappedMutexGuard, OwnedMutexGuard};

use crate::http::rejection::TenancyRejection;
use crate::http::scope::RequestScope;
use crate::settings::{AppSettings, TenantSettings};
use crate::tenant::Tenant;
use crate::transaction::TenantTransaction;

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Tenant::clone(&RequestScope::of(parts)?.tenant))
    }
}

/// The tenant's settings, from the cached catalog row: no query. A change made anywhere
/// reaches every server within the catalog cache's delay.
impl<S: Send + Sync, A: AppSettings> FromRequestParts<S> for TenantSettings<A> {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let tenant = &RequestScope::of(parts)?.tenant;
        Ok(tenant.parsed_settings.get(&tenant.settings))
    }
}

/// The path the tenant's routes are mounted under for this request: `""` when the tenant came
/// from the host, `/t/<slug>` when it came from the path prefix. Use it to build links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for MountPath {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(RequestScope::of(parts)?.mount.to_string()))
    }
}

/// The request's database handle, inside a transaction in the tenant's context.
///
/// The transaction opens when a handler (or another extractor) first asks for a `TenantDb`,
/// and every `TenantDb` of the request shares it. When the handler returns, the layer commits
/// it if the response status is below 400 and rolls it back otherwise; a panic or a dropped
/// request rolls it back too. It derefs to [`TenantTransaction`] (and so to [`Db`](crate::Db)):
/// `db.query("SELECT ...").fetch_all()`.
pub struct TenantDb(OwnedMappedMutexGuard<Option<TenantTransaction>, TenantTransaction>);

impl<S: Send + Sync> FromRequestParts<S> for TenantDb {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        TenantDb::open(RequestScope::of(parts)?).await
    }
}

impl TenantDb {
    /// The request's transaction, begun now if no handle has begun it.
    async fn open(scope: &RequestScope) -> Result<Self, TenancyRejection> {
        let mut slot = scope.transaction.clone().try_lock_owned().map_err(|_| {
            tracing::error!("two TenantDb handles are alive at once in one request");
            TenancyRejection::Internal("TenantDb is already in use.")
        })?;
        if slot.is_none() {
            *slot = Some(
                TenantTransaction::begin_with(
                    &scope.pool,
                    scope.tenant.clone(),
                    scope.begin.clone(),
                )
                .await?
                .waking(scope.jobs_wake.clone()),
            );
        }
        Ok(Self(OwnedMutexGuard::map(slot, |slot| {
            slot.as_mut().expect("the transaction was opened above")
        })))
    }
}

/// A [`TenantDb`] begun only when [`open`](Self::open) is called: for a handler that may
/// refuse a request (a throttle, a check of its body) before it needs the database, so a
/// refusal holds no connection (and, on SQLite, not the tenant's write lock).
pub struct LazyTenantDb(RequestScope);

impl LazyTenantDb {
    /// The request's transaction, as the [`TenantDb`] extractor gives it.
    pub async fn open(&self) -> Result<TenantDb, TenancyRejection> {
        TenantDb::open(&self.0).await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LazyTenantDb {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(RequestScope::of(parts)?.clone()))
    }
}

impl Deref for TenantDb {
    type Target = TenantTransaction;

    fn deref(&self) -> &TenantTransaction {
        &self.0
    }
}

impl DerefMut for TenantDb {
    fn deref_mut(&mut self) -> &mut TenantTransaction {
        &mut self.0
    }
}

impl std::fmt::Debug for TenantDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TenantDb").field(&*self.0).finish()
    }
}
