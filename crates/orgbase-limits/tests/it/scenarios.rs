//! What every backend must do, with the exact numbers. Each scenario uses its own keys.

use std::time::Duration;

use orgbase_limits::{Decision, Limiter, Quota};

use crate::unique_key;

/// Takes `expected.len()` times, asserting each answer's `allowed` and `remaining`.
async fn takes(limiter: &Limiter, key: &str, quota: Quota, expected: &[(bool, u32)]) {
    for (i, &(allowed, remaining)) in expected.iter().enumerate() {
        let d = limiter.take(key, quota).await;
        assert!(!d.failed_open, "take {i}: {d:?}");
        assert_eq!(
            (d.allowed, d.remaining),
            (allowed, remaining),
            "take {i}: {d:?}"
        );
        assert_eq!(d.limit, quota.burst);
        assert_eq!(d.retry_after.is_some(), !allowed, "take {i}: {d:?}");
    }
}

/// Asserts `d` is a refusal whose wait is at most `at_most` and more than `at_most - slack`.
fn assert_refused(d: Decision, at_most: Duration, slack: Duration) {
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.remaining, 0);
    assert!(!d.failed_open);
    let wait = d.retry_after.expect("a refusal has a wait");
    assert!(wait <= at_most && wait > at_most - slack, "{d:?}");
}

/// `per_second(5)`: an interval of 200 ms and a burst of 10.
pub async fn burst_then_refusal(limiter: &Limiter) {
    let key = unique_key("burst");
    let quota = Quota::per_second(5);
    assert_eq!(
        (quota.interval, quota.burst),
        (Duration::from_millis(200), 10)
    );

    let first = limiter.take(&key, quota).await;
    assert_eq!((first.allowed, first.remaining, first.limit), (true, 9, 10));
    assert!(first.reset <= Duration::from_millis(200) && first.reset > Duration::from_millis(100));
    let expected: Vec<(bool, u32)> = (0..9).rev().map(|r| (true, r)).collect();
    takes(limiter, &key, quota, &expected).await;

    let refused = limiter.take(&key, quota).await;
    assert_refused(
        refused,
        Duration::from_millis(200),
        Duration::from_millis(100),
    );
    // The bucket is full again once all ten intervals have passed.
    assert!(refused.reset <= Duration::from_secs(2) && refused.reset > Duration::from_millis(1900));
    // A refusal counts nothing: asking again gives (about) the same wait.
    assert_refused(
        limiter.take(&key, quota).await,
        refused.retry_after.unwrap(),
        Duration::from_millis(100),
    );
}

/// `per_window(3, 300 ms)`: one comes back every 100 ms.
pub async fn refill_after_waiting(limiter: &Limiter) {
    let key = unique_key("refill");
    let quota = Quota::per_window(3, Duration::from_millis(300));
    takes(
        limiter,
        &key,
        quota,
        &[(true, 2), (true, 1), (true, 0), (false, 0)],
    )
    .await;

    // After 120 ms one request is back, and only one (until 200 ms, ample margin for a slow
    // machine).
    tokio::time::sleep(Duration::from_millis(120)).await;
    takes(limiter, &key, quota, &[(true, 0)]).await;
    assert_refused(
        limiter.take(&key, quota).await,
        Duration::from_millis(100),
        Duration::from_millis(100),
    );

    // After the whole window the bucket is full.
    tokio::time::sleep(Duration::from_millis(310)).await;
    let full = limiter.peek(&key, quota).await;
    assert_eq!(
        (full.allowed, full.remaining, full.reset),
        (true, 3, Duration::ZERO)
    );
    takes(limiter, &key, quota, &[(true, 2)]).await;
}

pub async fn peek_counts_nothing(limiter: &Limiter) {
    let key = unique_key("peek");
    let quota = Quota::per_window(2, Duration::from_secs(60));
    for _ in 0..3 {
        let d = limiter.peek(&key, quota).await;
        assert_eq!(
            d,
            Decision {
                allowed: true,
                limit: 2,
                remaining: 2,
                reset: Duration::ZERO,
                retry_after: None,
                failed_open: false,
            }
        );
    }
    takes(limiter, &key, quota, &[(true, 1)]).await;
    let d = limiter.peek(&key, quota).await;
    assert_eq!((d.allowed, d.remaining), (true, 1));
    takes(limiter, &key, quota, &[(true, 0)]).await;
    // Empty: peek refuses with the same wait a take would get, and still counts nothing.
    let d = limiter.peek(&key, quota).await;
    assert_refused(d, Duration::from_secs(30), Duration::from_secs(1));
    assert!(d.reset > Duration::from_secs(59));
    let d = limiter.peek(&key, quota).await;
    assert_refused(d, Duration::from_secs(30), Duration::from_secs(1));
}

pub async fn forget_refills(limiter: &Limiter) {
    let key = unique_key("forget");
    let quota = Quota::per_window(2, Duration::from_secs(60));
    takes(limiter, &key, quota, &[(true, 1), (true, 0), (false, 0)]).await;
    limiter.forget(&key).await;
    takes(limiter, &key, quota, &[(true, 1), (true, 0), (false, 0)]).await;
    // Forgetting a key that was never used is fine.
    limiter.forget(&unique_key("never")).await;
}

pub async fn keys_are_independent(limiter: &Limiter) {
    let (a, b) = (unique_key("a"), unique_key("b"));
    let quota = Quota::per_window(1, Duration::from_secs(60));
    takes(limiter, &a, quota, &[(true, 0), (false, 0)]).await;
    takes(limiter, &b, quota, &[(true, 0), (false, 0)]).await;
    limiter.forget(&a).await;
    takes(limiter, &a, quota, &[(true, 0)]).await;
    takes(limiter, &b, quota, &[(false, 0)]).await;
}
