//! Bounds on the unauthenticated work of sign-up and login: password hashing on a few
//! threads of its own with a short queue ([`PasswordHasher`]), and a rate per client address
//! and per tenant ([`Throttle`]). [`AuthLimits`] holds both; the [`AuthGate`] extractor
//! applies the rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tenantry::Tenant;
use tenantry::http::ClientAddr;
use uuid::Uuid;

use crate::auth::{HashMemory, hash_password_with, verify_password_with};
use crate::error::ApiError;

/// How much sign-up and login work the server takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSettings {
    /// Threads hashing passwords at once; argon2 takes 19 MiB for each.
    pub hash_workers: usize,
    /// Hashes waiting for a thread; beyond them a request gets 503.
    pub hash_queue: usize,
    /// Sign-ups and logins a minute from one client address.
    pub per_address: u32,
    /// Sign-ups and logins a minute in one tenant.
    pub per_tenant: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            hash_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            hash_queue: 16,
            per_address: 30,
            per_tenant: 600,
        }
    }
}

/// The hasher and the throttles of one server. Cheap to clone.
#[derive(Clone)]
pub struct AuthLimits {
    pub hasher: PasswordHasher,
    throttle: Arc<Throttle>,
    /// Failed admin logins per tenant and username.
    pub logins: Arc<tenantry::web::LoginThrottle>,
}

impl AuthLimits {
    pub fn new(settings: AuthSettings) -> Self {
        Self {
            hasher: PasswordHasher::new(settings.hash_workers, settings.hash_queue),
            throttle: Arc::new(Throttle {
                per_address: settings.per_address,
                per_tenant: settings.per_tenant,
                buckets: Mutex::new(Buckets {
                    by_key: HashMap::new(),
                    swept: Instant::now(),
                }),
            }),
            logins: Arc::default(),
        }
    }
}

/// Work for a hashing thread, in the thread's own argon2 memory.
type Job = Box<dyn FnOnce(&mut HashMemory) + Send>;

/// Hashes and checks passwords on a fixed set of threads: memory stays bounded by the number
/// of threads however many requests arrive, and a full queue is refused instead of waited on.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: SyncSender<Job>,
}

impl PasswordHasher {
    fn new(workers: usize, queue: usize) -> Self {
        let (jobs, waiting) = std::sync::mpsc::sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..workers.max(1) {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("password-hasher-{i}"))
                .spawn(move || work(&waiting))
                .expect("a password hashing thread starts");
        }
        Self { jobs }
    }

    /// [`hash_password`] on a hashing thread; [`ApiError::Busy`] when the queue is full.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move |memory| hash_password_with(&password, memory))
            .await
    }

    /// [`verify_password`] on a hashing thread; [`ApiError::Busy`] when the queue is full.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        self.run(move |memory| verify_password_with(&password, &hash, memory))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(|| work(memory))));
        });
        // A full queue (or hashing threads gone): no room for this hash.
        self.jobs.try_send(job).map_err(|_| ApiError::Busy)?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(ApiError::Busy),
        }
    }
}

/// A hashing thread: runs jobs in one argon2 memory until every sender is gone.
fn work(waiting: &Mutex<Receiver<Job>>) {
    let mut memory = HashMemory::new();
    loop {
        let job = waiting.lock().expect("the hashing queue").recv();
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Tenant(Uuid),
}

/// A token bucket per key, refilled at its rate a minute, holding at most a minute's worth.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets, and when those that were full again were last forgotten.
struct Buckets {
    by_key: HashMap<Key, Bucket>,
    swept: Instant,
}

/// The most keys a [`Throttle`] tracks (about 64 bytes each).
const TRACKED: usize = 100_000;

/// Rates of sign-ups and logins per client address and per tenant.
struct Throttle {
    per_address: u32,
    per_tenant: u32,
    buckets: Mutex<Buckets>,
}

impl Throttle {
    /// Takes one request from each key's bucket; when one is empty, how long until it is not.
    fn take(&self, keys: &[(Key, u32)]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut guard = self.buckets.lock().expect("throttle");
        let Buckets {
            by_key: buckets,
            swept,
        } = &mut *guard;
        // Forget the keys that would be full again anyway, at most once a second: a flood of
        // new addresses must not make every request walk the whole map.
        if buckets.len() >= TRACKED && now.duration_since(*swept) >= Duration::from_secs(1) {
            *swept = now;
            let full = |b: &Bucket, rate: u32| refilled(b, rate, now) >= f64::from(rate);
            let (address, tenant) = (self.per_address, self.per_tenant);
            buckets.retain(|key, b| match key {
                Key::Address(_) => !full(b, address),
                Key::Tenant(_) => !full(b, tenant),
            });
        }
        // Beyond the bound, a new key is not tracked: its request counts against the keys
        // already known (its tenant's is always kept), so memory stays bounded.
        let keys: Vec<(Key, u32)> = keys
            .iter()
            .copied()
            .filter(|(key, _)| {
                buckets.len() < TRACKED
                    || buckets.contains_key(key)
                    || matches!(key, Key::Tenant(_))
            })
            .collect();
        for &(key, rate) in &keys {
            let bucket = buckets.entry(key).or_insert(Bucket {
                tokens: f64::from(rate),
                at: now,
            });
            let tokens = refilled(bucket, rate, now);
            if tokens < 1.0 {
                let missing = 1.0 - tokens;
                return Err(Duration::from_secs_f64(
                    missing * 60.0 / f64::from(rate.max(1)),
                ));
            }
        }
        for &(key, rate) in &keys {
            let bucket = buckets.get_mut(&key).expect("inserted above");
            bucket.tokens = refilled(bucket, rate, now) - 1.0;
            bucket.at = now;
        }
        Ok(())
    }
}

fn refilled(bucket: &Bucket, rate: u32, now: Instant) -> f64 {
    let gained = now.duration_since(bucket.at).as_secs_f64() * f64::from(rate) / 60.0;
    (bucket.tokens + gained).min(f64::from(rate))
}

impl AuthLimits {
    /// Admits a login of the public site's (an operator's, which has no tenant) within the
    /// rate of its client address, or says how long until it may retry.
    pub fn admit_address(&self, client: ClientAddr) -> Result<(), Duration> {
        let rate = self.throttle.per_address;
        self.throttle
            .take(&[(Key::Address(client.subscriber()), rate)])
    }
}

/// Admits a sign-up or login within the rates of its client address and its tenant, or
/// refuses it with 429 and `Retry-After`. The address is the request's [`ClientAddr`] (the
/// peer, or the client the trusted proxies name); a request served without one counts
/// against its tenant only.
pub struct AuthGate;

impl<S: Send + Sync> FromRequestParts<S> for AuthGate {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tenant = Tenant::from_request_parts(parts, state).await?;
        let limits = parts
            .extensions
            .get::<AuthLimits>()
            .expect("tenant_router gives sign-up and login the AuthLimits");
        let throttle = &limits.throttle;
        let mut keys = vec![(Key::Tenant(tenant.id), throttle.per_tenant)];
        if let Some(ClientAddr(client)) = parts.extensions.get::<ClientAddr>() {
            keys.push((
                Key::Address(ClientAddr(*client).subscriber()),
                throttle.per_address,
            ));
        }
        throttle.take(&keys).map(|()| Self).map_err(|wait| {
            tracing::warn!("sign-up or login throttled");
            ApiError::Throttled(wait.as_secs().max(1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_address: u32) -> Throttle {
        Throttle {
            per_address,
            per_tenant: u32::MAX,
            buckets: Mutex::new(Buckets {
                by_key: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    #[test]
    fn keys_are_bounded_however_many_clients_come() {
        let throttle = throttle(1);
        let tenant = (Key::Tenant(Uuid::new_v4()), u32::MAX);
        for i in 0..TRACKED as u32 + 1000 {
            let client = Key::Address(IpAddr::V4(i.into()));
            assert!(throttle.take(&[tenant, (client, 1)]).is_ok(), "{i}");
        }
        let tracked = throttle.buckets.lock().unwrap().by_key.len();
        assert_eq!(tracked, TRACKED);
        // An address known before the bound is still limited.
        let known = Key::Address(IpAddr::V4(5.into()));
        assert!(throttle.take(&[tenant, (known, 1)]).is_err());
    }
}
