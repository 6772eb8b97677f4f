//! [`TenantCache`]: a handler's cache, its keys always its own tenant's.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::cache::{Cache, scoped_key};
use crate::http::rejection::TenancyRejection;
use crate::http::scope::RequestScope;

/// The request's own tenant's cache: every key is scoped to the tenant (and its current
/// generation) by the library, so no key of one tenant can name another's value.
pub struct TenantCache {
    cache: Cache,
    tenant: Uuid,
    flush_after_commit: Arc<AtomicBool>,
}

impl<S: Send + Sync> FromRequestParts<S> for TenantCache {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let scope = RequestScope::of(parts)?;
        Ok(Self {
            cache: scope.cache.clone(),
            tenant: scope.tenant.id,
            flush_after_commit: scope.flush_cache.clone(),
        })
    }
}

impl TenantCache {
    /// The value cached at `key`, or else `make`'s, cached for `ttl`. The tenant's
    /// generation is read before `make` runs, so a value made from data a concurrent write
    /// then changed is filed under the generation that write's [`flush`](Self::flush)
    /// leaves behind, and never served after it. When the cache cannot be read, `make` runs.
    pub async fn get_or_insert_with<T, E, Make, Made>(
        &self,
        key: &str,
        ttl: Duration,
        make: Make,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        Make: FnOnce() -> Made,
        Made: Future<Output = Result<T, E>>,
    {
        let Some(generation) = self.cache.generation(self.tenant).await else {
            return make().await;
        };
        let full = scoped_key(self.tenant, generation, key);
        if let Some(bytes) = self.cache.get(&full).await
            && let Ok(value) = serde_json::from_slice(&bytes)
        {
            return Ok(value);
        }
        let value = make().await?;
        if let Ok(bytes) = serde_json::to_vec(&value) {
            self.cache.set(full, bytes, ttl).await;
        }
        Ok(value)
    }

    /// The value cached at `key`, if any.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let generation = self.cache.generation(self.tenant).await?;
        let bytes = self
            .cache
            .get(&scoped_key(self.tenant, generation, key))
            .await?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Caches `value` at `key` for `ttl`.
    pub async fn insert<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let (Some(generation), Ok(bytes)) = (
            self.cache.generation(self.tenant).await,
            serde_json::to_vec(value),
        ) else {
            return;
        };
        let full = scoped_key(self.tenant, generation, key);
        self.cache.set(full, bytes, ttl).await;
    }

    /// Forgets the value at `key`. A read that began before a write can still file its old
    /// value again after this; to leave no stale value behind a write, use
    /// [`flush`](Self::flush).
    pub async fn remove(&self, key: &str) {
        if let Some(generation) = self.cache.generation(self.tenant).await {
            let full = scoped_key(self.tenant, generation, key);
            self.cache.remove(&full).await;
        }
    }

    /// Forgets every value of the tenant now, and again once the request's transaction has
    /// committed, before its response leaves: no read that began before the commit can leave
    /// a value from before it in the cache. Call it from any handler that writes what a
    /// cached value was made from.
    pub async fn flush(&self) {
        self.cache.flush_tenant(self.tenant).await;
        self.flush_after_commit.store(true, Ordering::Release);
    }
}
