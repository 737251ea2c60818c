//! Rate limits for Orgbase: per-organization request limits and failed-login throttling.
//!
//! The algorithm is GCRA (the generic cell rate algorithm): each key keeps one timestamp, its
//! theoretical arrival time, rather than a counter and a window, so limits are smooth (no burst at
//! a window's edge) and cost one small value per key. A [`Quota`] allows one request per
//! `interval` on average and up to `burst` at once.
//!
//! Buckets live either in this process's memory ([`Limiter::in_memory`]: each node limits on its
//! own) or in Redis ([`Limiter::redis`]: every node shares one bucket per key; each decision is
//! one atomic Lua script, one round trip, timed by the Redis server's clock).
//!
//! # When Redis cannot be asked, requests go through
//!
//! If Redis is down, slow or unreachable, the limiter does not refuse: it allows the request and
//! marks the [`Decision`] `failed_open`, counts it ([`Limiter::failed_open_total`]) and logs a
//! warning at most once a minute. Per-organization limits protect capacity, not security; an
//! outage of the limiter's store must not become an outage of every API. The cost is real for the
//! login throttle: while Redis is unreachable, failed logins are not throttled, so password
//! guessing is limited only by the password hashing's own cost for that window. A caller that
//! would rather refuse can check `failed_open`.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod gcra;
mod memory;
mod redis_store;

use gcra::{Params, Step};
use memory::MemoryStore;
use redis_store::RedisStore;

/// A limit: one request per `interval` on average, with up to `burst` at once.
///
/// The backends count in whole microseconds: a finer interval is truncated, and an interval
/// under one microsecond counts as one. A burst of 0 counts as 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub interval: Duration,
    pub burst: u32,
}

impl Quota {
    /// `n` per second with a burst of twice that (an organization's `rateLimit`). n >= 1; 0
    /// counts as 1.
    pub fn per_second(n: u32) -> Self {
        let n = n.max(1);
        Quota {
            interval: Duration::from_micros((1_000_000 / u64::from(n)).max(1)),
            burst: n.saturating_mul(2),
        }
    }

    /// `burst` at once, refilled one at a time over `window` (burst per window).
    pub fn per_window(burst: u32, window: Duration) -> Self {
        let burst = burst.max(1);
        let interval_us = window.as_micros() / u128::from(burst);
        Quota {
            interval: Duration::from_micros(u64::try_from(interval_us).unwrap_or(u64::MAX).max(1)),
            burst,
        }
    }

    /// The policy's requests per window for RateLimit-Policy headers: `burst` (the "q") and
    /// window seconds (the "w") = interval*burst rounded up to whole seconds (at least 1).
    pub fn window_secs(&self) -> u64 {
        let params = self.params();
        params
            .interval_us
            .saturating_mul(params.burst)
            .div_ceil(1_000_000)
            .max(1)
    }

    fn params(&self) -> Params {
        Params {
            interval_us: u64::try_from(self.interval.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
            burst: u64::from(self.burst.max(1)),
        }
    }
}

/// A wait in whole seconds, rounded up and at least 1: a `Retry-After` that, obeyed, is never
/// too early.
pub fn whole_seconds(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// What the limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The quota's burst.
    pub limit: u32,
    /// Requests still allowed at once after this one (0 when refused).
    pub remaining: u32,
    /// Until the key's bucket is full again (0 when it is full).
    pub reset: Duration,
    /// When refused: the wait until one more request is allowed (None when allowed).
    pub retry_after: Option<Duration>,
    /// The decision was not made: Redis could not be asked, and the request was let through.
    pub failed_open: bool,
}

impl Decision {
    fn from_step(step: Step, quota: Quota) -> Self {
        Decision {
            allowed: step.allowed,
            limit: quota.burst.max(1),
            remaining: u32::try_from(step.remaining).unwrap_or(u32::MAX),
            reset: Duration::from_micros(step.reset_us),
            retry_after: (!step.allowed).then(|| Duration::from_micros(step.retry_after_us)),
            failed_open: false,
        }
    }

    fn failed_open(quota: Quota) -> Self {
        let burst = quota.burst.max(1);
        Decision {
            allowed: true,
            limit: burst,
            remaining: burst,
            reset: Duration::ZERO,
            retry_after: None,
            failed_open: true,
        }
    }
}

/// Counts requests per key against a [`Quota`]. Cloning is cheap and clones share the buckets.
#[derive(Clone)]
pub struct Limiter {
    backend: Arc<Backend>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "one per limiter, behind an Arc: boxing would only add an indirection"
)]
enum Backend {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Limiter {
    /// In this process's memory: limits hold on this node only.
    pub fn in_memory() -> Self {
        Limiter {
            backend: Arc::new(Backend::Memory(MemoryStore::new())),
        }
    }

    /// In Redis at `url` (redis://…), shared by every node using it. Never fails because Redis
    /// is down: it connects lazily and reconnects (at most one attempt per second); only a
    /// malformed URL is an error.
    pub fn redis(url: &str) -> Result<Self, LimitError> {
        let store = RedisStore::new(url).map_err(|e| LimitError::InvalidUrl(e.to_string()))?;
        Ok(Limiter {
            backend: Arc::new(Backend::Redis(store)),
        })
    }

    /// Counts one request against `key` if `quota` allows it now.
    pub async fn take(&self, key: &str, quota: Quota) -> Decision {
        self.step(key, quota, true).await
    }

    /// Whether one more would be allowed now; counts nothing. `remaining` is how many could be
    /// taken now (this one included).
    pub async fn peek(&self, key: &str, quota: Quota) -> Decision {
        self.step(key, quota, false).await
    }

    /// Forgets `key`: its bucket is full again (a successful login clears the account's failures).
    ///
    /// With Redis unreachable the key is not forgotten (it still expires once its bucket would
    /// be full); this is logged like any other failure.
    pub async fn forget(&self, key: &str) {
        match &*self.backend {
            Backend::Memory(store) => store.forget(key),
            Backend::Redis(store) => store.forget(key).await,
        }
    }

    /// How many requests were let through because Redis could not be asked (for a metric).
    /// Counts every `take` and `peek` that answered `failed_open`; always 0 in memory.
    pub fn failed_open_total(&self) -> u64 {
        match &*self.backend {
            Backend::Memory(_) => 0,
            Backend::Redis(store) => store.failed_open_total(),
        }
    }

    /// "memory" or "redis".
    pub fn backend(&self) -> &'static str {
        match &*self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    async fn step(&self, key: &str, quota: Quota, take: bool) -> Decision {
        let params = quota.params();
        let step = match &*self.backend {
            Backend::Memory(store) => store.step(key, params, take),
            Backend::Redis(store) => match store.step(key, params, take).await {
                Some(step) => step,
                None => return Decision::failed_open(quota),
            },
        };
        Decision::from_step(step, quota)
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Why a limiter could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The Redis URL does not parse, or names something this build cannot use (such as
    /// `rediss://`: this build has no TLS).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_is_an_interval_of_one_nth_with_twice_the_burst() {
        assert_eq!(
            Quota::per_second(5),
            Quota {
                interval: Duration::from_millis(200),
                burst: 10
            }
        );
        assert_eq!(
            Quota::per_second(3).interval,
            Duration::from_micros(333_333)
        );
        assert_eq!(Quota::per_second(0), Quota::per_second(1));
        assert_eq!(Quota::per_second(5).window_secs(), 2);
        assert_eq!(Quota::per_second(3).window_secs(), 2);
    }

    #[test]
    fn per_window_spreads_the_burst_over_the_window() {
        let q = Quota::per_window(5, Duration::from_secs(900));
        assert_eq!(q.interval, Duration::from_secs(180));
        assert_eq!(q.burst, 5);
        assert_eq!(q.window_secs(), 900);
        // 3 per second: 333 333 µs each, 999 999 µs in all, which a header states as 1 s.
        assert_eq!(
            Quota::per_window(3, Duration::from_secs(1)).window_secs(),
            1
        );
        assert_eq!(Quota::per_window(10, Duration::ZERO).window_secs(), 1);
        assert_eq!(
            Quota::per_window(10, Duration::ZERO).interval,
            Duration::from_micros(1)
        );
    }

    #[test]
    fn a_malformed_url_is_the_only_error() {
        assert!(Limiter::redis("not a url").is_err());
        assert!(Limiter::redis("http://127.0.0.1:6379").is_err());
        assert!(Limiter::redis("redis://127.0.0.1:1").is_ok());
    }
}
