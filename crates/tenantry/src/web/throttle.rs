//! [`LoginThrottle`]: too many failed logins to one account of one tenant get 429.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Failed logins per tenant and username, in this process: after `max_failures` within
/// `window`, further attempts are refused until the window has passed since the first.
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<(Uuid, String), (u32, Instant)>>,
}

impl Default for LoginThrottle {
    /// 5 failures per 15 minutes.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(15 * 60))
    }
}

/// The most accounts tracked at once; beyond it, expired entries are dropped.
const TRACKED: usize = 100_000;

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::default(),
        }
    }

    fn key(tenant: Uuid, username: &str) -> (Uuid, String) {
        (tenant, username.trim().to_lowercase())
    }

    /// `Err(wait)` if the account is locked now.
    pub fn check(&self, tenant: Uuid, username: &str) -> Result<(), Duration> {
        let failures = self.failures.lock().expect("throttle");
        match failures.get(&Self::key(tenant, username)) {
            Some((count, since)) if *count >= self.max_failures => {
                match self.window.checked_sub(since.elapsed()) {
                    Some(wait) => Err(wait),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, tenant: Uuid, username: &str) {
        let mut failures = self.failures.lock().expect("throttle");
        if failures.len() >= TRACKED {
            failures.retain(|_, (_, since)| since.elapsed() < self.window);
        }
        let entry = failures
            .entry(Self::key(tenant, username))
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets the account's failures.
    pub fn succeeded(&self, tenant: Uuid, username: &str) {
        let mut failures = self.failures.lock().expect("throttle");
        failures.remove(&Self::key(tenant, username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_one_account_of_one_tenant() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        let (thor, potter) = (Uuid::new_v4(), Uuid::new_v4());
        throttle.failed(thor, "Admin");
        assert!(throttle.check(thor, "admin").is_ok());
        throttle.failed(thor, "admin ");
        assert!(throttle.check(thor, "admin").is_err());
        assert!(throttle.check(thor, "other").is_ok());
        assert!(throttle.check(potter, "admin").is_ok());
        throttle.succeeded(thor, "admin");
        assert!(throttle.check(thor, "admin").is_ok());
        let brief = LoginThrottle::new(1, Duration::ZERO);
        brief.failed(thor, "admin");
        assert!(brief.check(thor, "admin").is_ok(), "the window has passed");
    }
}
