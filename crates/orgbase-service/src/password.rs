//! Passwords: argon2id with OWASP's parameters, run off the async threads and a few at a time,
//! and a throttle on failed logins.
//!
//! Hashing is deliberately expensive (about 19 MiB and tens of milliseconds each), so a flood of
//! logins must not be able to take every core: at most `max(1, cores - 1)` hashes run at once,
//! a bounded number wait, and beyond that the answer is 503 at once.
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use crate::error::ServiceError;

/// OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and verifies passwords on the blocking pool, a bounded number at a time.
pub struct Passwords {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// A hash of a random password, verified against when the e-mail is unknown, so that an
    /// unknown e-mail and a wrong password take the same time.
    dummy: String,
}

impl Passwords {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let at_once = cores.saturating_sub(1).max(1);
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let dummy = argon2()
            .hash_password(uuid::Uuid::new_v4().to_string().as_bytes(), &salt)
            .expect("argon2 hashes")
            .to_string();
        Self {
            running: Arc::new(Semaphore::new(at_once)),
            waiting: AtomicUsize::new(0),
            max_waiting: 64 * at_once,
            dummy,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(ServiceError::Unavailable);
        }
        let guard = Waiting(&self.waiting);
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(ServiceError::internal)?;
        drop(guard);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(ServiceError::internal)
    }

    /// The PHC string of a new password.
    pub async fn hash(&self, password: String) -> Result<String, ServiceError> {
        self.run(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(ServiceError::internal)
        })
        .await?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown person, or one who has
    /// not set a password), a hash is verified all the same and the answer is false.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, ServiceError> {
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (self.dummy.clone(), false),
        };
        self.run(move || {
            let ok = PasswordHash::new(&hash)
                .map(|parsed| {
                    argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false);
            ok && real
        })
        .await
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts failures per key (an account, a client address) with GCRA: each failure pushes the
/// key's "theoretical arrival time" one `interval` further; a key is refused while that time is
/// more than `burst - 1` intervals ahead. Successes cost nothing.
///
/// Written here rather than taken from `governor`: the throttle must ask "would one more failure
/// be allowed?" before the (expensive) password check, and record a failure only after it, and
/// governor's keyed limiter only offers a check that also consumes.
pub struct FailureThrottle {
    interval: Duration,
    burst: u32,
    tats: Mutex<HashMap<String, Instant>>,
}

const THROTTLE_MAX_KEYS: usize = 100_000;

impl FailureThrottle {
    /// `burst` failures in a row, then one more per `window / burst`.
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            interval: window / burst.max(1),
            burst: burst.max(1),
            tats: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.tats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an attempt as a failure, unless the key is throttled (`Err(wait)`). Checking and
    /// counting are one step, so parallel attempts cannot all pass; an attempt that turns out
    /// to succeed is refunded with `succeeded`.
    pub fn attempt(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut tats = self.lock();
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let allowed_until = now + self.interval * (self.burst - 1);
        if tat > allowed_until {
            return Err(tat - allowed_until);
        }
        if tats.len() >= THROTTLE_MAX_KEYS {
            tats.retain(|_, t| *t > now);
        }
        tats.insert(key.to_owned(), tat + self.interval);
        Ok(())
    }

    /// `Err(wait)` while the key is throttled; counts nothing (see `failed`).
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let tats = self.lock();
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let allowed_until = now + self.interval * (self.burst - 1);
        if tat > allowed_until {
            Err(tat - allowed_until)
        } else {
            Ok(())
        }
    }

    /// Counts a failure after the fact.
    pub fn failed(&self, key: &str) {
        let now = Instant::now();
        let mut tats = self.lock();
        if tats.len() >= THROTTLE_MAX_KEYS {
            tats.retain(|_, t| *t > now);
        }
        let tat = tats.get(key).copied().unwrap_or(now).max(now) + self.interval;
        tats.insert(key.to_owned(), tat);
    }

    /// Gives back the failure `attempt` counted.
    pub fn succeeded(&self, key: &str) {
        let now = Instant::now();
        let mut tats = self.lock();
        if let Some(t) = tats.get_mut(key) {
            *t = (*t - self.interval).max(now);
        }
    }

    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_allows_a_burst_then_refuses() {
        let t = FailureThrottle::new(3, Duration::from_secs(300));
        for _ in 0..3 {
            assert!(t.attempt("a").is_ok());
        }
        let wait = t.attempt("a").unwrap_err();
        assert!(wait > Duration::from_secs(90) && wait <= Duration::from_secs(100));
        assert!(t.attempt("b").is_ok());
        t.forget("a");
        assert!(t.attempt("a").is_ok());
    }

    #[test]
    fn successes_are_refunded() {
        let t = FailureThrottle::new(2, Duration::from_secs(60));
        for _ in 0..10 {
            assert!(t.attempt("a").is_ok());
            t.succeeded("a");
        }
        assert!(t.attempt("a").is_ok());
        assert!(t.attempt("a").is_ok());
        assert!(t.attempt("a").is_err());
    }

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_never_does() {
        let p = Passwords::new();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(p
            .verify("correct horse".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!p.verify("wrong horse".into(), Some(h)).await.unwrap());
        assert!(!p.verify("anything".into(), None).await.unwrap());
    }
}
