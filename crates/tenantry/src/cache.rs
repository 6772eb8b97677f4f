//! [`Cache`]: values cached per tenant, in this process or in Redis. Handlers reach it only
//! through `TenantCache` (in `http`), whose keys are always their own tenant's: there is no
//! API that takes a raw key.
//!
//! Each tenant's keys carry its generation: flushing a tenant moves it to the next one, so
//! every entry written before is never read again (and expires by its TTL). A value computed
//! from a read that began before a flush is stored under the generation that read saw, so a
//! flush after a write's commit leaves no stale read behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use crate::error::Error;

/// How long Redis is left alone after it failed: lookups are misses meanwhile.
const REDIS_BACKOFF: Duration = Duration::from_secs(1);

/// Where cached values live. Cheap to clone; the default is in process.
#[derive(Clone)]
pub struct Cache {
    store: Store,
}

#[derive(Clone)]
enum Store {
    /// Up to a number of bytes in this process, with each tenant's generation.
    InProcess {
        values: moka::future::Cache<String, (Instant, Arc<[u8]>)>,
        generations: Arc<Mutex<HashMap<Uuid, u64>>>,
    },
    Redis(Arc<Redis>),
}

struct Redis {
    client: redis::Client,
    url: String,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    /// Until when Redis is not asked, after a failure.
    down_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.store {
            Store::InProcess { values, .. } => f
                .debug_struct("Cache::InProcess")
                .field("bytes", &values.weighted_size())
                .finish(),
            Store::Redis(redis) => f
                .debug_struct("Cache::Redis")
                .field("url", &redis.url)
                .finish(),
        }
    }
}

impl Default for Cache {
    /// In process, up to 64 MiB.
    fn default() -> Self {
        Self::in_process(64 << 20)
    }
}

impl Cache {
    /// A cache in this process holding up to `bytes` of values. Another process does not
    /// see it: several servers of one deployment share [`Cache::redis`] instead.
    pub fn in_process(bytes: u64) -> Self {
        let values = moka::future::Cache::builder()
            .max_capacity(bytes)
            .weigher(|key: &String, (_, value): &(Instant, Arc<[u8]>)| {
                u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            store: Store::InProcess {
                values,
                generations: Arc::default(),
            },
        }
    }

    /// A cache in the Redis at `url` (`redis://host:6379/0`), shared by every process using
    /// it. It connects on first use; while Redis cannot be reached, lookups are misses and
    /// writes are dropped, with a warning.
    pub fn redis(url: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| Error::Invalid {
            field: "redis url",
            message: format!("'{}' is not a Redis URL: {e}", redact(url)),
        })?;
        Ok(Self {
            store: Store::Redis(Arc::new(Redis {
                client,
                url: redact(url),
                connection: tokio::sync::OnceCell::new(),
                down_until: Mutex::new(None),
            })),
        })
    }

    /// Forgets every value of `tenant` (its generation moves on).
    pub async fn flush_tenant(&self, tenant: Uuid) {
        match &self.store {
            Store::InProcess { generations, .. } => {
                let mut generations = generations.lock().unwrap_or_else(|e| e.into_inner());
                *generations.entry(tenant).or_default() += 1;
            }
            Store::Redis(redis) => {
                let incr = redis::cmd("INCR").arg(generation_key(tenant)).clone();
                redis.run::<i64>(incr).await;
            }
        }
    }

    /// `tenant`'s generation now: the part of its keys a flush changes.
    pub(crate) async fn generation(&self, tenant: Uuid) -> Option<u64> {
        match &self.store {
            Store::InProcess { generations, .. } => {
                let generations = generations.lock().unwrap_or_else(|e| e.into_inner());
                Some(generations.get(&tenant).copied().unwrap_or_default())
            }
            Store::Redis(redis) => {
                let get = redis::cmd("GET").arg(generation_key(tenant)).clone();
                redis
                    .run::<Option<u64>>(get)
                    .await
                    .map(Option::unwrap_or_default)
            }
        }
    }

    /// The bytes at `key` (a full key, with its tenant and generation), if fresh.
    pub(crate) async fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        match &self.store {
            Store::InProcess { values, .. } => match values.get(key).await {
                Some((expires, value)) if expires > Instant::now() => Some(value),
                Some(_) => {
                    values.invalidate(key).await;
                    None
                }
                None => None,
            },
            Store::Redis(redis) => {
                let get = redis::cmd("GET").arg(key).clone();
                redis
                    .run::<Option<Vec<u8>>>(get)
                    .await
                    .flatten()
                    .map(Arc::from)
            }
        }
    }

    /// Stores `value` at `key` (a full key) for `ttl`.
    pub(crate) async fn set(&self, key: String, value: Vec<u8>, ttl: Duration) {
        match &self.store {
            Store::InProcess { values, .. } => {
                values
                    .insert(key, (Instant::now() + ttl, Arc::from(value)))
                    .await;
            }
            Store::Redis(redis) => {
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let set = redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(millis)
                    .clone();
                redis.run::<()>(set).await;
            }
        }
    }

    /// Removes the value at `key` (a full key).
    pub(crate) async fn remove(&self, key: &str) {
        match &self.store {
            Store::InProcess { values, .. } => values.invalidate(key).await,
            Store::Redis(redis) => {
                redis.run::<i64>(redis::cmd("DEL").arg(key).clone()).await;
            }
        }
    }
}

impl Redis {
    /// Runs `command`; `None` when Redis fails (logged) or failed within the last second.
    async fn run<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Option<T> {
        {
            let down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
            if down.is_some_and(|until| Instant::now() < until) {
                return None;
            }
        }
        let result = async {
            let connection = self
                .connection
                .get_or_try_init(|| {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(Duration::from_millis(500)))
                        .set_response_timeout(Some(Duration::from_millis(500)))
                        .set_number_of_retries(1);
                    ConnectionManager::new_with_config(self.client.clone(), config)
                })
                .await?;
            command.query_async::<T>(&mut connection.clone()).await
        };
        match result.await {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(%error, redis = %self.url, "the cache is unavailable: a miss");
                let mut down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
                *down = Some(Instant::now() + REDIS_BACKOFF);
                None
            }
        }
    }
}

fn generation_key(tenant: Uuid) -> String {
    format!("tenantry:{tenant}:generation")
}

/// The full key of `key` in `tenant`'s generation `generation`.
pub(crate) fn scoped_key(tenant: Uuid, generation: u64, key: &str) -> String {
    format!("tenantry:{tenant}:{generation}:{key}")
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
