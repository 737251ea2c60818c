//! Two nodes (two limiters) on one Redis share one bucket per key.

use std::time::Duration;

use orgbase_limits::{Limiter, Quota};

use crate::{unique_key, REDIS_URL};

#[tokio::test]
async fn two_nodes_share_one_bucket() {
    let nodes = [
        Limiter::redis(REDIS_URL).unwrap(),
        Limiter::redis(REDIS_URL).unwrap(),
    ];
    let key = unique_key("shared");
    let quota = Quota::per_second(5);
    for i in 0..10u32 {
        let d = nodes[i as usize % 2].take(&key, quota).await;
        assert!(d.allowed && !d.failed_open, "take {i}: {d:?}");
        assert_eq!(d.remaining, 9 - i, "take {i}: {d:?}");
    }
    for node in &nodes {
        let d = node.take(&key, quota).await;
        assert!(!d.allowed && !d.failed_open, "{d:?}");
        assert!(d.retry_after.unwrap() <= Duration::from_millis(200));
    }
    // One node forgetting refills the bucket for both.
    nodes[0].forget(&key).await;
    assert_eq!(nodes[1].peek(&key, quota).await.remaining, 10);
}

#[tokio::test]
async fn the_memory_backend_is_per_node() {
    let nodes = [Limiter::in_memory(), Limiter::in_memory()];
    let key = unique_key("local");
    let quota = Quota::per_window(1, Duration::from_secs(60));
    for node in &nodes {
        assert!(node.take(&key, quota).await.allowed);
        assert!(!node.take(&key, quota).await.allowed);
    }
    // A clone is the same node.
    let clone = nodes[0].clone();
    assert!(!clone.take(&key, quota).await.allowed);
    assert_eq!(nodes[0].failed_open_total(), 0);
}
