//! [`SingleTenantLayer`]: serves every request as one fixed tenant, with no identification.
//!
//! For a process that serves a single tenant (the fully isolated architecture), and as the
//! "tenancy off" baseline of the benchmarks: the same handlers, the same [`TenantDb`]
//! extractor, but transactions open with a plain `BEGIN`, so the pool's connections must
//! already be in the tenant's schema (its own database, or `search_path` in the connect
//! options).
//!
//! [`TenantDb`]: crate::TenantDb

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use sqlx::{PgPool, SqlitePool};
use tower::{Layer, Service};

use crate::db::DbPool;
use crate::http::layer::{serve_in_scope, take_ready};
use crate::http::scope::RequestScope;
use crate::pooler::Pooler;
use crate::pools::PoolLease;
use crate::tenant::Tenant;

/// Serves every request as `tenant`, on `pool`.
#[derive(Clone)]
pub struct SingleTenantLayer {
    pool: PoolLease,
    tenant: Arc<Tenant>,
}

impl SingleTenantLayer {
    /// Every request is `tenant`'s; the connections of `pool` must already be in its
    /// schema.
    pub fn new(pool: PgPool, tenant: Tenant) -> Self {
        Self::on(DbPool::Postgres(pool), tenant)
    }

    /// Every request is `tenant`'s, on its SQLite file.
    pub fn sqlite(pool: SqlitePool, tenant: Tenant) -> Self {
        Self::on(DbPool::Sqlite(pool), tenant)
    }

    fn on(pool: DbPool, tenant: Tenant) -> Self {
        Self {
            pool: PoolLease::unclaimed(pool, Pooler::None),
            tenant: Arc::new(tenant),
        }
    }
}

impl<S> Layer<S> for SingleTenantLayer {
    type Service = SingleTenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SingleTenantService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`SingleTenantLayer`].
#[derive(Clone)]
pub struct SingleTenantService<S> {
    inner: S,
    layer: SingleTenantLayer,
}

impl<S> Service<Request> for SingleTenantService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        let scope = RequestScope::new(
            self.layer.pool.clone(),
            self.layer.tenant.clone(),
            Arc::from("BEGIN"),
            String::new(),
        );
        Box::pin(async move { Ok(serve_in_scope(inner, request, scope).await) })
    }
}

impl std::fmt::Debug for SingleTenantLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleTenantLayer")
            .field("tenant", &self.tenant.slug)
            .field("pool", &self.pool)
            .finish()
    }
}

impl<S> std::fmt::Debug for SingleTenantService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleTenantService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}
