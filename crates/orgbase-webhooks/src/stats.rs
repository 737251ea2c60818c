//! What this node's worker did, for `/metrics` (Prometheus text): attempts by outcome, their
//! latency, messages delivered and failed, and the lag from a change to its delivery.
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the lag histogram, in seconds.
const LAG_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 60.0, 3600.0];

#[derive(Debug, Default)]
pub struct Stats {
    attempts_ok: AtomicU64,
    attempts_failed: AtomicU64,
    attempt_ms_sum: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    lag: [AtomicU64; LAG_BUCKETS.len()],
    lag_count: AtomicU64,
    lag_ms_sum: AtomicU64,
    yielded: AtomicU64,
}

impl Stats {
    pub(crate) fn attempt(&self, ok: bool, ms: u32) {
        let c = if ok {
            &self.attempts_ok
        } else {
            &self.attempts_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.attempt_ms_sum.fetch_add(ms as u64, Ordering::Relaxed);
    }

    /// A message delivered `lag_ms` after its change.
    pub(crate) fn delivered(&self, lag_ms: Option<u64>) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(ms) = lag_ms {
            let s = ms as f64 / 1000.0;
            for (i, bound) in LAG_BUCKETS.iter().enumerate() {
                if s <= *bound {
                    self.lag[i].fetch_add(1, Ordering::Relaxed);
                }
            }
            self.lag_count.fetch_add(1, Ordering::Relaxed);
            self.lag_ms_sum.fetch_add(ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A round kept short, and followed by a pause, because the node was busy serving.
    pub(crate) fn yielded(&self) {
        self.yielded.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures in Prometheus' text format.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str(
            "# HELP orgbase_webhook_attempts_total Delivery attempts by this node, by outcome.\n",
        );
        out.push_str("# TYPE orgbase_webhook_attempts_total counter\n");
        out.push_str(&format!(
            "orgbase_webhook_attempts_total{{outcome=\"2xx\"}} {}\norgbase_webhook_attempts_total{{outcome=\"other\"}} {}\n",
            get(&self.attempts_ok),
            get(&self.attempts_failed)
        ));
        out.push_str("# HELP orgbase_webhook_attempt_seconds_sum Time spent in attempts.\n");
        out.push_str("# TYPE orgbase_webhook_attempt_seconds_sum counter\n");
        out.push_str(&format!(
            "orgbase_webhook_attempt_seconds_sum {}\n",
            get(&self.attempt_ms_sum) as f64 / 1000.0
        ));
        out.push_str("# HELP orgbase_webhook_messages_total Messages this node finished, delivered or failed for good.\n");
        out.push_str("# TYPE orgbase_webhook_messages_total counter\n");
        out.push_str(&format!(
            "orgbase_webhook_messages_total{{status=\"delivered\"}} {}\norgbase_webhook_messages_total{{status=\"failed\"}} {}\n",
            get(&self.delivered),
            get(&self.failed)
        ));
        out.push_str("# HELP orgbase_webhook_busy_rounds_total Delivery rounds kept short because the node was busy serving requests.\n");
        out.push_str("# TYPE orgbase_webhook_busy_rounds_total counter\n");
        out.push_str(&format!(
            "orgbase_webhook_busy_rounds_total {}\n",
            get(&self.yielded)
        ));
        out.push_str("# HELP orgbase_webhook_lag_seconds From a change to its delivery.\n");
        out.push_str("# TYPE orgbase_webhook_lag_seconds histogram\n");
        for (i, bound) in LAG_BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "orgbase_webhook_lag_seconds_bucket{{le=\"{bound}\"}} {}\n",
                get(&self.lag[i])
            ));
        }
        let n = get(&self.lag_count);
        out.push_str(&format!(
            "orgbase_webhook_lag_seconds_bucket{{le=\"+Inf\"}} {n}\norgbase_webhook_lag_seconds_sum {}\norgbase_webhook_lag_seconds_count {n}\n",
            get(&self.lag_ms_sum) as f64 / 1000.0
        ));
        out
    }
}

/// The `occurredAt` of a stored payload, without parsing the whole of it.
pub(crate) fn occurred_at(payload: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let rest = &payload[payload.find("\"occurredAt\"")? + 12..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    chrono::DateTime::parse_from_rfc3339(&rest[start..start + len])
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_found_in_either_spelling() {
        let t = "2026-12-06T10:00:00.000Z";
        for p in [
            format!(r#"{{"id":"evt_1","occurredAt":"{t}","data":{{}}}}"#),
            format!(r#"{{"id": "evt_1", "data": {{}}, "occurredAt": "{t}"}}"#),
        ] {
            assert_eq!(
                occurred_at(&p).unwrap().to_rfc3339(),
                "2026-12-06T10:00:00+00:00"
            );
        }
        let s = Stats::default();
        s.delivered(Some(30));
        assert!(s
            .render()
            .contains("orgbase_webhook_lag_seconds_bucket{le=\"0.05\"} 1"));
    }
}
