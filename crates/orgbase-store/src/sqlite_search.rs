//! The SQLite store's substring search (`?q=`): a trigram index in a database file of its own,
//! next to the main one, kept up to date by an indexer thread.
//!
//! Why apart: maintaining a trigram index is about 40% of the work of writing an organization,
//! and SQLite has one writer per database. In its own file the index has its own writer, on the
//! other core, and the main writer's commits no longer wait for it.
//!
//! Why still exact: every change of a name or slug queues the organization in `search_outbox`,
//! in the same transaction as the change. The indexer applies the queue to the index, commits
//! it, and only then removes what it applied. A query takes index matches for organizations not
//! in the queue, and checks the queued ones (a handful) against their current name and slug.
//! A crash in between only means applying a queued change again, which changes nothing.
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// The index keeps its own copy of what it indexed, so that a delete writes delete markers that
/// merges cancel out. (A contentless table with `contentless_delete` leaves tombstones instead:
/// SQLite keeps them in a hash table keyed by the rowid itself, with linear probing, and
/// sequential rowids, as organizations' are, pile up in one run of slots. Once a large segment
/// held the tombstones of a thousand organizations renamed again and again, every merge checked
/// each of its entries against that run: 60% of the indexer's time in `fts5MultiIterIsDeleted`,
/// the indexer busy 55–65% of a core, and the request path's p99 up by half.)
const SCHEMA: &str = "CREATE VIRTUAL TABLE IF NOT EXISTS org_search USING fts5(\
    name, slug, tokenize = 'trigram')";
/// The per-organization index of the audit log, kept here by the same indexer: in the main
/// database it cost a random page write in every change's commit (about 6 KB of disk writes
/// and 15% of the throughput of a PATCH). `audit_indexed` holds the last log sequence number
/// indexed, committed with the entries it covers; reads take the entries after it from the
/// log's end (see `sqlite_audit.rs`). A new or deleted search database indexes the whole log
/// again.
const AUDIT_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit_by_org (\
        organization_id TEXT NOT NULL, id TEXT NOT NULL, \
        PRIMARY KEY (organization_id, id)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS audit_indexed (seq INTEGER NOT NULL);
    INSERT INTO audit_indexed (seq) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM audit_indexed);";
/// The search database's `user_version`; a database made by an older version (whose index was
/// laid out otherwise) is rebuilt from the organizations at start.
const SCHEMA_VERSION: i64 = 2;
/// Queue entries read per index transaction (an organization queued several times in one is
/// indexed once, as it is now).
const CHUNK: i64 = 16_384;
/// How long the indexer lets changes gather once woken. An index commit (and its fsync) each
/// second instead of ten took the PATCH p99 from 18–35 ms to 16 ms: the main writer's fsyncs
/// wait less behind the disk.
const GATHER: Duration = Duration::from_millis(1000);

/// `orgbase.db` → `orgbase.db.search`.
pub(crate) fn search_path(main: &Path) -> PathBuf {
    let mut s = main.as_os_str().to_owned();
    s.push(".search");
    PathBuf::from(s)
}

fn open_search(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Creates the search database if it is missing. When it is new (first start, or deleted to be
/// rebuilt) or laid out by an older version, every organization is queued, through `main`, a
/// read-write connection, and the index is then made afresh. In that order: a crash in between
/// leaves the old (or no) index, which the next start rebuilds again.
pub(crate) fn prepare(main: &Connection, main_path: &Path) -> rusqlite::Result<()> {
    let conn = open_search(&search_path(main_path))?;
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name = 'org_search'",
        [],
        |r| r.get(0),
    )?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    conn.execute_batch(AUDIT_SCHEMA)?;
    if exists == 1 && version >= SCHEMA_VERSION {
        return Ok(());
    }
    main.execute_batch(
        "BEGIN IMMEDIATE;
         DELETE FROM search_outbox;
         INSERT INTO search_outbox (org_seq) SELECT seq FROM organizations;
         COMMIT;",
    )?;
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch("DROP TABLE IF EXISTS org_search;")?;
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// Makes the search database readable from `conn` as `search`.
pub(crate) fn attach(conn: &Connection, main_path: &Path) -> rusqlite::Result<()> {
    let path = search_path(main_path);
    conn.execute("ATTACH DATABASE ?1 AS search", [path.to_string_lossy()])?;
    Ok(())
}

/// The `?q=` condition on `organizations o`: `?{fts}` is an FTS5 phrase, `?{like}` a LIKE
/// pattern (escaped with `\`) of the same text.
pub(crate) fn condition(fts: usize, like: usize) -> String {
    format!(
        " AND ((o.seq IN (SELECT rowid FROM search.org_search WHERE org_search MATCH ?{fts}) \
           AND o.seq NOT IN (SELECT org_seq FROM search_outbox)) \
         OR (o.seq IN (SELECT org_seq FROM search_outbox) \
           AND (o.name LIKE ?{like} ESCAPE '\\' OR o.slug LIKE ?{like} ESCAPE '\\')))"
    )
}

/// Removes applied entries (up to and including a queue sequence number) from the queue. The
/// group-commit store hands this to its writer thread, which holds the main database's write
/// lock almost all the time under load and would otherwise starve a second writer.
pub(crate) type Ack = Box<dyn Fn(i64) + Send>;

/// Applies the queue to the index.
pub(crate) struct Indexer {
    main: Connection,
    search: Connection,
    /// Queue entries up to here are in the index (their removal may still be on its way).
    applied: i64,
    ack: Option<Ack>,
    /// The oldest audit entry when the index was last swept of purged ones.
    audit_oldest: Option<String>,
}

impl Indexer {
    pub(crate) fn open(main_path: &Path, ack: Option<Ack>) -> rusqlite::Result<Self> {
        let main = Connection::open_with_flags(
            main_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        main.busy_timeout(Duration::from_secs(5))?;
        // Removing applied entries need not wait for the disk: if that is lost, they are
        // applied again, to the same effect.
        main.pragma_update(None, "synchronous", "NORMAL")?;
        let search = open_search(&search_path(main_path))?;
        Ok(Self {
            main,
            search,
            applied: 0,
            ack,
            audit_oldest: None,
        })
    }

    /// Applies everything queued, and indexes the audit entries written since the last time;
    /// answers how many queued search changes it applied.
    pub(crate) fn drain(&mut self) -> rusqlite::Result<usize> {
        let applied = self.drain_search()?;
        self.drain_audit()?;
        Ok(applied)
    }

    /// Puts the audit entries written since the last time in the per-organization index, and
    /// takes out those the retention purge removed from the log.
    fn drain_audit(&mut self) -> rusqlite::Result<()> {
        loop {
            let from: i64 = self
                .search
                .query_row("SELECT seq FROM audit_indexed", [], |r| r.get(0))?;
            let rows: Vec<(i64, Option<String>, String)> = {
                let mut st = self.main.prepare_cached(
                    "SELECT seq, organization_id, id FROM audit_log WHERE seq > ?1 \
                     ORDER BY seq LIMIT ?2",
                )?;
                let rows =
                    st.query_map([from, CHUNK], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let Some(&(last, ..)) = rows.last() else {
                break;
            };
            let tx = self
                .search
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR IGNORE INTO audit_by_org (organization_id, id) VALUES (?1, ?2)",
                )?;
                for (_, org, id) in &rows {
                    if let Some(org) = org {
                        ins.execute([org, id])?;
                    }
                }
                tx.execute("UPDATE audit_indexed SET seq = ?1", [last])?;
            }
            tx.commit()?;
        }
        // The purge removes the oldest entries: their index entries go once it has run.
        let oldest: Option<String> =
            self.main
                .query_row("SELECT min(id) FROM audit_log", [], |r| r.get(0))?;
        if oldest > self.audit_oldest {
            if let Some(oldest) = &oldest {
                self.search
                    .execute("DELETE FROM audit_by_org WHERE id < ?1", [oldest])?;
            }
            self.audit_oldest = oldest;
        }
        Ok(())
    }

    fn drain_search(&mut self) -> rusqlite::Result<usize> {
        let mut total = 0;
        loop {
            let rows: Vec<(i64, i64, Option<String>, Option<String>)> = {
                let mut st = self.main.prepare_cached(
                    "SELECT q.seq, q.org_seq, o.name, o.slug FROM search_outbox q \
                     LEFT JOIN organizations o ON o.seq = q.org_seq WHERE q.seq > ?1 \
                     ORDER BY q.seq LIMIT ?2",
                )?;
                let rows = st.query_map([self.applied, CHUNK], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let Some(&(last, ..)) = rows.last() else {
                break;
            };
            let tx = self
                .search
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut del = tx.prepare_cached("DELETE FROM org_search WHERE rowid = ?1")?;
                let mut ins = tx.prepare_cached(
                    "INSERT INTO org_search (rowid, name, slug) VALUES (?1, ?2, ?3)",
                )?;
                // Each read gave the organization's current name and slug: one application of
                // each is enough (under a stream of renames, most entries repeat one).
                let mut seen = std::collections::HashSet::with_capacity(rows.len());
                for (_, org_seq, name, slug) in &rows {
                    if !seen.insert(*org_seq) {
                        continue;
                    }
                    del.execute([org_seq])?;
                    if let (Some(name), Some(slug)) = (name, slug) {
                        ins.execute(params![org_seq, name, slug])?;
                    }
                }
            }
            tx.commit()?;
            self.applied = last;
            match &self.ack {
                Some(ack) => ack(last),
                None => {
                    self.main
                        .execute("DELETE FROM search_outbox WHERE seq <= ?1", [last])?;
                }
            }
            total += rows.len();
        }
        Ok(total)
    }
}

/// The indexer thread: drains on every wake-up (the writer sends one after each commit), and
/// every so often regardless; ends when every sender is gone.
pub(crate) fn run(mut indexer: Indexer, wake: Receiver<()>) {
    loop {
        match wake.recv_timeout(Duration::from_millis(500)) {
            Ok(()) => {
                // Gather a while before applying: a few large index commits cost far less
                // (fsyncs that slow the main writer's, segments to merge later) than one per
                // writer commit. Queries check queued changes directly, so the wait shows nowhere.
                let until = std::time::Instant::now() + GATHER;
                loop {
                    match wake
                        .recv_timeout(until.saturating_duration_since(std::time::Instant::now()))
                    {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => {
                            let _ = indexer.drain();
                            return;
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Err(e) = indexer.drain() {
            tracing::warn!(error = %e, "search indexer");
        }
    }
    let _ = indexer.drain();
}
