//! The access check's read: an organization, its wallet and its plan's entitlements, as
//! committed now, for every check waiting at that moment in one statement.
//!
//! The access check runs before every call and message a platform handles, so it is a
//! deployment's hottest route, and it may not answer from the node's cache (a change made
//! through another node reaches that cache a moment after its commit). Read one by one, each
//! check is three round trips; here one task sends one `SELECT … WHERE o.id = ANY($1)` at a
//! time on a connection of its own, for all the checks that arrived while the previous one was
//! on the wire (one such task for each thread that checks, up to four). Each check still sees
//! every change committed before it arrived: its statement starts (and takes its snapshot) after
//! that.
use std::collections::HashMap;
use std::sync::RwLock;
use std::thread::ThreadId;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::types::Json;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::conn::Dedicated;
use super::{bad, Bounds};
use crate::{AccessFacts, StoreError, StoreResult};
use orgbase_domain::access_check::Standing;
use orgbase_domain::wallet::Wallet;
use orgbase_domain::{OrgStatus, OrganizationId, Sms};

/// Checks in one statement at most.
const MAX_BATCH: usize = 256;

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
                Dedicated::new("the access reader", self.opts.clone(), self.bounds),
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
    w.balance, w.sms_points, w.currency, w.updated_at, p.entitlements \
    FROM organizations o \
    LEFT JOIN wallets w ON w.organization_id = o.id \
    LEFT JOIN plans p ON p.id = o.product_plan_id \
    WHERE o.id = ANY($1)";

async fn read_batches(mut conn: Dedicated, mut rx: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = rx.recv().await {
        // The checks the runtime is about to poll join this one: a moment's wait that takes
        // no round trip.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(p) = rx.try_recv() else { break };
            batch.push(p);
        }
        // How many checks ask for each organization: the last of them takes the facts read,
        // the others a copy.
        let mut askers: HashMap<Uuid, usize> = HashMap::with_capacity(batch.len());
        for (id, _) in &batch {
            *askers.entry(id.0).or_default() += 1;
        }
        let ids: Vec<Uuid> = askers.keys().copied().collect();
        let answer = conn
            .run(async |c: &mut PgConnection| read_rows(c, &ids).await)
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

async fn read_rows(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, AccessFacts>, sqlx::Error> {
    let rows = sqlx::query(READ).bind(ids).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            let facts = facts_from_row(r)?;
            Ok((facts.standing.id.0, facts))
        })
        .collect()
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
    let wallet = match r.try_get::<Option<i64>, _>(10)? {
        Some(balance) => Some(Wallet {
            organization_id: id,
            balance,
            sms_points: r.try_get(11)?,
            currency: r.try_get(12)?,
            updated_at: Some(r.try_get(13)?),
        }),
        None => None,
    };
    Ok(AccessFacts {
        standing,
        wallet,
        plan_entitlements: r.try_get::<Option<Json<Vec<String>>>, _>(14)?.map(|j| j.0),
    })
}
