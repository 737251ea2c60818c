//! A cache of API keys, organizations and plans for a node on PostgreSQL, kept exact across nodes by
//! `LISTEN`/`NOTIFY`.
//!
//! Every transaction that revokes a key or changes an organization also sends
//! `NOTIFY orgbase_cache` (`key`, or `org:<id>`); PostgreSQL delivers it to every listening node
//! when, and only if, the transaction commits. Each node drops what the notice names. The node
//! that wrote drops it at once too, so it reads its own writes.
//!
//! What could go wrong, and what happens then:
//! - A read that began before a change and ends after it must not put back what it read: every
//!   notice bumps a generation, and a read may fill the cache only if the generation it saw
//!   before reading is still current. (One that fills it just before the notice arrives is
//!   dropped by that notice.)
//! - Notices are lost while the listening connection is down. So the cache is used only while
//!   the listener is known to be up: it pings itself through the database every second, and if
//!   a ping does not come back within three seconds, or the connection drops, everything is
//!   cleared and the cache is bypassed until pings come back.
//!
//! So a revocation or change made on one node is seen by the others within the time a notice
//! takes to arrive (well under a millisecond on one host), and never later than the ping
//! timeout, after which a node that cannot hear reads the database directly.
use orgbase_domain::{ApiKey, Organization, OrganizationId, Plan};
use sqlx::postgres::{PgListener, PgPool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const CHANNEL: &str = "orgbase_cache";
const PING: &str = "ping";
const PING_EVERY: Duration = Duration::from_secs(1);
const DEAF_AFTER: Duration = Duration::from_secs(3);
const MAX_KEYS: usize = 10_000;
const MAX_ORGS: usize = 20_000;
const MAX_PLANS: usize = 1_000;

#[derive(Default)]
pub(crate) struct PgCache(Mutex<Inner>);

impl Inner {
    /// Live, and heard from recently: checked on every read, so a listener that stalls (its
    /// task starved, its connection half-open) stops the cache by itself.
    fn usable(&self) -> bool {
        self.live && self.last_ping.is_some_and(|t| t.elapsed() <= DEAF_AFTER)
    }
}

#[derive(Default)]
struct Inner {
    /// Whether notices are known to arrive; the cache is bypassed otherwise.
    live: bool,
    last_ping: Option<Instant>,
    /// Bumped by every notice and every loss of the listener.
    generation: u64,
    keys: HashMap<String, ApiKey>,
    orgs: HashMap<OrganizationId, Organization>,
    plans: HashMap<String, Plan>,
}

impl PgCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation to hand back to `offer_*`, or `None` when the cache is not to be used.
    pub(crate) fn generation(&self) -> Option<u64> {
        let c = self.lock();
        c.usable().then_some(c.generation)
    }

    pub(crate) fn key(&self, hash: &str) -> Option<ApiKey> {
        let c = self.lock();
        c.usable().then(|| c.keys.get(hash).cloned()).flatten()
    }

    pub(crate) fn org(&self, id: OrganizationId) -> Option<Organization> {
        let c = self.lock();
        c.usable().then(|| c.orgs.get(&id).cloned()).flatten()
    }

    pub(crate) fn plan(&self, id: &str) -> Option<Plan> {
        let c = self.lock();
        c.usable().then(|| c.plans.get(id).cloned()).flatten()
    }

    pub(crate) fn offer_plan(&self, plan: &Plan, generation: u64) {
        let mut c = self.lock();
        if !c.usable() || c.generation != generation {
            return;
        }
        if c.plans.len() >= MAX_PLANS {
            c.plans.clear();
        }
        c.plans.insert(plan.id.clone(), plan.clone());
    }

    pub(crate) fn offer_key(&self, key: &ApiKey, generation: u64) {
        let mut c = self.lock();
        if !c.usable() || c.generation != generation || !key.is_active() {
            return;
        }
        if c.keys.len() >= MAX_KEYS {
            c.keys.clear();
        }
        c.keys.insert(key.hash.as_str().to_owned(), key.clone());
    }

    pub(crate) fn offer_org(&self, org: &Organization, generation: u64) {
        let mut c = self.lock();
        if !c.usable() || c.generation != generation {
            return;
        }
        if c.orgs.len() >= MAX_ORGS {
            c.orgs.clear();
        }
        c.orgs.insert(org.id, org.clone());
    }

    /// Applies a notice's payload.
    pub(crate) fn notice(&self, payload: &str) {
        let mut c = self.lock();
        if payload == PING {
            c.last_ping = Some(Instant::now());
            if !c.live {
                // Anything kept from before the listener was lost is gone already (`deaf`).
                c.live = true;
            }
            return;
        }
        c.generation += 1;
        if payload == "key" {
            c.keys.clear();
        } else if payload == "plan" {
            c.plans.clear();
        } else if let Some(id) = payload
            .strip_prefix("org:")
            .and_then(|s| s.parse::<OrganizationId>().ok())
        {
            c.orgs.remove(&id);
        } else {
            c.keys.clear();
            c.orgs.clear();
            c.plans.clear();
        }
    }

    /// The listener cannot be trusted: forget everything and bypass the cache.
    pub(crate) fn deaf(&self) {
        let mut c = self.lock();
        c.live = false;
        c.last_ping = None;
        c.generation += 1;
        c.keys.clear();
        c.orgs.clear();
        c.plans.clear();
    }

    /// How many keys and organizations are held (for tests and diagnostics).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let c = self.lock();
        (c.keys.len(), c.orgs.len())
    }

    fn ping_overdue(&self) -> bool {
        let c = self.lock();
        c.live && c.last_ping.is_some_and(|t| t.elapsed() > DEAF_AFTER)
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Listens for notices until the task is aborted. A task of its own pings through `pool` every
/// second, so a slow pool cannot hold up the listening; pings that stop arriving take the cache
/// out of use (see `usable`) and make the listener connect again.
pub(crate) async fn listen(pool: PgPool, cache: Arc<PgCache>) {
    let pinger = pool.clone();
    let _pings = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(PING_EVERY);
        loop {
            tick.tick().await;
            let _ = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(PING)
                .execute(&pinger)
                .await;
        }
    }));
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cache listener cannot connect; the cache is off");
                cache.deaf();
                tokio::time::sleep(PING_EVERY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cache listener cannot LISTEN; the cache is off");
            cache.deaf();
            tokio::time::sleep(PING_EVERY).await;
            continue;
        }
        let mut check = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(n)) => cache.notice(n.payload()),
                    // The connection dropped: notices may have been missed.
                    Ok(None) | Err(_) => {
                        cache.deaf();
                        break;
                    }
                },
                _ = check.tick() => {
                    if cache.ping_overdue() {
                        tracing::warn!("cache pings stopped arriving; listening again");
                        cache.deaf();
                        break;
                    }
                }
            }
        }
    }
}

/// Sends the notice for a change inside the transaction that makes it (delivered at commit).
pub(crate) async fn notify(
    conn: &mut sqlx::PgConnection,
    payload: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(conn)
        .await
        .map(|_| ())
}
