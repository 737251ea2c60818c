//! The limiter from outside: the same scenarios against memory and against Redis (at
//! 127.0.0.1:6379), two nodes sharing Redis, and Redis failing.

mod outage;
mod scenarios;
mod shared;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A key no other test or run uses.
pub fn unique_key(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test:{name}:{}:{nanos}:{n}", std::process::id())
}

/// Runs every scenario in `scenarios` against one backend.
macro_rules! conformance {
    ($backend:ident, $make:expr, $name:literal) => {
        mod $backend {
            use orgbase_limits::Limiter;

            fn limiter() -> Limiter {
                let limiter: Limiter = $make;
                assert_eq!(limiter.backend(), $name);
                limiter
            }

            #[tokio::test]
            async fn burst_then_refusal() {
                crate::scenarios::burst_then_refusal(&limiter()).await;
            }

            #[tokio::test]
            async fn refill_after_waiting() {
                crate::scenarios::refill_after_waiting(&limiter()).await;
            }

            #[tokio::test]
            async fn peek_counts_nothing() {
                crate::scenarios::peek_counts_nothing(&limiter()).await;
            }

            #[tokio::test]
            async fn forget_refills() {
                crate::scenarios::forget_refills(&limiter()).await;
            }

            #[tokio::test]
            async fn keys_are_independent() {
                crate::scenarios::keys_are_independent(&limiter()).await;
            }
        }
    };
}

conformance!(memory, Limiter::in_memory(), "memory");
conformance!(redis, Limiter::redis(crate::REDIS_URL).unwrap(), "redis");
