//! Buckets in Redis, shared by every node: one Lua script per decision (one round trip, atomic,
//! on the server's clock).
//!
//! Any failure to get an answer (no connection, an error, no reply within [`CALL_TIMEOUT`])
//! lets the request through, marked `failed_open`; see the crate documentation for why.
//! A failed connection attempt, or a call that fails on the connection itself or gets no answer
//! in time, drops the connection and waits [`RETRY_AFTER`] before connecting afresh; meanwhile
//! every decision fails open at once instead of waiting on a dead or hung server. (So one reply
//! slower than [`CALL_TIMEOUT`] costs a second of unlimited requests; a server that slow is not
//! one to queue requests behind.)

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;

use crate::gcra::{Params, Step};

/// Longest wait for a connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Longest wait for one script call or `DEL`.
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
/// After a failed connection, how long to fail open before connecting again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// At most one warning per this many seconds while Redis cannot be asked.
const WARN_EVERY_SECS: u64 = 60;

const KEY_PREFIX: &str = "orgbase:rl:";

pub(crate) struct RedisStore {
    client: redis::Client,
    script: redis::Script,
    conn: Mutex<Conn>,
    /// Held while connecting, so concurrent requests share one attempt rather than each
    /// opening a connection.
    connecting: tokio::sync::Mutex<()>,
    failed_open: AtomicU64,
    epoch: Instant,
    /// Seconds since `epoch` before which no warning is logged.
    next_warn_secs: AtomicU64,
}

#[derive(Default)]
struct Conn {
    /// The connection and its generation, which tells a failure on a connection already
    /// replaced from one on the current connection.
    current: Option<(u64, ConnectionManager)>,
    generation: u64,
    /// No connection attempt before this instant.
    retry_at: Option<Instant>,
}

/// Why Redis was not asked or did not answer.
enum Failure {
    /// A recent attempt failed; waiting before the next.
    BackingOff,
    Connect(RedisError),
    ConnectTimedOut,
    Call(RedisError),
    CallTimedOut,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BackingOff => f.write_str("waiting to reconnect"),
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::ConnectTimedOut => write!(f, "no connection within {CONNECT_TIMEOUT:?}"),
            Failure::Call(e) => write!(f, "call failed: {e}"),
            Failure::CallTimedOut => write!(f, "no answer within {CALL_TIMEOUT:?}"),
        }
    }
}

impl RedisStore {
    pub(crate) fn new(url: &str) -> Result<Self, RedisError> {
        Ok(RedisStore {
            client: redis::Client::open(url)?,
            script: redis::Script::new(include_str!("gcra.lua")),
            conn: Mutex::new(Conn::default()),
            connecting: tokio::sync::Mutex::new(()),
            failed_open: AtomicU64::new(0),
            epoch: Instant::now(),
            next_warn_secs: AtomicU64::new(0),
        })
    }

    /// Runs the script for `key`; `None` when Redis could not be asked (the caller fails open,
    /// and this has already counted and logged it).
    pub(crate) async fn step(&self, key: &str, params: Params, take: bool) -> Option<Step> {
        let result = async {
            let (generation, mut conn) = self.connection().await?;
            let mut invocation = self.script.prepare_invoke();
            invocation
                .key(format!("{KEY_PREFIX}{key}"))
                .arg(params.interval_us)
                .arg(params.burst)
                .arg(u8::from(take));
            let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn);
            self.answered(generation, tokio::time::timeout(CALL_TIMEOUT, call).await)
        }
        .await;
        match result {
            Ok((allowed, remaining, reset_us, retry_after_us)) => Some(Step {
                allowed: allowed == 1,
                remaining: non_negative(remaining),
                reset_us: non_negative(reset_us),
                retry_after_us: non_negative(retry_after_us),
                new_tat: None,
            }),
            Err(failure) => {
                let total = self.failed_open.fetch_add(1, Ordering::Relaxed) + 1;
                self.warn(&failure, total);
                None
            }
        }
    }

    pub(crate) async fn forget(&self, key: &str) {
        let result = async {
            let (generation, mut conn) = self.connection().await?;
            let mut del = redis::cmd("DEL");
            del.arg(format!("{KEY_PREFIX}{key}"));
            let call = del.query_async::<i64>(&mut conn);
            self.answered(generation, tokio::time::timeout(CALL_TIMEOUT, call).await)
        }
        .await;
        if let Err(failure) = result {
            self.warn(&failure, self.failed_open_total());
        }
    }

    pub(crate) fn failed_open_total(&self) -> u64 {
        self.failed_open.load(Ordering::Relaxed)
    }

    /// The current connection, connecting first if there is none and no recent attempt failed.
    async fn connection(&self) -> Result<(u64, ConnectionManager), Failure> {
        if let Some(current) = self.usable()? {
            return Ok(current);
        }
        let _connecting = self.connecting.lock().await;
        // Whoever held the lock before may have connected, or failed.
        if let Some(current) = self.usable()? {
            return Ok(current);
        }
        // One attempt, bounded: retrying is this type's job (after RETRY_AFTER), not the
        // manager's, whose backoff would hold requests for seconds.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(CONNECT_TIMEOUT);
        let attempt = ConnectionManager::new_with_config(self.client.clone(), config);
        let failure = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(manager)) => {
                let mut conn = self.conn();
                let recovered = conn.retry_at.take().is_some();
                conn.generation += 1;
                conn.current = Some((conn.generation, manager.clone()));
                if recovered {
                    tracing::info!("rate limits: Redis answers again; deciding there again");
                }
                return Ok((conn.generation, manager));
            }
            Ok(Err(e)) => Failure::Connect(e),
            Err(_) => Failure::ConnectTimedOut,
        };
        self.conn().retry_at = Some(Instant::now() + RETRY_AFTER);
        Err(failure)
    }

    /// `Ok(Some)` with a connection, `Ok(None)` when one should be opened, `Err` while backing
    /// off.
    fn usable(&self) -> Result<Option<(u64, ConnectionManager)>, Failure> {
        let conn = self.conn();
        if let Some(current) = &conn.current {
            return Ok(Some(current.clone()));
        }
        match conn.retry_at {
            Some(at) if Instant::now() < at => Err(Failure::BackingOff),
            _ => Ok(None),
        }
    }

    /// Turns a call's outcome into a result; a failure of the connection itself (I/O, a dropped
    /// connection, no answer in time) also drops the connection and starts the wait before the
    /// next attempt. An error Redis answered (say, a script error) keeps the connection.
    fn answered<T>(
        &self,
        generation: u64,
        outcome: Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
    ) -> Result<T, Failure> {
        let failure = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if !(e.is_io_error() || e.is_unrecoverable_error()) => {
                return Err(Failure::Call(e))
            }
            Ok(Err(e)) => Failure::Call(e),
            Err(_) => Failure::CallTimedOut,
        };
        let mut conn = self.conn();
        if conn.current.as_ref().map(|(g, _)| *g) == Some(generation) {
            conn.current = None;
            conn.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
        Err(failure)
    }

    fn warn(&self, failure: &Failure, failed_open_total: u64) {
        if matches!(failure, Failure::BackingOff) {
            // The failure that started the wait was reported (or is within the minute).
            return;
        }
        let now = self.epoch.elapsed().as_secs();
        let next = self.next_warn_secs.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_warn_secs
                .compare_exchange(
                    next,
                    now + WARN_EVERY_SECS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(
                failed_open_total,
                "rate limits: Redis {failure}; letting requests through unlimited until it \
                 answers (this warning repeats at most once a minute)"
            );
        }
    }

    fn conn(&self) -> MutexGuard<'_, Conn> {
        // Every update of `Conn` is a single assignment, so a poisoned lock holds a usable value.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! The script against the Rust step at the same, chosen times: the two backends' arithmetic
    //! must agree exactly. Needs the Redis at 127.0.0.1:6379.

    use super::*;
    use crate::gcra;

    #[tokio::test]
    async fn the_script_computes_exactly_what_the_memory_backend_computes() {
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let script = redis::Script::new(include_str!("gcra.lua"));
        let key = format!(
            "orgbase:rl:test:script:{}:{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );

        let quotas = [
            Params {
                interval_us: 200_000,
                burst: 10,
            },
            Params {
                interval_us: 333_333,
                burst: 3,
            },
            Params {
                interval_us: 100_000,
                burst: 1,
            },
            Params {
                interval_us: 720_000_000,
                burst: 5,
            },
        ];
        // A realistic clock (µs since the epoch), advanced by pseudo-random steps from none to
        // a few intervals, so buckets drain, refuse, partly refill and fully refill.
        let mut now: u64 = 1_760_000_000_000_000;
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        // Which paths the steps went down: (take, allowed), and a stored TAT in the past.
        let mut paths = std::collections::HashSet::new();
        let mut past_tats = 0;
        for params in quotas {
            let mut tat: Option<u64> = None;
            for i in 0..150 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let r = seed >> 33;
                now += match r % 4 {
                    0 => 0,
                    1 => r % params.interval_us,
                    2 => params.interval_us / 3,
                    _ => r % (params.interval_us * 3),
                };
                let take = !r.is_multiple_of(5);

                // Both start from the same stored state: the key's expiry runs in real time,
                // not in this simulated time, so it is set afresh (without expiry) each step.
                let mut reset = match tat {
                    Some(_) => redis::cmd("SET"),
                    None => redis::cmd("DEL"),
                };
                reset.arg(&key).arg(tat);
                let _: () = reset.query_async(&mut conn).await.unwrap();

                let expected = gcra::step(tat, now, params, take);
                paths.insert((take, expected.allowed));
                past_tats += usize::from(tat.is_some_and(|tat| tat < now));
                let (allowed, remaining, reset_us, retry_after_us): (i64, i64, i64, i64) = script
                    .key(&key)
                    .arg(params.interval_us)
                    .arg(params.burst)
                    .arg(u8::from(take))
                    .arg(now)
                    .invoke_async(&mut conn)
                    .await
                    .unwrap();
                let got = (allowed == 1, remaining, reset_us, retry_after_us);
                let want = (
                    expected.allowed,
                    expected.remaining as i64,
                    expected.reset_us as i64,
                    expected.retry_after_us as i64,
                );
                assert_eq!(got, want, "{params:?}, step {i}, take {take}");

                tat = expected.new_tat.or(tat);
                // Every interval here is >= 100 ms, so a key the script just stored expires no
                // sooner than 100 ms from now: this reads it back.
                let stored: Option<u64> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(stored, tat, "{params:?}, step {i}");
            }
        }
        assert_eq!(paths.len(), 4, "{paths:?}");
        assert!(past_tats > 10, "{past_tats}");
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
