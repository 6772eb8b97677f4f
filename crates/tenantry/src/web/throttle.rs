//! [`LoginThrottle`]: too many failed logins to one account of one tenant get 429, whichever
//! door (a form, an API) they come through.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Failed logins per tenant and username, in this process: after `max_failures` within
/// `window`, further attempts are refused until the window has passed since the first.
///
/// An attempt is counted from the moment it is let through ([`LoginThrottle::attempt`]), so
/// concurrent attempts cannot get more than `max_failures` passwords checked. Memory is
/// bounded whatever clients send: an account is kept as a fixed-size digest of its tenant
/// and username, and at most [`LoginThrottle::TRACKED`] accounts are kept (the oldest idle
/// one is forgotten first).
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    accounts: Mutex<HashMap<AccountKey, Account>>,
}

/// SHA-256 of a tenant's id and a normalized username.
type AccountKey = [u8; 32];

struct Account {
    failures: u32,
    /// Attempts let through whose outcome is not known yet.
    in_flight: u32,
    since: Instant,
}

impl Default for LoginThrottle {
    /// 5 failures per 15 minutes.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(15 * 60))
    }
}

/// A login attempt let through: say how it ended with [`failed`](Self::failed) or
/// [`succeeded`](Self::succeeded). Dropped without either (an error, a cancelled request),
/// it is not counted.
#[must_use = "an attempt is released when dropped; count its outcome"]
pub struct LoginAttempt<'a> {
    throttle: &'a LoginThrottle,
    key: AccountKey,
    /// How it ended, once said; `None` when dropped first.
    outcome: Option<bool>,
}

impl LoginThrottle {
    /// The most accounts tracked at once (about 100 bytes each).
    pub const TRACKED: usize = 100_000;

    /// At most `max_failures` failed logins per account within `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            accounts: Mutex::default(),
        }
    }

    fn key(tenant: Uuid, username: &str) -> AccountKey {
        let mut digest = Sha256::new();
        digest.update(tenant.as_bytes());
        digest.update(username.trim().to_lowercase().as_bytes());
        digest.finalize().into()
    }

    /// Lets one attempt at the account through, or `Err(wait)` while it is locked (or as
    /// many attempts as it has left are already being checked).
    pub fn attempt(&self, tenant: Uuid, username: &str) -> Result<LoginAttempt<'_>, Duration> {
        let key = Self::key(tenant, username);
        let now = Instant::now();
        let mut accounts = self.accounts.lock().expect("throttle");
        if !accounts.contains_key(&key) && accounts.len() >= Self::TRACKED {
            self.make_room(&mut accounts, now);
        }
        let account = accounts.entry(key).or_insert(Account {
            failures: 0,
            in_flight: 0,
            since: now,
        });
        if now.duration_since(account.since) >= self.window {
            account.failures = 0;
            account.since = now;
        }
        if account.failures + account.in_flight >= self.max_failures {
            let wait = match account.failures >= self.max_failures {
                true => self
                    .window
                    .saturating_sub(now.duration_since(account.since)),
                false => Duration::from_secs(1),
            };
            return Err(wait.max(Duration::from_secs(1)));
        }
        account.in_flight += 1;
        Ok(LoginAttempt {
            throttle: self,
            key,
            outcome: None,
        })
    }

    /// Forgets the accounts whose window has passed; if none has, the one idle the longest.
    fn make_room(&self, accounts: &mut HashMap<AccountKey, Account>, now: Instant) {
        accounts.retain(|_, a| a.in_flight > 0 || now.duration_since(a.since) < self.window);
        if accounts.len() < Self::TRACKED {
            return;
        }
        let oldest = accounts
            .iter()
            .filter(|(_, a)| a.in_flight == 0)
            .min_by_key(|(_, a)| a.since)
            .map(|(key, _)| *key);
        if let Some(key) = oldest {
            accounts.remove(&key);
        }
    }

    /// How many accounts are tracked now.
    pub fn tracked(&self) -> usize {
        self.accounts.lock().expect("throttle").len()
    }

    fn settle(&self, key: &AccountKey, outcome: Option<bool>) {
        let mut accounts = self.accounts.lock().expect("throttle");
        let Some(account) = accounts.get_mut(key) else {
            return;
        };
        account.in_flight = account.in_flight.saturating_sub(1);
        match outcome {
            Some(true) => {
                accounts.remove(key);
            }
            Some(false) => account.failures += 1,
            None if account.failures == 0 && account.in_flight == 0 => {
                accounts.remove(key);
            }
            None => {}
        }
    }
}

impl LoginAttempt<'_> {
    /// The password was wrong: counts against the account.
    pub fn failed(self) {
        self.end(false);
    }

    /// The password was right: the account's failures are forgotten.
    pub fn succeeded(self) {
        self.end(true);
    }

    fn end(mut self, outcome: bool) {
        self.outcome = Some(outcome);
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        self.throttle.settle(&self.key, self.outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(throttle: &LoginThrottle, tenant: Uuid, username: &str) {
        throttle.attempt(tenant, username).unwrap().failed();
    }

    #[test]
    fn locks_one_account_of_one_tenant() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        let (thor, potter) = (Uuid::new_v4(), Uuid::new_v4());
        fail(&throttle, thor, "Admin");
        assert!(throttle.attempt(thor, "admin").is_ok());
        fail(&throttle, thor, "admin ");
        assert!(throttle.attempt(thor, "admin").is_err());
        assert!(throttle.attempt(thor, "other").is_ok());
        assert!(throttle.attempt(potter, "admin").is_ok());
        let brief = LoginThrottle::new(1, Duration::ZERO);
        fail(&brief, thor, "admin");
        assert!(
            brief.attempt(thor, "admin").is_ok(),
            "the window has passed"
        );
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        let thor = Uuid::new_v4();
        fail(&throttle, thor, "admin");
        throttle.attempt(thor, "admin").unwrap().succeeded();
        fail(&throttle, thor, "admin");
        assert!(throttle.attempt(thor, "admin").is_ok());
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(60));
        let thor = Uuid::new_v4();
        let held: Vec<_> = (0..5)
            .map(|_| throttle.attempt(thor, "admin").unwrap())
            .collect();
        assert!(throttle.attempt(thor, "admin").is_err(), "a sixth at once");
        drop(held);
        assert!(
            throttle.attempt(thor, "admin").is_ok(),
            "released uncounted"
        );
        assert_eq!(throttle.tracked(), 0, "nothing left of uncounted attempts");
    }

    #[test]
    fn memory_is_bounded_whatever_the_usernames() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(60));
        let thor = Uuid::new_v4();
        let long = "x".repeat(1024 * 1024);
        for i in 0..LoginThrottle::TRACKED + 10 {
            fail(&throttle, thor, &format!("{i}{}", &long[..i % 64]));
        }
        assert_eq!(throttle.tracked(), LoginThrottle::TRACKED);
        fail(&throttle, thor, &long);
        assert_eq!(throttle.tracked(), LoginThrottle::TRACKED);
    }
}
