//! The embedded SQLite store.
//!
//! Durability: every connection runs in WAL mode with `synchronous=FULL`, so a write is on disk
//! before it is acknowledged. SQLite allows one writer at a time; rather than a pool of writers
//! taking turns on its lock (each paying its own fsync, the losers sleeping in `busy_timeout`),
//! writes go to one writer thread that runs every write queued at that moment in a single
//! transaction, each inside its own savepoint, and commits them together: one fsync for the batch
//! (group commit). A write whose own statements fail is rolled back to its savepoint alone.
//! Reads run on a small pool of read-only connections off the async threads.
//!
//! `WriteMode::Pool` keeps the pool-of-writers design, for the benchmark that compares the two.
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use orgbase_domain::{
    ApiKey, ApiKeyId, Email, KeyKind, Metadata, OrgStatus, OrgType, Organization, OrganizationId,
    Preferences, SecretHash, Sms, UserId,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::memo::{Generational, OrgMemo};
use crate::sqlite_search as search;
use crate::{
    ApiKeyStore, KeyQuery, OrganizationQuery, OrganizationStore, StatusFilter, Store, StoreError,
    StoreResult,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_people.sql"),
    include_str!("../migrations/sqlite/0003_member_stats.sql"),
    include_str!("../migrations/sqlite/0004_plans.sql"),
    include_str!("../migrations/sqlite/0005_one_owner.sql"),
    include_str!("../migrations/sqlite/0006_wallet.sql"),
    include_str!("../migrations/sqlite/0007_idempotency.sql"),
    include_str!("../migrations/sqlite/0008_wallet_idempotency.sql"),
    include_str!("../migrations/sqlite/0009_billing.sql"),
    include_str!("../migrations/sqlite/0010_member_content_version.sql"),
    include_str!("../migrations/sqlite/0011_idempotency_committed.sql"),
    include_str!("../migrations/sqlite/0012_audit_log.sql"),
    include_str!("../migrations/sqlite/0013_audit_log_rowid.sql"),
    include_str!("../migrations/sqlite/0014_webhooks.sql"),
    include_str!("../migrations/sqlite/0015_webhook_enabled_at.sql"),
    include_str!("../migrations/sqlite/0016_webhook_fan_out_at_write.sql"),
    include_str!("../migrations/sqlite/0017_rate_limit_nullable.sql"),
    include_str!("../migrations/sqlite/0018_rate_limit_follows_plan.sql"),
    include_str!("../migrations/sqlite/0019_webhook_message_ids_in_order.sql"),
];

#[path = "sqlite_audit.rs"]
mod audit;
#[path = "sqlite_billing.rs"]
mod billing;
#[path = "sqlite_idempotency.rs"]
mod idempotency;
#[path = "sqlite_people.rs"]
mod people;
#[path = "sqlite_plans.rs"]
mod plans;
#[path = "sqlite_wallet.rs"]
mod wallet;
#[path = "sqlite_webhooks.rs"]
mod webhooks;
const READERS: usize = 4;
/// Upper bound on the writes one transaction takes, so one fsync never waits on an endless queue.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// One writer thread, queued writes committed together.
    #[default]
    GroupCommit,
    /// Each write in its own transaction on any pooled connection (for comparison).
    Pool,
}

impl WriteMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "group" | "group-commit" => Some(Self::GroupCommit),
            "pool" => Some(Self::Pool),
            _ => None,
        }
    }
}

/// A write: runs its statements, answers whether they succeeded, and hands back what to do once
/// the transaction's fate is known.
/// `None` means the job cannot run (the transaction could not begin): it only reports back.
struct Job {
    guard: Guard,
    run: RunJob,
}
type RunJob = Box<dyn FnOnce(Option<&Connection>) -> (Ran, Finish) + Send>;

/// How a job's statements went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Done,
    /// Refused by a rule or a constraint (not found, a conflict, a stale version).
    Refused,
    /// The database or the code failed (an I/O error, a full disk, a panic).
    Failed,
}

impl Ran {
    fn of<T>(out: &StoreResult<T>) -> Self {
        match out {
            Ok(_) => Ran::Done,
            Err(
                StoreError::NotFound | StoreError::Conflict { .. } | StoreError::VersionMismatch,
            ) => Ran::Refused,
            Err(StoreError::Unavailable(_) | StoreError::Other(_)) => Ran::Failed,
        }
    }
}

/// How a write keeps its failure from reaching the other writes of its group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// A savepoint of its own, rolled back if it fails: for a write of several statements any of
    /// which may refuse it after another has written.
    Savepoint,
    /// None: the write makes every check that can refuse it before it changes a row, and its
    /// statements after that fail only when the database does (a full disk, an I/O error); a
    /// refused statement changes nothing (SQLite keeps each statement atomic). The savepoint it
    /// spares copied each page the write touched (about a tenth of the writer's time per change).
    /// Should such a write fail otherwise than by a refusal after changing a row, the whole group
    /// commit is rolled back and every write in it fails: none commits half done. (A refusal
    /// cannot be told apart by the connection's change count: SQLite counts the row of an insert
    /// it then undoes for a foreign key.)
    ChecksFirst,
}
type Finish = Box<dyn FnOnce(Option<StoreError>) + Send>;

pub struct SqliteStore {
    path: PathBuf,
    mode: WriteMode,
    writer: Option<mpsc::UnboundedSender<Job>>,
    readers: Arc<ConnPool>,
    /// Dropping this stops the checkpoint thread.
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
    keys: Arc<Generational<ApiKey>>,
    orgs: Arc<OrgCache>,
    plans: Arc<Generational<orgbase_domain::Plan>>,
    /// Wallets by organization id (none: never credited), for the access check, which reads one
    /// on every call and message. Exact like the others: an entry drops its organization's at
    /// commit, before it answers, and a read that raced it puts nothing back.
    wallets: Arc<Generational<Option<orgbase_domain::wallet::Wallet>>>,
    /// Wakes the search indexer (pool mode; the writer thread holds its own).
    search_wake: Option<std::sync::mpsc::SyncSender<()>>,
    /// The writer, checkpoint and search threads, joined on drop.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Set while writes fail because the file cannot be written (disk full, read-only): the
    /// store is then not ready, until a write (a probe from `ping`) succeeds again.
    write_failing: Arc<AtomicBool>,
}

impl Drop for SqliteStore {
    /// Closes the channels the background threads wait on (the writer first finishes what is
    /// queued), then waits for them, so that nothing holds the files once the store is gone.
    fn drop(&mut self) {
        self.writer.take();
        self.search_wake.take();
        self._checkpointer.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Active API keys kept by hash (the key cache). Every request looks its key up, so this saves a
/// read each time. A revocation through this process clears the cache before it answers; the
/// generation stops a look-up that raced a revocation from putting back what was just revoked.
/// A key revoked by another process (`orgbase keys revoke`) stops within `KEY_CACHE_FRESH`,
/// since no entry is served older than that.
const KEY_CACHE_MAX: usize = 10_000;
const KEY_CACHE_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Organizations by id, for the look-up every organization route starts with. Exact, for the
/// same reason as the key cache: this process is the only writer. A committed write keeps the
/// row it wrote, on the writer's thread, at commit; a read may put in what it read only if no
/// newer version was committed meanwhile (`memo`), so nothing older than the database is ever
/// served.
struct OrgCache(Mutex<OrgMemo>);

impl Default for OrgCache {
    fn default() -> Self {
        Self(Mutex::new(OrgMemo::new(None)))
    }
}

impl OrgCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, OrgMemo> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// The cached organization, or the generation to hand back to `offer` after reading it.
    fn get(&self, id: OrganizationId) -> Result<Organization, u64> {
        let c = self.lock();
        c.get(id).ok_or(c.generation())
    }
    fn generation(&self) -> u64 {
        self.lock().generation()
    }
    fn offer(&self, org: &Organization, generation: u64) {
        self.lock().offer(org, generation);
    }
    /// Committed: `org`, written after `generation` was taken.
    fn wrote(&self, org: &Organization, generation: u64) {
        self.lock().wrote(org, generation);
    }
    /// Committed: a change of `id` whose result is not known (a row deleted).
    fn changed(&self, id: OrganizationId) {
        self.lock().changed(id, None);
    }
}

struct ConnPool {
    conns: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ConnPool {
    fn take(&self) -> Option<Connection> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }
    fn give_back(&self, conn: Connection) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

fn open_conn(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // The WAL is reused in place, never truncated: truncating a large WAL happens inside the
        // first commit after a checkpoint and stalled it for ~300 ms on this machine's disk.
        conn.pragma_update(None, "journal_size_limit", -1)?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 32 MiB of page cache per connection, and reads through a memory map instead of a read
    // call per page.
    conn.pragma_update(None, "cache_size", -32 * 1024)?;
    conn.pragma_update(None, "mmap_size", 256 * 1024 * 1024)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    // Unicode case folding for searches (SQLite's own lower() folds ASCII only), the same as
    // PostgreSQL's ILIKE does.
    conn.create_scalar_function(
        "orgbase_fold",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(ctx.get::<Option<String>>(0)?.map(|s| s.to_lowercase())),
    )?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        if sql.contains("PRAGMA writable_schema = ON") {
            // The table definitions were edited in place: a new schema version makes every
            // connection, this one included, read them again.
            let schema: i64 = tx.pragma_query_value(None, "schema_version", |r| r.get(0))?;
            tx.pragma_update(None, "schema_version", schema + 1)?;
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies its migrations.
    pub async fn open(path: &str, mode: WriteMode) -> StoreResult<Self> {
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::msg(
                "an in-memory SQLite database is not supported: give a file path",
            ));
        }
        let path = PathBuf::from(path);
        let p = path.clone();
        let writer_conn = tokio::task::spawn_blocking(move || -> rusqlite::Result<Connection> {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            let mut conn = open_conn(&p, false)?;
            migrate(&mut conn)?;
            search::prepare(&conn, &p)?;
            Ok(conn)
        })
        .await
        .map_err(StoreError::other)?
        .map_err(StoreError::other)?;

        let mut conns = Vec::new();
        // In pool mode every connection writes; in group-commit mode readers are read-only.
        let read_only = mode == WriteMode::GroupCommit;
        for _ in 0..READERS {
            let conn = open_conn(&path, read_only).map_err(StoreError::other)?;
            search::attach(&conn, &path).map_err(StoreError::other)?;
            conns.push(conn);
        }
        let (search_wake, wake_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let mut threads = Vec::new();
        let readers = Arc::new(ConnPool {
            conns: Mutex::new(conns),
            permits: Arc::new(Semaphore::new(READERS)),
        });

        let mut _checkpointer = None;
        let mut indexer_ack = None;
        let writer = match mode {
            WriteMode::GroupCommit => {
                // Checkpoints run on a thread of their own, so that copying the WAL back into
                // the database (and its fsync) never stalls the writer's commits.
                writer_conn
                    .pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(StoreError::other)?;
                let checkpoint_conn = open_conn(&path, false).map_err(StoreError::other)?;
                let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
                let wal_frames = Arc::new(AtomicI64::new(0));
                let frames = wal_frames.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name("sqlite-checkpoint".into())
                        .spawn(move || checkpoint_loop(checkpoint_conn, stop_rx, frames))
                        .map_err(StoreError::other)?,
                );
                let (tx, rx) = mpsc::unbounded_channel();
                let wake = search_wake.clone();
                // Weak, so that the writer (and with it the indexer) stops with the store.
                let to_writer = tx.downgrade();
                let ack: search::Ack = Box::new(move |last| {
                    let job = Job {
                        // One statement.
                        guard: Guard::ChecksFirst,
                        run: Box::new(move |conn| {
                            let ok = conn.is_some_and(|c| {
                                c.execute("DELETE FROM search_outbox WHERE seq <= ?1", [last])
                                    .is_ok()
                            });
                            (if ok { Ran::Done } else { Ran::Failed }, Box::new(|_| {}))
                        }),
                    };
                    if let Some(writer) = to_writer.upgrade() {
                        let _ = writer.send(job);
                    }
                });
                indexer_ack = Some(ack);
                threads.push(
                    std::thread::Builder::new()
                        .name("sqlite-writer".into())
                        .spawn(move || writer_loop(writer_conn, rx, wake, wal_frames))
                        .map_err(StoreError::other)?,
                );
                _checkpointer = Some(stop_tx);
                Some(tx)
            }
            WriteMode::Pool => None,
        };
        let indexer = search::Indexer::open(&path, indexer_ack).map_err(StoreError::other)?;
        threads.push(
            std::thread::Builder::new()
                .name("sqlite-search".into())
                .spawn(move || search::run(indexer, wake_rx))
                .map_err(StoreError::other)?,
        );
        Ok(Self {
            path,
            mode,
            writer,
            readers,
            _checkpointer,
            keys: Arc::new(Generational::new(KEY_CACHE_MAX).fresh_for(KEY_CACHE_FRESH)),
            orgs: Arc::default(),
            plans: Arc::new(Generational::new(plans::PLAN_CACHE_MAX)),
            wallets: Arc::new(Generational::new(wallet::WALLET_CACHE_MAX)),
            search_wake: Some(search_wake),
            threads,
            write_failing: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Brings the search index up to date now (what the indexer thread does continually);
    /// answers how many queued changes it applied. For tests and tools.
    pub async fn drain_search_index(&self) -> StoreResult<usize> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            search::Indexer::open(&path, None).and_then(|mut ix| ix.drain())
        })
        .await
        .map_err(StoreError::other)?
        .map_err(StoreError::other)
    }

    pub fn write_mode(&self) -> WriteMode {
        self.mode
    }

    /// Runs `f` on a pooled connection, off the async threads. The connection is taken and given
    /// back inside the blocking task, which runs to its end even when the request that asked is
    /// dropped (a client hanging up), so no connection is ever lost to a cancellation.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        let permit = pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(StoreError::other)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool
                .take()
                .ok_or_else(|| StoreError::msg("no pooled connection"))?;
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(&conn)))
                .unwrap_or_else(|_| Err(StoreError::msg("panic in a database read")));
            pool.give_back(conn);
            out
        })
        .await
        .map_err(StoreError::other)?
    }

    /// Runs a short point read (a look-up by key) right here, without a hop to another thread:
    /// the hop would cost more than the read. Nothing awaits between taking the connection and
    /// giving it back, so a cancelled caller cannot lose it; a panic gives it back on unwind.
    async fn read_now<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T>,
    {
        struct Lent<'a>(&'a ConnPool, Option<Connection>);
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                if let Some(c) = self.1.take() {
                    self.0.give_back(c);
                }
            }
        }
        let _permit = self
            .readers
            .permits
            .acquire()
            .await
            .map_err(StoreError::other)?;
        let conn = self
            .readers
            .take()
            .ok_or_else(|| StoreError::msg("no pooled connection"))?;
        let lent = Lent(&self.readers, Some(conn));
        f(lent.1.as_ref().expect("lent"))
    }

    /// Runs `f` in a write transaction and answers once it is durable.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.write_then(f, |_| {}).await
    }

    /// Notes whether the file took a write, for readiness.
    fn note_write<T>(&self, result: &StoreResult<T>) {
        match result {
            Ok(_) => self.write_failing.store(false, Ordering::Relaxed),
            Err(StoreError::Unavailable(_)) => self.write_failing.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
    }

    /// `write`, with `on_commit` run once the write is durable, on the thread that committed it:
    /// it runs even if the caller has gone away meanwhile (cache upkeep must not be skipped).
    async fn write_then<T, F, C>(&self, f: F, on_commit: C) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        C: FnOnce(&T) + Send + 'static,
    {
        self.write_with(Guard::Savepoint, f, on_commit).await
    }

    /// `write_then`, guarded as `guard` says in a group commit ([`Guard::ChecksFirst`] for a write
    /// whose checks all come before its first change).
    async fn write_with<T, F, C>(&self, guard: Guard, f: F, on_commit: C) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        C: FnOnce(&T) + Send + 'static,
    {
        // The request's Idempotency-Key, marked committed in this write's own transaction.
        let mark = crate::idempotency_mark::current();
        // The change's audit entries and webhook events, written in the same transaction.
        let staged = crate::audit::staged();
        let f = move |conn: &Connection| {
            if let Some(m) = &mark {
                // The claim is checked before the change writes anything, so that losing it
                // refuses the write before its first change (its mark below then always takes:
                // nothing else writes while this transaction holds the lock).
                let held = conn
                    .prepare_cached(
                        "SELECT 1 FROM idempotency_keys \
                         WHERE scope = ?1 AND key = ?2 AND claim_id = ?3",
                    )
                    .and_then(|mut s| s.exists(rusqlite::params![m.scope, m.key, m.claim_id]))
                    .map_err(map_err)?;
                if !held {
                    return Err(claim_lost());
                }
            }
            let v = f(conn)?;
            if let Some(s) = staged.as_ref().filter(|s| !s.is_written()) {
                audit::insert(conn, &s.entries())?;
                webhooks::insert_events(conn, || s.events())?;
            }
            if let Some(m) = &mark {
                let marked = conn
                    .prepare_cached(
                        "UPDATE idempotency_keys SET committed = 1 \
                         WHERE scope = ?1 AND key = ?2 AND claim_id = ?3",
                    )
                    .and_then(|mut s| s.execute(rusqlite::params![m.scope, m.key, m.claim_id]))
                    .map_err(map_err)?;
                if marked == 0 {
                    return Err(claim_lost());
                }
            }
            if let Some(s) = &staged {
                s.written();
            }
            Ok(v)
        };
        match &self.writer {
            Some(writer) => {
                let (tx, rx) = oneshot::channel::<StoreResult<T>>();
                let run = Box::new(move |conn: Option<&Connection>| {
                    let out = match conn {
                        Some(conn) => std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
                            .unwrap_or_else(|_| Err(StoreError::msg("panic in a database write"))),
                        None => Err(StoreError::unavailable("the write did not run")),
                    };
                    let ran = Ran::of(&out);
                    let finish: Finish = Box::new(move |commit_err| {
                        let result = match commit_err {
                            Some(e) => Err(e),
                            None => out,
                        };
                        if let Ok(v) = &result {
                            on_commit(v);
                        }
                        let _ = tx.send(result);
                    });
                    (ran, finish)
                });
                let job = Job { guard, run };
                writer
                    .send(job)
                    .map_err(|_| StoreError::unavailable("the SQLite writer has stopped"))?;
                let result = rx
                    .await
                    .map_err(|_| StoreError::unavailable("the SQLite writer dropped a write"))?;
                self.note_write(&result);
                result
            }
            None => {
                let wake = self.search_wake.clone().expect("set until drop");
                let result = self
                    .read(move |conn| {
                        conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
                        match f(conn) {
                            Ok(v) => match conn.execute_batch("COMMIT") {
                                Ok(()) => {
                                    on_commit(&v);
                                    let _ = wake.try_send(());
                                    Ok(v)
                                }
                                Err(e) => {
                                    let _ = conn.execute_batch("ROLLBACK");
                                    Err(map_err(e))
                                }
                            },
                            Err(e) => {
                                let _ = conn.execute_batch("ROLLBACK");
                                Err(e)
                            }
                        }
                    })
                    .await;
                self.note_write(&result);
                result
            }
        }
    }
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Job>,
    search_wake: std::sync::mpsc::SyncSender<()>,
    wal_frames: Arc<AtomicI64>,
) {
    let mut restarted = std::time::Instant::now();
    webhooks::watch_endpoints(&conn);
    while let Some(first) = rx.blocking_recv() {
        webhooks::forget_endpoints();
        if wal_frames.load(Ordering::Relaxed) >= RESTART_FRAMES
            && restarted.elapsed() >= RESTART_EVERY
        {
            restart_wal(&conn);
            wal_frames.store(0, Ordering::Relaxed);
            restarted = std::time::Instant::now();
        }
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let batch_started = std::time::Instant::now();
        let batch_len = batch.len();
        if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "sqlite writer could not begin a transaction");
            for job in batch {
                let (_, finish) = (job.run)(None);
                finish(Some(map_err(clone_err(&e))));
            }
            continue;
        }
        let mut finishes = Vec::with_capacity(batch.len());
        // Set when SQLite rolled the whole transaction back under us (I/O error, disk full):
        // every write of the batch then fails, and none runs outside a transaction.
        let mut aborted = false;
        for job in batch {
            if aborted {
                finishes.push((job.run)(None).1);
                continue;
            }
            let guarded = job.guard == Guard::Savepoint;
            if guarded {
                if let Err(e) = run(&conn, "SAVEPOINT job") {
                    tracing::error!(error = %e, "sqlite writer could not open a savepoint");
                    aborted = true;
                    finishes.push((job.run)(None).1);
                    continue;
                }
            }
            let changes_before = conn.total_changes();
            let (ran, finish) = (job.run)(Some(&conn));
            finishes.push(finish);
            if conn.is_autocommit() {
                tracing::error!("sqlite rolled back a group commit transaction");
                aborted = true;
                continue;
            }
            if !guarded {
                if ran == Ran::Failed && conn.total_changes() != changes_before {
                    tracing::error!(
                        "a write without a savepoint failed after changing rows: \
                         the group commit is rolled back"
                    );
                    aborted = true;
                }
                continue;
            }
            let end = if ran == Ran::Done {
                run(&conn, "RELEASE job")
            } else {
                webhooks::forget_endpoints();
                run(&conn, "ROLLBACK TO job").and_then(|()| run(&conn, "RELEASE job"))
            };
            if let Err(e) = end {
                tracing::error!(error = %e, "sqlite writer could not close a savepoint");
                aborted = true;
            }
        }
        let ran = batch_started.elapsed();
        let outcome = if aborted {
            let _ = conn.execute_batch("ROLLBACK");
            Err(StoreError::unavailable(
                "the transaction was rolled back (the database could not be written)",
            ))
        } else {
            run(&conn, "COMMIT").map_err(|e| {
                tracing::error!(error = %e, "sqlite group commit failed");
                let _ = conn.execute_batch("ROLLBACK");
                map_err(e)
            })
        };
        let took = batch_started.elapsed();
        if took > SLOW_COMMIT {
            tracing::warn!(
                writes = batch_len,
                statements_ms = ran.as_millis() as u64,
                total_ms = took.as_millis() as u64,
                "slow sqlite group commit"
            );
        }
        match outcome {
            Ok(()) => {
                finishes.into_iter().for_each(|f| f(None));
                let _ = search_wake.try_send(());
            }
            Err(e) => {
                for f in finishes {
                    f(Some(e.duplicate()));
                }
            }
        }
    }
}

/// The claim on the request's Idempotency-Key was taken over (it outlived its lease): this
/// change must not commit beside the new one.
fn claim_lost() -> StoreError {
    StoreError::Conflict {
        constraint: "idempotency_claim_lost",
    }
}

/// Runs one of the writer's fixed statements, prepared once (`execute_batch` parsed each
/// savepoint afresh: two parses per write).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Starts the WAL over from its beginning, between two group commits.
///
/// Under a steady stream of writes and reads the WAL never starts over by itself: SQLite
/// rewinds it only when a writer begins with every frame copied back and no reader inside it,
/// and the next commit always comes first. It then grows for as long as the load lasts (900 MB
/// after a minute of settings writes here), every commit appending to new blocks of the file,
/// which the filesystem must allocate and convert (a kernel thread busy a quarter of a core).
/// A RESTART checkpoint copies back the little the checkpoint thread has not, waits for the
/// readers inside the WAL (each a point read, well under a millisecond), and lets the next
/// commit write from the start of the file again. It runs on the writer, so it waits for no
/// commit and no commit waits on its lock; if readers keep it waiting past a few milliseconds
/// it gives up until the next time.
fn restart_wal(conn: &Connection) {
    let started = std::time::Instant::now();
    let _ = conn.busy_timeout(RESTART_PATIENCE);
    let done = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    });
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
    match done {
        Ok((busy, frames)) if started.elapsed() > SLOW_COMMIT => tracing::warn!(
            busy = busy != 0,
            wal_frames = frames,
            ms = started.elapsed().as_millis() as u64,
            "slow sqlite WAL restart"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "sqlite WAL restart failed"),
    }
}

/// How long a connection waits for another's lock before answering "busy" (unavailable). Well
/// under the request deadline: in group-commit mode only the checkpointer and the writer take
/// locks, so this is reached only when something outside holds the file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The WAL is started over once it holds this many frames (of 4 KiB: 32 MiB)…
const RESTART_FRAMES: i64 = 8192;
/// …at most this often…
const RESTART_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// …waiting at most this long for readers to leave it.
const RESTART_PATIENCE: std::time::Duration = std::time::Duration::from_millis(20);

/// A group commit slower than this is logged (a stall is worth knowing about).
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// How often committed WAL frames are copied back. Rarely enough that a page changed many times
/// in between is copied once (random updates otherwise double the disk writes), often enough
/// that the WAL stays small (a few tens of MB at the write rates this machine reaches).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(1000);

/// Copies committed WAL frames back into the database every so often, without blocking the
/// writer (PASSIVE), until the store is dropped.
fn checkpoint_loop(
    conn: Connection,
    stop: std::sync::mpsc::Receiver<()>,
    wal_frames: Arc<AtomicI64>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let started = std::time::Instant::now();
        let frames =
            match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "sqlite checkpoint failed");
                    continue;
                }
            };
        // Under constant writes the WAL does not start over by itself: the writer does that
        // (`restart_wal`) once it has grown.
        wal_frames.store(frames, Ordering::Relaxed);
        if started.elapsed() > SLOW_COMMIT {
            tracing::warn!(
                wal_frames = frames,
                ms = started.elapsed().as_millis() as u64,
                "slow sqlite checkpoint"
            );
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn clone_err(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::ToSqlConversionFailure(other.to_string().into()),
    }
}

/// Maps SQLite's errors onto ours, naming constraint violations in one place.
fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let constraint = if msg.contains("organizations.slug") {
                "organization_slug"
            } else if msg.contains("api_keys.secret_hash") {
                "api_key_hash"
            } else if msg.contains("api_keys.bootstrap") {
                "bootstrap_key"
            } else if msg.contains("users.email") {
                "user_email"
            } else if msg.contains("roles.organization_id, roles.name") {
                "role_name"
            } else if msg.contains("workspaces.organization_id, workspaces.name") {
                "workspace_name"
            } else if msg.contains("invitations.organization_id, invitations.email") {
                "invitation_pending"
            } else if msg.ends_with("member_roles.organization_id") {
                "owner_role"
            } else if msg.contains("members.organization_id, members.user_id") {
                "member_exists"
            } else if msg.contains("organization plan") {
                "organization_plan"
            } else if msg.contains("plans.id") {
                "plan_id"
            } else if msg.contains("billing_accounts.provider, billing_accounts.customer_id") {
                "billing_customer"
            } else if msg.contains("FOREIGN KEY") {
                "foreign_key"
            } else {
                return StoreError::other(e);
            };
            StoreError::Conflict { constraint }
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::OutOfMemory
            ) =>
        {
            StoreError::unavailable(e)
        }
        _ => StoreError::other(e),
    }
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn parse_uuid(s: &str) -> rusqlite::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn bad_value(what: &str, v: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unexpected {what} {v:?}").into(),
    )
}

const ORG_COLUMNS: &str = "id, name, slug, country_code, avatar_url, status, status_reason, \
    org_type, parent_id, owner_id, product_plan_id, offered_product_plan_id, sms_enabled, \
    sms_brand_id, sms_campaign_id, premium, external_account_id, external_billing_id, kyc_level, \
    placement_group, billing_overdue, rate_limit, entitlements, preferences, metadata, \
    created_at, updated_at, deleted_at, version, subscription";

/// `ORG_COLUMNS`, one name each, by place (split once, not at every update).
static ORG_COLUMN_NAMES: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| ORG_COLUMNS.split(',').map(str::trim).collect());

fn org_from_row(r: &Row<'_>) -> rusqlite::Result<Organization> {
    let status: String = r.get(5)?;
    let org_type: String = r.get(7)?;
    let parent: Option<String> = r.get(8)?;
    let owner: Option<String> = r.get(9)?;
    let deleted: Option<String> = r.get(27)?;
    Ok(Organization {
        id: OrganizationId(parse_uuid(&r.get::<_, String>(0)?)?),
        name: r.get(1)?,
        slug: r.get(2)?,
        country_code: r.get(3)?,
        avatar_url: r.get(4)?,
        status: OrgStatus::parse(&status).ok_or_else(|| bad_value("status", &status))?,
        status_reason: r.get(6)?,
        org_type: OrgType::parse(&org_type).ok_or_else(|| bad_value("type", &org_type))?,
        parent_id: parent
            .as_deref()
            .map(parse_uuid)
            .transpose()?
            .map(OrganizationId),
        owner: owner.as_deref().map(parse_uuid).transpose()?.map(UserId),
        product_plan_id: r.get(10)?,
        offered_product_plan_id: r.get(11)?,
        sms: Sms {
            enabled: r.get(12)?,
            brand_id: r.get(13)?,
            campaign_id: r.get(14)?,
        },
        premium: r.get(15)?,
        external_account_id: r.get(16)?,
        external_billing_id: r.get(17)?,
        kyc_level: r.get(18)?,
        placement_group: r.get(19)?,
        billing_overdue: r.get(20)?,
        rate_limit: r.get(21)?,
        entitlements: parse_json(&r.get::<_, String>(22)?)?,
        preferences: parse_json::<Preferences>(&r.get::<_, String>(23)?)?,
        metadata: parse_json::<Metadata>(&r.get::<_, String>(24)?)?,
        created_at: parse_ts(&r.get::<_, String>(25)?)?,
        updated_at: parse_ts(&r.get::<_, String>(26)?)?,
        deleted_at: deleted.as_deref().map(parse_ts).transpose()?,
        version: r.get(28)?,
        subscription: r
            .get::<_, Option<String>>(29)?
            .as_deref()
            .map(parse_json)
            .transpose()?,
    })
}

/// One column of an organization, borrowed from it: two versions of an organization are
/// compared column by column without copying or serializing anything, and only a column that
/// changed becomes an SQL value (with its JSON made).
#[derive(PartialEq)]
enum OrgCell<'a> {
    Null,
    Text(&'a str),
    Id(uuid::Uuid),
    Int(i64),
    Time(&'a DateTime<Utc>),
    Entitlements(&'a Vec<String>),
    Preferences(&'a Preferences),
    Metadata(&'a Metadata),
    Subscription(&'a orgbase_domain::plan::Subscription),
}

impl OrgCell<'_> {
    fn to_sql(&self) -> StoreResult<SqlValue> {
        Ok(match self {
            OrgCell::Null => SqlValue::Null,
            OrgCell::Text(s) => SqlValue::Text((*s).to_owned()),
            OrgCell::Id(u) => SqlValue::Text(u.hyphenated().to_string()),
            OrgCell::Int(i) => SqlValue::Integer(*i),
            OrgCell::Time(t) => SqlValue::Text(ts(t)),
            OrgCell::Entitlements(v) => SqlValue::Text(to_json(v)?),
            OrgCell::Preferences(v) => SqlValue::Text(to_json(v)?),
            OrgCell::Metadata(v) => SqlValue::Text(to_json(v)?),
            OrgCell::Subscription(v) => SqlValue::Text(to_json(v)?),
        })
    }
}

/// The organization's columns in `ORG_COLUMNS` order.
fn org_cells(o: &Organization) -> [OrgCell<'_>; 30] {
    fn opt(v: &Option<String>) -> OrgCell<'_> {
        v.as_deref().map_or(OrgCell::Null, OrgCell::Text)
    }
    [
        OrgCell::Id(o.id.0),
        OrgCell::Text(&o.name),
        OrgCell::Text(&o.slug),
        OrgCell::Text(&o.country_code),
        opt(&o.avatar_url),
        OrgCell::Text(o.status.as_str()),
        opt(&o.status_reason),
        OrgCell::Text(o.org_type.as_str()),
        o.parent_id.map_or(OrgCell::Null, |p| OrgCell::Id(p.0)),
        o.owner.map_or(OrgCell::Null, |u| OrgCell::Id(u.0)),
        OrgCell::Text(&o.product_plan_id),
        opt(&o.offered_product_plan_id),
        OrgCell::Int(o.sms.enabled as i64),
        opt(&o.sms.brand_id),
        opt(&o.sms.campaign_id),
        OrgCell::Int(o.premium as i64),
        opt(&o.external_account_id),
        opt(&o.external_billing_id),
        OrgCell::Int(o.kyc_level as i64),
        OrgCell::Text(&o.placement_group),
        OrgCell::Int(o.billing_overdue as i64),
        o.rate_limit
            .map_or(OrgCell::Null, |v| OrgCell::Int(v.into())),
        OrgCell::Entitlements(&o.entitlements),
        OrgCell::Preferences(&o.preferences),
        OrgCell::Metadata(&o.metadata),
        OrgCell::Time(&o.created_at),
        OrgCell::Time(&o.updated_at),
        o.deleted_at.as_ref().map_or(OrgCell::Null, OrgCell::Time),
        OrgCell::Int(o.version),
        o.subscription
            .as_ref()
            .map_or(OrgCell::Null, OrgCell::Subscription),
    ]
}

/// The organization's columns in `ORG_COLUMNS` order, as SQL values.
fn org_values(o: &Organization) -> StoreResult<Vec<SqlValue>> {
    org_cells(o).iter().map(OrgCell::to_sql).collect()
}

/// The columns of `new` that differ from `old` (the id, column 0, never changes), each by its
/// place in `ORG_COLUMNS`, with its new value.
fn org_changes(new: &Organization, old: &Organization) -> StoreResult<Vec<(usize, SqlValue)>> {
    let (new, old) = (org_cells(new), org_cells(old));
    new.iter()
        .zip(old.iter())
        .enumerate()
        .skip(1)
        .filter(|(_, (n, o))| n != o)
        .map(|(i, (n, _))| Ok((i, n.to_sql()?)))
        .collect()
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(StoreError::other)
}

/// Writes `changes` (from `org_changes`) to the organization's row, if its stored version is
/// still `expected_version`; otherwise `VersionMismatch` (or `NotFound`).
fn update_org_row(
    conn: &Connection,
    org: &Organization,
    changes: &[(usize, SqlValue)],
    expected_version: i64,
) -> StoreResult<()> {
    let mut sets = Vec::with_capacity(changes.len());
    let mut args = Vec::with_capacity(changes.len() + 2);
    args.push(SqlValue::Text(org.id.to_string()));
    for (i, value) in changes {
        args.push(value.clone());
        sets.push(format!("{} = ?{}", ORG_COLUMN_NAMES[*i], args.len()));
    }
    args.push(SqlValue::Integer(expected_version));
    let sql = format!(
        "UPDATE organizations SET {} WHERE id = ?1 AND version = ?{}",
        sets.join(", "),
        args.len()
    );
    let changed = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(args)))
        .map_err(map_err)?;
    if changed == 0 {
        let exists: Option<i64> = conn
            .prepare_cached("SELECT version FROM organizations WHERE id = ?1")
            .and_then(|mut s| s.query_row([org.id.to_string()], |r| r.get(0)).optional())
            .map_err(map_err)?;
        return Err(match exists {
            Some(_) => StoreError::VersionMismatch,
            None => StoreError::NotFound,
        });
    }
    Ok(())
}

fn write_metadata(conn: &Connection, o: &Organization) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM organization_metadata WHERE organization_id = ?1")?
        .execute([o.id.to_string()])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO organization_metadata (organization_id, key, value) VALUES (?1, ?2, ?3)",
    )?;
    for (k, v) in &o.metadata.0 {
        ins.execute(params![o.id.to_string(), k, Metadata::index_text(v)])?;
    }
    Ok(())
}

#[async_trait]
impl OrganizationStore for SqliteStore {
    async fn insert_organization(&self, org: &Organization) -> StoreResult<()> {
        let org = org.clone();
        let values = org_values(&org)?;
        // Without metadata the row's insert (its slug unique) is the write's one statement.
        let has_metadata = !org.metadata.0.is_empty();
        let guard = if has_metadata {
            Guard::Savepoint
        } else {
            Guard::ChecksFirst
        };
        self.write_with(
            guard,
            move |conn| {
                let placeholders = (1..=values.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>();
                let sql = format!(
                    "INSERT INTO organizations ({ORG_COLUMNS}) VALUES ({})",
                    placeholders.join(", ")
                );
                conn.prepare_cached(&sql)
                    .and_then(|mut s| s.execute(rusqlite::params_from_iter(values)))
                    .map_err(map_err)?;
                if has_metadata {
                    write_metadata(conn, &org).map_err(map_err)?;
                }
                Ok(())
            },
            |_| {},
        )
        .await
    }

    async fn get_organization(&self, id: OrganizationId) -> StoreResult<Organization> {
        let writes = match self.orgs.get(id) {
            Ok(org) => return Ok(org),
            Err(writes) => writes,
        };
        let org = self
            .read_now(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {ORG_COLUMNS} FROM organizations WHERE id = ?1"
                ))
                .and_then(|mut s| s.query_row([id.to_string()], org_from_row))
                .map_err(map_err)
            })
            .await?;
        self.orgs.offer(&org, writes);
        Ok(org)
    }

    async fn update_organization(
        &self,
        org: &Organization,
        previous: &Organization,
    ) -> StoreResult<()> {
        self.update_organization_and_owner_email(org, previous, None)
            .await
    }

    async fn update_organization_and_owner_email(
        &self,
        org: &Organization,
        previous: &Organization,
        owner_email: Option<(UserId, Email)>,
    ) -> StoreResult<()> {
        let changes = org_changes(org, previous)?;
        // One copy, shared by the write and the cache upkeep at its commit.
        let org = Arc::new(org.clone());
        let expected_version = previous.version;
        let metadata_changed = org.metadata != previous.metadata;
        let cache = self.orgs.clone();
        let generation = cache.generation();
        let written = org.clone();
        // The row's update is its one check (its version) and, alone, its one statement.
        let guard = if metadata_changed || owner_email.is_some() {
            Guard::Savepoint
        } else {
            Guard::ChecksFirst
        };
        self.write_with(
            guard,
            move |conn| {
                update_org_row(conn, &org, &changes, expected_version)?;
                if metadata_changed {
                    write_metadata(conn, &org).map_err(map_err)?;
                }
                if let Some((user, email)) = &owner_email {
                    conn.prepare_cached(
                        "UPDATE users SET email = ?2, updated_at = ?3 WHERE id = ?1",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            user.to_string(),
                            email.as_str(),
                            ts(&org.updated_at)
                        ])
                    })
                    .map_err(map_err)?;
                }
                Ok(())
            },
            move |_| cache.wrote(&written, generation),
        )
        .await
    }

    async fn list_organizations(&self, q: &OrganizationQuery) -> StoreResult<Vec<Organization>> {
        let q = q.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {ORG_COLUMNS} FROM organizations o WHERE 1 = 1");
            let mut args: Vec<SqlValue> = Vec::new();
            let mut arg = |sql: &mut String, clause: &str, v: SqlValue| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            match q.status {
                Some(StatusFilter::Deleted) => sql.push_str(" AND o.deleted_at IS NOT NULL"),
                Some(StatusFilter::Is(s)) => {
                    arg(
                        &mut sql,
                        " AND o.status = ?",
                        SqlValue::Text(s.as_str().into()),
                    );
                    // A deleted organization shows as "deleted", whatever it was before.
                    sql.push_str(" AND o.deleted_at IS NULL");
                }
                None if !q.include_deleted => sql.push_str(" AND o.deleted_at IS NULL"),
                None => {}
            }
            if let Some(t) = q.org_type {
                arg(
                    &mut sql,
                    " AND o.org_type = ?",
                    SqlValue::Text(t.as_str().into()),
                );
            }
            if let Some(p) = q.parent_id {
                arg(
                    &mut sql,
                    " AND o.parent_id = ?",
                    SqlValue::Text(p.to_string()),
                );
            }
            if let Some(e) = &q.external_account_id {
                arg(
                    &mut sql,
                    " AND o.external_account_id = ?",
                    SqlValue::Text(e.clone()),
                );
            }
            if let Some(text) = &q.q {
                // A quoted FTS5 phrase: with the trigram tokenizer, a case-insensitive substring.
                args.push(SqlValue::Text(format!("\"{}\"", text.replace('"', "\"\""))));
                args.push(SqlValue::Text(format!("%{}%", crate::like_escape(text))));
                sql.push_str(&search::condition(args.len() - 1, args.len()));
            }
            for (k, v) in &q.metadata {
                args.push(SqlValue::Text(k.clone()));
                args.push(SqlValue::Text(v.clone()));
                sql.push_str(&format!(
                    " AND o.id IN (SELECT organization_id FROM organization_metadata \
                     WHERE key = ?{} AND value = ?{})",
                    args.len() - 1,
                    args.len()
                ));
            }
            if let Some(u) = q.member {
                args.push(SqlValue::Text(u.to_string()));
                sql.push_str(&format!(
                    " AND o.id IN (SELECT organization_id FROM members WHERE user_id = ?{})",
                    args.len()
                ));
            }
            if let Some(only) = q.only {
                args.push(SqlValue::Text(only.to_string()));
                sql.push_str(&format!(" AND o.id = ?{}", args.len()));
            }
            if let Some(p) = q.partner {
                args.push(SqlValue::Text(p.to_string()));
                sql.push_str(&format!(
                    " AND (o.id = ?{n} OR o.parent_id = ?{n})",
                    n = args.len()
                ));
            }
            if let Some(b) = q.before {
                args.push(SqlValue::Text(b.to_string()));
                sql.push_str(&format!(" AND o.id < ?{}", args.len()));
            }
            args.push(SqlValue::Integer(q.limit as i64));
            sql.push_str(&format!(" ORDER BY o.id DESC LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), org_from_row)
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn count_children(&self, id: OrganizationId) -> StoreResult<u64> {
        self.read_now(move |conn| {
            conn.prepare_cached("SELECT count(*) FROM organizations WHERE parent_id = ?1")
                .and_then(|mut s| s.query_row([id.to_string()], |r| r.get::<_, i64>(0)))
                .map(|n| n as u64)
                .map_err(map_err)
        })
        .await
    }

    async fn purge_deleted(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<OrganizationId>> {
        let cache = self.orgs.clone();
        let wallets = self.wallets.clone();
        // One audit entry per organization removed, from the one staged for the purge.
        let staged = crate::audit::staged();
        self.write_then(
            move |conn| {
                let ids: Vec<String> = conn
                    .prepare_cached(
                        "SELECT o.id FROM organizations o WHERE o.deleted_at IS NOT NULL \
                         AND o.deleted_at < ?1 AND NOT EXISTS \
                         (SELECT 1 FROM organizations c WHERE c.parent_id = o.id) \
                         ORDER BY o.deleted_at LIMIT ?2",
                    )
                    .and_then(|mut st| {
                        st.query_map(params![ts(&before), limit], |r| r.get(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .map_err(map_err)?;
                if let Some(s) = &staged {
                    s.resolve_targets(ids.clone());
                }
                for id in &ids {
                    for sql in [
                        "DELETE FROM api_keys WHERE organization_id = ?1",
                        "DELETE FROM organizations WHERE id = ?1",
                    ] {
                        conn.prepare_cached(sql)
                            .and_then(|mut st| st.execute([id]))
                            .map_err(map_err)?;
                    }
                }
                ids.iter()
                    .map(|id| parse_uuid(id).map(OrganizationId).map_err(map_err))
                    .collect()
            },
            move |ids: &Vec<OrganizationId>| {
                for id in ids {
                    cache.changed(*id);
                    wallets.forget(&id.to_string());
                }
            },
        )
        .await
    }
}

const KEY_COLUMNS: &str =
    "id, name, kind, organization_id, roles, prefix, secret_hash, created_at, revoked_at";

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let kind: String = r.get(2)?;
    let org: Option<String> = r.get(3)?;
    let revoked: Option<String> = r.get(8)?;
    Ok(ApiKey {
        id: ApiKeyId(parse_uuid(&r.get::<_, String>(0)?)?),
        name: r.get(1)?,
        kind: KeyKind::parse(&kind).ok_or_else(|| bad_value("key kind", &kind))?,
        organization_id: org
            .as_deref()
            .map(parse_uuid)
            .transpose()?
            .map(OrganizationId),
        roles: parse_json(&r.get::<_, String>(4)?)?,
        prefix: r.get(5)?,
        hash: SecretHash::from_stored(r.get(6)?),
        created_at: parse_ts(&r.get::<_, String>(7)?)?,
        revoked_at: revoked.as_deref().map(parse_ts).transpose()?,
    })
}

fn insert_key(conn: &Connection, k: &ApiKey, bootstrap: bool) -> StoreResult<usize> {
    let sql = if bootstrap {
        "INSERT INTO api_keys (id, name, kind, organization_id, roles, prefix, secret_hash, \
         created_at, revoked_at, bootstrap) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1) \
         ON CONFLICT DO NOTHING"
    } else {
        "INSERT INTO api_keys (id, name, kind, organization_id, roles, prefix, secret_hash, \
         created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    };
    conn.prepare_cached(sql)
        .and_then(|mut s| {
            s.execute(params![
                k.id.to_string(),
                k.name,
                k.kind.as_str(),
                k.organization_id.map(|o| o.to_string()),
                serde_json::to_string(&k.roles).unwrap_or_else(|_| "[]".into()),
                k.prefix,
                k.hash.as_str(),
                ts(&k.created_at),
                k.revoked_at.as_ref().map(ts),
            ])
        })
        .map_err(map_err)
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |conn| insert_key(conn, &key, false).map(|_| ()))
            .await
    }

    async fn insert_bootstrap_key(&self, key: &ApiKey) -> StoreResult<bool> {
        let key = key.clone();
        self.write(move |conn| insert_key(conn, &key, true).map(|n| n == 1))
            .await
    }

    async fn find_api_key(&self, hash: &SecretHash) -> StoreResult<Option<ApiKey>> {
        let generation = match self.keys.get(hash.as_str()) {
            Ok(key) => return Ok(Some(key)),
            Err(generation) => generation,
        };
        let hash = hash.as_str().to_owned();
        let found = self
            .read_now(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?1"
                ))
                .and_then(|mut s| s.query_row([hash], key_from_row).optional())
                .map_err(map_err)
            })
            .await?;
        if let Some(k) = found.as_ref().filter(|k| k.is_active()) {
            self.keys.offer(k.hash.as_str(), k, generation);
        }
        Ok(found)
    }

    async fn get_api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
        self.read_now(move |conn| {
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))
                .and_then(|mut s| s.query_row([id.to_string()], key_from_row))
                .map_err(map_err)
        })
        .await
    }

    async fn list_api_keys(&self, q: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        let q = q.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE 1 = 1");
            let mut args: Vec<SqlValue> = Vec::new();
            if let Some(k) = q.kind {
                args.push(SqlValue::Text(k.as_str().into()));
                sql.push_str(&format!(" AND kind = ?{}", args.len()));
            }
            if let Some(o) = q.organization_id {
                args.push(SqlValue::Text(o.to_string()));
                sql.push_str(&format!(" AND organization_id = ?{}", args.len()));
            }
            if !q.include_revoked {
                sql.push_str(" AND revoked_at IS NULL");
            }
            sql.push_str(" ORDER BY id");
            let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), key_from_row)
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<ApiKey> {
        // Cleared on the writer's thread at commit, before the answer goes out, and even if
        // the caller has gone away: from then on the key is refused.
        let cache = self.keys.clone();
        self.write_then(
            move |conn| {
                let key = conn
                    .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))
                    .and_then(|mut s| s.query_row([id.to_string()], key_from_row))
                    .map_err(map_err)?;
                if key.revoked_at.is_some() {
                    return Ok(key);
                }
                if key.kind == KeyKind::Platform {
                    let others: i64 = conn
                        .prepare_cached(
                            "SELECT count(*) FROM api_keys WHERE kind = 'platform' \
                         AND revoked_at IS NULL AND id <> ?1",
                        )
                        .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)))
                        .map_err(map_err)?;
                    key.check_revocable(others as u64)?;
                }
                conn.prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1")
                    .and_then(|mut s| s.execute(params![id.to_string(), ts(&at)]))
                    .map_err(map_err)?;
                Ok(ApiKey {
                    revoked_at: Some(at),
                    ..key
                })
            },
            move |_| cache.clear(),
        )
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read_now(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(map_err))
            .await?;
        if self.write_failing.load(Ordering::Relaxed) {
            // Writes were failing: ready again only once the file takes one. Setting the
            // schema's user version to itself writes the header page and changes nothing.
            self.write(|conn| {
                let v: i64 = conn
                    .pragma_query_value(None, "user_version", |r| r.get(0))
                    .map_err(map_err)?;
                conn.pragma_update(None, "user_version", v).map_err(map_err)
            })
            .await?;
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orgbase.db");
        let store = SqliteStore::open(path.to_str().unwrap(), WriteMode::GroupCommit)
            .await
            .unwrap();
        store
            .write(|c| {
                c.execute_batch("CREATE TABLE t (x INTEGER)")
                    .map_err(map_err)
            })
            .await
            .unwrap();
        (dir, store)
    }

    fn insert(c: &Connection, x: i64) -> StoreResult<()> {
        c.execute("INSERT INTO t VALUES (?1)", [x])
            .map(|_| ())
            .map_err(map_err)
    }

    async fn rows(store: &SqliteStore) -> Vec<i64> {
        store
            .write(|c| {
                let mut st = c.prepare("SELECT x FROM t ORDER BY x").map_err(map_err)?;
                let xs = st.query_map([], |r| r.get(0)).map_err(map_err)?;
                xs.collect::<rusqlite::Result<Vec<i64>>>().map_err(map_err)
            })
            .await
            .unwrap()
    }

    /// A write without a savepoint that fails before its first change reports its own error,
    /// and one that fails after changing a row all the same commits nothing of it.
    #[tokio::test]
    async fn a_write_without_a_savepoint_commits_nothing_when_it_fails() {
        let (_dir, store) = store().await;
        let refused = store
            .write_with(
                Guard::ChecksFirst,
                |_| Err::<(), _>(StoreError::NotFound),
                |_| {},
            )
            .await;
        assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
        let late = store
            .write_with(
                Guard::ChecksFirst,
                |c| {
                    insert(c, 1)?;
                    Err::<(), _>(StoreError::msg("refused after a change"))
                },
                |_| {},
            )
            .await;
        assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
        store
            .write_with(Guard::ChecksFirst, |c| insert(c, 2), |_| {})
            .await
            .unwrap();
        assert_eq!(rows(&store).await, vec![2]);
    }

    /// Such a failure takes the whole group commit back: a write beside it in the same
    /// transaction fails too, and nothing of either commits. With a savepoint, the failing
    /// write goes alone.
    #[tokio::test]
    async fn a_late_failure_without_a_savepoint_fails_its_whole_group_commit() {
        let (_dir, store) = store().await;
        for guard in [Guard::ChecksFirst, Guard::Savepoint] {
            // Holds the writer while the next two queue up: they then share one transaction.
            let hold = store.write(|_| {
                std::thread::sleep(Duration::from_millis(800));
                Ok(())
            });
            let failing = async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                store
                    .write_with(
                        guard,
                        |c| {
                            insert(c, 10)?;
                            Err::<(), _>(StoreError::msg("refused after a change"))
                        },
                        |_| {},
                    )
                    .await
            };
            let beside = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                store.write(|c| insert(c, 20)).await
            };
            let (held, failing, beside) = tokio::join!(hold, failing, beside);
            held.unwrap();
            assert!(failing.is_err());
            match guard {
                Guard::ChecksFirst => {
                    assert!(
                        matches!(beside, Err(StoreError::Unavailable(_))),
                        "{beside:?}"
                    );
                    assert_eq!(rows(&store).await, Vec::<i64>::new());
                }
                Guard::Savepoint => {
                    beside.unwrap();
                    assert_eq!(rows(&store).await, vec![20]);
                }
            }
        }
    }
}
