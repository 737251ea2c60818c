//! The access check's read: an organization's standing, its wallet's funds and its plan's
//! entitlements, as committed now, for every check waiting at that moment with one round trip.
//!
//! The access check runs before every call and message a platform handles, so it is a
//! deployment's hottest route, and it may not answer from before a change committed through
//! any node. One task per thread that checks (up to four) answers the checks that arrived while
//! its previous round trip was on the wire, on a connection of its own that `LISTEN`s on the
//! cache channel (`postgres_cache`), and keeps the facts it has read for as long as that
//! connection lasts:
//!
//! - Every change of what it keeps sends its notice inside its own transaction, so PostgreSQL
//!   delivers it when the change commits: an organization's standing (`strict_change`, the
//!   batched settings writes, ownership, purges), a plan's entitlements (`plan`), and a wallet
//!   entry whose balance or SMS points cross zero (`wallet:<id>`; what is kept of a wallet is
//!   only whether each is above zero).
//! - Each batch makes one round trip on that connection: the organizations it keeps nothing of
//!   are read in one statement, and with none to read, an empty query. PostgreSQL sends a
//!   listening connection the notices of every commit made before the statement arrived ahead of
//!   the statement's answer, so once the answer is in, the notices taken in drop every copy a
//!   change committed before the checks made stale, and the facts kept are exact for them. Facts
//!   a notice took away are read in a second round trip.
//! - What that statement read is kept only if no notice in the same round trip names it (its
//!   change may have committed after the statement's snapshot).
//! - A lost connection takes what it kept with it (notices sent meanwhile are lost); the next
//!   one starts with nothing. An idle reader still makes its round trip every
//!   [`IDLE_ROUND_TRIP`], so that its connection takes in what it is sent (PostgreSQL keeps
//!   notices until every listener has read them).
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::RwLock;
use std::thread::ThreadId;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::cache::{self, Notice};
use super::conn::{Dedicated, Link};
use super::{bad, Bounds};
use crate::{AccessFacts, StoreError, StoreResult};
use orgbase_domain::access_check::{Funds, Standing};
use orgbase_domain::{OrgStatus, OrganizationId, Sms};

/// Checks in one statement at most.
const MAX_BATCH: usize = 256;

/// The organizations a reader keeps the facts of, at most; past it, it starts again.
const MAX_KEPT: usize = 50_000;

/// How often a reader without checks still makes its round trip.
const IDLE_ROUND_TRIP: Duration = Duration::from_millis(250);

type Pending = (OrganizationId, oneshot::Sender<StoreResult<AccessFacts>>);

/// The most readers (and connections) one node keeps: past it, threads share them.
const MAX_READERS: usize = 4;

/// One reader per thread that asks, spawned there at its first check (up to [`MAX_READERS`];
/// further threads are each given one of those): the answers then wake their callers on the
/// thread they run on, and where each thread is a runtime of its own (the server's,
/// `orgbase_api::threads`) the reader and its callers never leave it.
pub(crate) struct AccessReader {
    opts: PgConnectOptions,
    bounds: Bounds,
    readers: RwLock<Readers>,
}

#[derive(Default)]
struct Readers {
    started: Vec<mpsc::UnboundedSender<Pending>>,
    by_thread: Vec<(ThreadId, mpsc::UnboundedSender<Pending>)>,
}

impl AccessReader {
    pub(crate) fn new(opts: PgConnectOptions, bounds: Bounds) -> Self {
        Self {
            opts: opts.options(super::conn::INDEX_ONLY),
            bounds,
            readers: RwLock::default(),
        }
    }

    /// A reader that stopped with its runtime (another thread's, given to this one) is
    /// replaced and the check asked again: a read changes nothing.
    pub(crate) async fn read(&self, id: OrganizationId) -> StoreResult<AccessFacts> {
        for _ in 0..=MAX_READERS {
            let (done, answer) = oneshot::channel();
            if self.queue().send((id, done)).is_err() {
                continue;
            }
            if let Ok(answer) = answer.await {
                return answer;
            }
        }
        Err(StoreError::unavailable("the access reader gave no answer"))
    }

    /// This thread's reader: found, started, or (past [`MAX_READERS`]) one of the others. A
    /// reader whose runtime stopped is replaced.
    fn queue(&self) -> mpsc::UnboundedSender<Pending> {
        let me = std::thread::current().id();
        let found = self
            .readers
            .read()
            .expect("no panic holds it")
            .by_thread
            .iter()
            .find(|(t, q)| *t == me && !q.is_closed())
            .map(|(_, q)| q.clone());
        if let Some(q) = found {
            return q;
        }
        let mut readers = self.readers.write().expect("no panic holds it");
        readers.started.retain(|q| !q.is_closed());
        readers
            .by_thread
            .retain(|(t, q)| *t != me && !q.is_closed());
        let queue = if readers.started.len() < MAX_READERS {
            let (queue, rx) = mpsc::unbounded_channel();
            tokio::spawn(read_batches(
                Dedicated::<Listening>::new("the access reader", self.opts.clone(), self.bounds),
                rx,
            ));
            readers.started.push(queue.clone());
            queue
        } else {
            readers.started[readers.by_thread.len() % MAX_READERS].clone()
        };
        readers.by_thread.push((me, queue.clone()));
        queue
    }
}

/// The statement, its columns in the order `facts_from_row` takes them.
const READ: &str = "SELECT o.id, o.parent_id, o.status, o.status_reason, \
    o.deleted_at IS NOT NULL, o.billing_overdue, o.sms_enabled, o.sms_brand_id, \
    o.sms_campaign_id, o.entitlements, \
    coalesce(w.balance > 0, false), coalesce(w.sms_points > 0, false), p.entitlements \
    FROM organizations o \
    LEFT JOIN wallets w ON w.organization_id = o.id \
    LEFT JOIN plans p ON p.id = o.product_plan_id \
    WHERE o.id = ANY($1)";

/// How a reader's connection names itself to PostgreSQL (`pg_stat_activity.application_name`).
pub const READER_NAME: &str = "orgbase access reader";

/// A reader's connection, listening, and the facts it read while it lasts.
pub(crate) struct Listening {
    listener: PgListener,
    kept: HashMap<Uuid, AccessFacts>,
}

impl Link for Listening {
    fn open(opts: &PgConnectOptions) -> impl Future<Output = Result<Self, sqlx::Error>> + Send {
        // A pool of one, only because a listener is made from a pool; the connection is this
        // reader's for as long as it lasts (the listener is never asked to connect again).
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .test_before_acquire(false)
            .connect_lazy_with(opts.clone().application_name(READER_NAME));
        async move {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(cache::CHANNEL).await?;
            Ok(Self {
                listener,
                kept: HashMap::new(),
            })
        }
    }
}

/// Which organizations the notices of one round trip named.
enum Named {
    These(HashSet<Uuid>),
    All,
}

impl Named {
    fn covers(&self, id: &Uuid) -> bool {
        match self {
            Self::These(ids) => ids.contains(id),
            Self::All => true,
        }
    }
}

impl Listening {
    /// The facts of `ids` (each once) as committed now; an organization that does not exist is
    /// left out.
    async fn facts(&mut self, ids: &[Uuid]) -> Result<HashMap<Uuid, AccessFacts>, sqlx::Error> {
        let mut found = HashMap::with_capacity(ids.len());
        let (kept, unknown): (Vec<Uuid>, Vec<Uuid>) = ids
            .iter()
            .copied()
            .partition(|id| self.kept.contains_key(id));
        self.round_trip(&unknown, &mut found).await?;
        // What is still kept after the notices that round trip brought in is exact for these
        // checks; what they took away is read.
        let mut dropped = Vec::new();
        for id in kept {
            match self.kept.get(&id) {
                Some(f) => {
                    found.insert(id, f.clone());
                }
                None => dropped.push(id),
            }
        }
        if !dropped.is_empty() {
            self.round_trip(&dropped, &mut found).await?;
        }
        Ok(found)
    }

    /// One round trip: reads `ids` into `found` (none: an empty query), then takes in the notices
    /// that came with it. What was read is kept unless one of them names it.
    async fn round_trip(
        &mut self,
        ids: &[Uuid],
        found: &mut HashMap<Uuid, AccessFacts>,
    ) -> Result<(), sqlx::Error> {
        let rows = if ids.is_empty() {
            // An empty simple query: PostgreSQL answers it (EmptyQueryResponse, ReadyForQuery)
            // without a statement to bind or a portal to run, and sends the notices pending
            // before ReadyForQuery as it does for any statement.
            sqlx::Executor::execute(&mut self.listener, "").await?;
            Vec::new()
        } else {
            sqlx::query(READ)
                .bind(ids)
                .fetch_all(&mut self.listener)
                .await?
        };
        let named = self.take_notices();
        for row in &rows {
            let facts = facts_from_row(row)?;
            let id = facts.standing.id.0;
            if !named.covers(&id) {
                if self.kept.len() >= MAX_KEPT {
                    self.kept.clear();
                }
                self.kept.insert(id, facts.clone());
            }
            found.insert(id, facts);
        }
        Ok(())
    }

    /// Drops what the notices received name.
    fn take_notices(&mut self) -> Named {
        let mut named = Named::These(HashSet::new());
        while let Some(n) = self.listener.next_buffered() {
            if cache::is_ping(n.payload()) {
                continue;
            }
            for notice in cache::notices(n.payload()) {
                match notice {
                    Notice::Org(id, _) | Notice::Wallet(id) => {
                        self.kept.remove(&id.0);
                        if let Named::These(ids) = &mut named {
                            ids.insert(id.0);
                        }
                    }
                    Notice::Key => {}
                    Notice::Plan | Notice::Unknown => {
                        self.kept.clear();
                        named = Named::All;
                    }
                }
            }
        }
        named
    }
}

async fn read_batches(mut conn: Dedicated<Listening>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    loop {
        let first = match tokio::time::timeout(IDLE_ROUND_TRIP, rx.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => return,
            Err(_) => {
                // Idle: the round trip that takes in the notices waiting, if connected.
                if conn.is_open() {
                    let _ = conn
                        .run(async |l: &mut Listening| l.round_trip(&[], &mut HashMap::new()).await)
                        .await;
                }
                continue;
            }
        };
        // The checks the runtime is about to poll join this one: a moment's wait that takes
        // no round trip.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(p) = rx.try_recv() else { break };
            batch.push(p);
        }
        // How many checks ask for each organization: the last of them takes the facts found,
        // the others a copy.
        let mut askers: HashMap<Uuid, usize> = HashMap::with_capacity(batch.len());
        for (id, _) in &batch {
            *askers.entry(id.0).or_default() += 1;
        }
        let ids: Vec<Uuid> = askers.keys().copied().collect();
        let answer = conn
            .run(async |l: &mut Listening| l.facts(&ids).await)
            .await;
        let error = match answer {
            Ok(Some(Ok(mut found))) => {
                for (id, done) in batch {
                    let left = askers.get_mut(&id.0).expect("counted");
                    *left -= 1;
                    let facts = if *left == 0 {
                        found.remove(&id.0)
                    } else {
                        found.get(&id.0).cloned()
                    };
                    let _ = done.send(facts.ok_or(StoreError::NotFound));
                }
                continue;
            }
            Ok(Some(Err(e))) => super::map_err(e),
            Ok(None) => StoreError::unavailable("the access reader's connection stopped answering"),
            Err(msg) => StoreError::unavailable(msg),
        };
        for (_, done) in batch {
            let _ = done.send(Err(error.duplicate()));
        }
    }
}

fn facts_from_row(r: &PgRow) -> Result<AccessFacts, sqlx::Error> {
    let id = OrganizationId(r.try_get(0)?);
    let status: &str = r.try_get(2)?;
    let standing = Standing {
        id,
        parent_id: r.try_get::<Option<Uuid>, _>(1)?.map(OrganizationId),
        status: OrgStatus::parse(status).ok_or_else(|| bad("status", status))?,
        status_reason: r.try_get(3)?,
        deleted: r.try_get(4)?,
        billing_overdue: r.try_get(5)?,
        sms: Sms {
            enabled: r.try_get(6)?,
            brand_id: r.try_get(7)?,
            campaign_id: r.try_get(8)?,
        },
        entitlements: r.try_get::<Json<Vec<String>>, _>(9)?.0,
    };
    Ok(AccessFacts {
        standing,
        funds: Funds {
            balance: r.try_get(10)?,
            sms_points: r.try_get(11)?,
        },
        plan_entitlements: r.try_get::<Option<Json<Vec<String>>>, _>(12)?.map(|j| j.0),
    })
}
