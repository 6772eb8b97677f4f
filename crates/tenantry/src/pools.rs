//! [`Pools`]: the connection pools to wherever tenants live, opened lazily.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;

use crate::error::Error;
use crate::servers::{ServerName, ServerUrl, Servers};
use crate::tenancy::connect_options;
use crate::tenant::Placement;

/// A pool per server, keyed by URL (so a server removed and added again elsewhere gets a new
/// pool). Every pool copies the catalog pool's settings. Cheap to clone.
#[derive(Clone)]
pub struct Pools {
    catalog: PgPool,
    servers: Servers,
    by_url: Arc<RwLock<HashMap<String, PgPool>>>,
}

impl Pools {
    /// Pools for the tenants registered in the catalog behind `catalog`.
    pub fn new(catalog: PgPool) -> Self {
        Self {
            servers: Servers::new(catalog.clone()),
            catalog,
            by_url: Arc::default(),
        }
    }

    /// The catalog's pool, which also serves tenants placed on no server.
    pub fn catalog(&self) -> &PgPool {
        &self.catalog
    }

    /// The server registry.
    pub fn servers(&self) -> &Servers {
        &self.servers
    }

    /// The pool that reaches a tenant with this placement.
    pub async fn for_placement(&self, placement: &Placement) -> Result<PgPool, Error> {
        match (&placement.server, &placement.server_url) {
            (None, _) => Ok(self.catalog.clone()),
            (Some(_), Some(url)) => self.by_url(url),
            (Some(name), None) => self.for_server(Some(name)).await,
        }
    }

    /// The pool of a registered server; the catalog's own for `None`.
    pub async fn for_server(&self, server: Option<&ServerName>) -> Result<PgPool, Error> {
        match server {
            None => Ok(self.catalog.clone()),
            Some(name) => self.by_url(&self.servers.url(name).await?),
        }
    }

    fn by_url(&self, url: &ServerUrl) -> Result<PgPool, Error> {
        if let Some(pool) = self.by_url.read().expect("pool map").get(url.expose()) {
            return Ok(pool.clone());
        }
        let pool = self
            .catalog
            .options()
            .clone()
            .connect_lazy_with(connect_options(url.expose())?);
        let mut pools = self.by_url.write().expect("pool map");
        Ok(pools.entry(url.expose().to_owned()).or_insert(pool).clone())
    }
}
