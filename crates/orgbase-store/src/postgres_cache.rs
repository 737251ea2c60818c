//! A cache of API keys, organizations and plans for a node on PostgreSQL, kept exact across nodes by
//! `LISTEN`/`NOTIFY`.
//!
//! Notices go to the channel `orgbase_cache`: `key`, `plan`, `org:<id>`, `org:<id>:<version>` or
//! `wallet:<id>` (a balance crossed zero: for the access readers, `postgres_access`), several to
//! a payload, separated by commas. Each node drops what a notice names.
//!
//! When they are sent:
//! - A change that decides who may do what, or what the access check says (a revoked key; an
//!   organization's status and its reason, deletion, type, parent, owner, plan, limits,
//!   entitlements, billing state or SMS set-up: `strict_change`; a plan; a wallet's crossing of
//!   zero) sends its notice inside its own transaction, so PostgreSQL delivers it when, and only
//!   if, the transaction commits.
//! - Any other change of an organization (its name, its settings) sends its notice just after
//!   the commit, through one task per node that packs whatever is waiting into one `pg_notify`.
//!   A `NOTIFY` inside a transaction takes a lock that every notifying commit waits for, flush to
//!   disk included: with one in each settings write, PostgreSQL committed 4.3k writes/s here
//!   against 13k without (pgbench, 32 clients). Should a node die between such a commit and its
//!   notice, the other nodes keep the old copy until it expires (`ORG_TTL`).
//! - The node that wrote keeps the row it wrote (the version it committed), so it reads its own
//!   writes at once and does not read the row back.
//!
//! What could go wrong, and what happens then:
//! - A read that began before a change and ends after it must not put back what it read. An
//!   organization's notice names the version the change made, and the cache remembers the
//!   highest version noticed for each organization: a row older than that is never kept. Other
//!   notices bump a generation, and a read may fill the cache only if the generation it saw
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
use crate::memo::OrgMemo;
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
const MAX_PLANS: usize = 1_000;
/// How long an organization's row is used before it is read again: the bound on staleness
/// should a notice sent after a commit be lost with its node.
const ORG_TTL: Duration = Duration::from_secs(30);
/// The largest payload sent in one notice (PostgreSQL takes up to 8,000 bytes).
pub(crate) const MAX_PAYLOAD: usize = 7_000;

pub(crate) struct PgCache(Mutex<Inner>);

impl Default for PgCache {
    fn default() -> Self {
        Self(Mutex::new(Inner {
            live: false,
            last_ping: None,
            generation: 0,
            keys: HashMap::new(),
            orgs: OrgMemo::new(Some(ORG_TTL)),
            plans: HashMap::new(),
        }))
    }
}

impl Inner {
    /// Live, and heard from recently: checked on every read, so a listener that stalls (its
    /// task starved, its connection half-open) stops the cache by itself.
    fn usable(&self) -> bool {
        self.live && self.last_ping.is_some_and(|t| t.elapsed() <= DEAF_AFTER)
    }
}

struct Inner {
    /// Whether notices are known to arrive; the cache is bypassed otherwise.
    live: bool,
    last_ping: Option<Instant>,
    /// Of keys and plans: bumped by their notices and every loss of the listener.
    generation: u64,
    keys: HashMap<String, ApiKey>,
    orgs: OrgMemo,
    plans: HashMap<String, Plan>,
}

impl Inner {
    fn forget_all(&mut self) {
        self.generation += 1;
        self.keys.clear();
        self.orgs.clear();
        self.plans.clear();
    }

    /// One notice, a payload's entry.
    fn apply(&mut self, notice: Notice) {
        match notice {
            Notice::Key => {
                self.generation += 1;
                self.keys.clear();
            }
            Notice::Plan => {
                self.generation += 1;
                self.plans.clear();
            }
            Notice::Org(id, version) => self.orgs.changed(id, version),
            // Nothing kept here holds a balance.
            Notice::Wallet(_) => {}
            Notice::Unknown => self.forget_all(),
        }
    }
}

/// What one entry of a payload names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// `key`: an API key was revoked.
    Key,
    /// `plan`: a plan changed or went.
    Plan,
    /// `org:<id>` or `org:<id>:<version>`: the organization changed (to that version).
    Org(OrganizationId, Option<i64>),
    /// `wallet:<id>`: one of the organization's balances crossed zero.
    Wallet(OrganizationId),
    /// Anything else (a newer node's notice): whoever reads it forgets everything.
    Unknown,
}

/// The entries of a payload (not a ping's).
pub(crate) fn notices(payload: &str) -> impl Iterator<Item = Notice> + '_ {
    payload
        .split(',')
        .map(|n| parse_notice(n).unwrap_or(Notice::Unknown))
}

fn parse_notice(n: &str) -> Option<Notice> {
    Some(match n {
        "key" => Notice::Key,
        "plan" => Notice::Plan,
        _ => match n.strip_prefix("org:") {
            Some(org) => match org.split_once(':') {
                None => Notice::Org(org.parse().ok()?, None),
                Some((id, v)) => Notice::Org(id.parse().ok()?, Some(v.parse().ok()?)),
            },
            None => Notice::Wallet(n.strip_prefix("wallet:")?.parse().ok()?),
        },
    })
}

/// Whether a payload is the listener's own ping.
pub(crate) fn is_ping(payload: &str) -> bool {
    payload == PING
}

/// The notice of an organization's change to `version`.
pub(crate) fn org_notice(id: OrganizationId, version: i64) -> String {
    format!("org:{id}:{version}")
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
        c.usable().then(|| c.orgs.get(id)).flatten()
    }

    /// The organizations' generation, to hand back to `offer_org`, or `None` when the cache is
    /// not to be used.
    pub(crate) fn org_generation(&self) -> Option<u64> {
        let c = self.lock();
        c.usable().then(|| c.orgs.generation())
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

    /// Keeps a row read after `org_generation` gave `generation`, unless something newer is
    /// known.
    pub(crate) fn offer_org(&self, org: &Organization, generation: u64) {
        let mut c = self.lock();
        if c.usable() {
            c.orgs.offer(org, generation);
        }
    }

    /// This node committed `org` (at its version), having read `generation` before writing:
    /// older copies go, and the row written is kept.
    pub(crate) fn wrote_org(&self, org: &Organization, generation: Option<u64>) {
        let mut c = self.lock();
        match generation {
            Some(g) if c.usable() => c.orgs.wrote(org, g),
            _ => c.orgs.changed(org.id, Some(org.version)),
        }
    }

    /// Applies a notice's payload.
    pub(crate) fn notice(&self, payload: &str) {
        let mut c = self.lock();
        if is_ping(payload) {
            c.last_ping = Some(Instant::now());
            if !c.live {
                // Anything kept from before the listener was lost is gone already (`deaf`).
                c.live = true;
            }
            return;
        }
        for notice in notices(payload) {
            c.apply(notice);
        }
    }

    /// The listener cannot be trusted: forget everything and bypass the cache.
    pub(crate) fn deaf(&self) {
        let mut c = self.lock();
        c.live = false;
        c.last_ping = None;
        c.forget_all();
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
pub(crate) async fn listen(pool: PgPool, cache: Arc<PgCache>, wait: Duration) {
    let pinger = pool.clone();
    let _pings = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(PING_EVERY);
        loop {
            tick.tick().await;
            let ping = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(PING)
                .execute(&pinger);
            let _ = tokio::time::timeout(wait, ping).await;
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

/// Sends notices after their commits: one task per node, packing what waits into few payloads.
pub(crate) struct Notifier {
    queue: tokio::sync::mpsc::UnboundedSender<String>,
    _task: AbortOnDrop,
}

impl Notifier {
    pub(crate) fn start(pool: PgPool, wait: Duration) -> Self {
        let (queue, rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            queue,
            _task: AbortOnDrop(tokio::spawn(send_notices(pool, rx, wait))),
        }
    }

    /// A handle to queue notices (from a write's own task): each goes out as soon as the one in
    /// flight, if any, is sent.
    pub(crate) fn queue(&self) -> tokio::sync::mpsc::UnboundedSender<String> {
        self.queue.clone()
    }
}

async fn send_notices(
    pool: PgPool,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    wait: Duration,
) {
    let mut waiting: Option<String> = None;
    loop {
        let mut payload = match waiting.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        while let Ok(next) = rx.try_recv() {
            if payload.len() + 1 + next.len() > MAX_PAYLOAD {
                waiting = Some(next);
                break;
            }
            payload.push(',');
            payload.push_str(&next);
        }
        // A notice that cannot be sent (the database away) is retried a few times; the other
        // nodes' copies expire anyway.
        for attempt in 0..3u32 {
            let send = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(&pool);
            let sent = match tokio::time::timeout(wait, send).await {
                Ok(r) => r,
                Err(_) => Err(sqlx::Error::PoolTimedOut),
            };
            match sent {
                Ok(_) => break,
                Err(e) if attempt == 2 => {
                    tracing::warn!(error = %e, "could not send a cache notice; other nodes' copies expire");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memo::tests::org;

    fn live() -> PgCache {
        let c = PgCache::default();
        c.notice(PING);
        c
    }

    #[test]
    fn a_row_read_before_a_change_is_not_kept_after_its_notice() {
        let c = live();
        let v1 = org(1);
        let g = c.org_generation().unwrap();
        // Node B commits version 2; its notice arrives while our read of version 1 is on the way.
        c.notice(&org_notice(v1.id, 2));
        c.offer_org(&v1, g);
        assert!(c.org(v1.id).is_none(), "version 1 is older than the notice");
        let mut v2 = v1.clone();
        v2.version = 2;
        c.offer_org(&v2, g);
        assert_eq!(c.org(v1.id).unwrap().version, 2);
    }

    #[test]
    fn a_notice_drops_older_copies_only() {
        let c = live();
        let mut o = org(3);
        c.wrote_org(&o, c.org_generation());
        assert_eq!(
            c.org(o.id).unwrap().version,
            3,
            "the writer keeps what it wrote"
        );
        // Its own notice, coming back, leaves it.
        c.notice(&org_notice(o.id, 3));
        assert_eq!(c.org(o.id).unwrap().version, 3);
        // A newer change elsewhere drops it.
        c.notice(&org_notice(o.id, 4));
        assert!(c.org(o.id).is_none());
        // And a late write-through of an older version does not come back.
        o.version = 3;
        c.wrote_org(&o, c.org_generation());
        assert!(c.org(o.id).is_none());
    }

    #[test]
    fn a_payload_carries_several_notices() {
        let c = live();
        let (a, b, d) = (org(1), org(1), org(1));
        for o in [&a, &b, &d] {
            c.offer_org(o, c.org_generation().unwrap());
        }
        c.notice(&format!(
            "{},{},plan",
            org_notice(a.id, 2),
            org_notice(b.id, 5)
        ));
        assert!(c.org(a.id).is_none());
        assert!(c.org(b.id).is_none());
        assert!(c.org(d.id).is_some(), "not named, kept");
    }

    #[test]
    fn each_notice_is_read_and_a_foreign_one_is_unknown() {
        let o = org(1);
        let payload = format!(
            "key,plan,org:{id},org:{id}:7,wallet:{id},org:x,fax:1",
            id = o.id
        );
        assert_eq!(
            notices(&payload).collect::<Vec<_>>(),
            [
                Notice::Key,
                Notice::Plan,
                Notice::Org(o.id, None),
                Notice::Org(o.id, Some(7)),
                Notice::Wallet(o.id),
                Notice::Unknown,
                Notice::Unknown,
            ]
        );
    }

    #[test]
    fn a_wallet_notice_leaves_the_organization() {
        let c = live();
        let o = org(1);
        c.offer_org(&o, c.org_generation().unwrap());
        c.notice(&format!("wallet:{}", o.id));
        assert!(c.org(o.id).is_some());
    }

    #[test]
    fn an_unversioned_notice_drops_the_row_and_reads_in_flight() {
        let c = live();
        let o = org(1);
        let g = c.org_generation().unwrap();
        c.notice(&format!("org:{}", o.id));
        c.offer_org(&o, g);
        assert!(c.org(o.id).is_none(), "a read begun before the notice");
        c.offer_org(&o, c.org_generation().unwrap());
        assert!(c.org(o.id).is_some());
    }

    #[test]
    fn nothing_is_kept_while_deaf() {
        let c = live();
        let o = org(1);
        c.offer_org(&o, c.org_generation().unwrap());
        c.deaf();
        assert!(c.org(o.id).is_none());
        assert!(c.org_generation().is_none());
        c.wrote_org(&o, None);
        assert!(c.org(o.id).is_none());
    }
}
