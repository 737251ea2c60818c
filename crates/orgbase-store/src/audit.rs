//! Audit entries ride along with the change they describe.
//!
//! A service stages the entries of a change with [`record`] around the store call that makes it.
//! The write transaction that call makes inserts them before it commits (on SQLite inside its
//! group commit, on PostgreSQL inside its transaction, batched statement or single statement), so
//! that the change and its entries are both stored or neither is, at no extra commit. The first
//! write transaction in scope takes them; a scope holds one change.
use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use orgbase_domain::webhook::Event;
use orgbase_domain::AuditEntry;

use crate::StoreResult;

/// The entries of one change, and whether a committed transaction has written them.
#[derive(Debug)]
pub struct Staged {
    entries: Vec<AuditEntry>,
    written: AtomicBool,
    /// The ids storage gave the change's targets (a new role's; the organizations a purge
    /// removed), for entries staged without one.
    targets: OnceLock<Vec<String>>,
    /// The webhook events of the entries, made once: the ids are random, and a committed
    /// transaction must hold exactly one copy of each event however often it was attempted.
    events: OnceLock<Vec<Event>>,
}

impl Staged {
    /// The entries, with the target ids storage gave filled in: an entry staged without a
    /// target id stands for one entry per id given (an organization's, when its target is an
    /// organization and it names none).
    pub(crate) fn entries(&self) -> Cow<'_, [AuditEntry]> {
        let Some(ids) = self.targets.get() else {
            return Cow::Borrowed(&self.entries);
        };
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            if !e.target.id.is_empty() {
                out.push(e.clone());
                continue;
            }
            for (i, id) in ids.iter().enumerate() {
                let mut one = e.clone();
                if i > 0 {
                    one.id = uuid::Uuid::now_v7();
                }
                one.target.id = id.clone();
                if one.target.kind == "organization" && one.organization_id.is_none() {
                    one.organization_id = id.parse().ok();
                }
                out.push(one);
            }
        }
        Cow::Owned(out)
    }

    /// The outbox events of the entries (see [`Event::from_entry`]), made on the first call and
    /// the same after: call it where the entries are inserted, once their targets are resolved.
    pub(crate) fn events(&self) -> &[Event] {
        self.events
            .get_or_init(|| self.entries().iter().flat_map(Event::from_entry).collect())
    }

    /// Gives entries staged without a target id (the service cannot know the ids storage
    /// assigns or picks) the ids of the rows this write made or removed. Call it before the
    /// transaction commits.
    pub(crate) fn resolve_targets(&self, ids: Vec<String>) {
        let _ = self.targets.set(ids);
    }

    /// Notes that the transaction holding the entries committed (or, on SQLite, that they are
    /// in the transaction whose result the caller will see).
    pub(crate) fn written(&self) {
        self.written.store(true, Ordering::Release);
    }

    /// Notes that the write found its change made already (a replayed request): there is
    /// nothing to record, and nothing is.
    pub(crate) fn no_change(&self) {
        self.written();
    }

    pub(crate) fn is_written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }
}

/// Whether the last write of this process found a webhook endpoint enabled: whether the next
/// change should make its webhook events before it is written. [`record`] then makes them on the
/// request's own task, not on the single task or thread that writes (SQLite's writer,
/// PostgreSQL's batch writer), where the JSON of every change's object would queue. It is a hint,
/// never trusted for exactness: every write checks in its own transaction (or statement) whether
/// an endpoint is enabled, makes the events there if they were not made, and on PostgreSQL a
/// change made without them goes again with them. Starting `true`, the first change makes them.
static HOOKED: AtomicBool = AtomicBool::new(true);

/// Whether to make a change's events before writing it (see `HOOKED`).
pub(crate) fn hooked_hint() -> bool {
    HOOKED.load(Ordering::Relaxed)
}

/// What a write found: whether some endpoint is enabled.
pub(crate) fn note_hooked(hooked: bool) {
    HOOKED.store(hooked, Ordering::Relaxed);
}

/// Rung when a change committed with webhook events, so that this node's delivery worker need
/// not wait for its next look (other nodes find the events when they look).
static OUTBOX: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Waits until a change commits with webhook events on this node (or one did since the last
/// wait).
pub async fn outbox_written() {
    OUTBOX.notified().await
}

tokio::task_local! {
    static STAGED: Arc<Staged>;
}

/// Runs `write` (one store call that makes one change) with `entries` staged: its transaction
/// writes them. A write that succeeds without having written them is a bug of the store (a write
/// path that forgot them): it is logged, and fails debug builds.
pub async fn record<T, F>(entries: Vec<AuditEntry>, write: F) -> StoreResult<T>
where
    F: Future<Output = StoreResult<T>>,
{
    if entries.is_empty() {
        return write.await;
    }
    let staged = Arc::new(Staged {
        entries,
        written: AtomicBool::new(false),
        targets: OnceLock::new(),
        events: OnceLock::new(),
    });
    // Made here, on this task (see `HOOKED`), unless storage has target ids to give them.
    if hooked_hint() && staged.entries.iter().all(|e| !e.target.id.is_empty()) {
        staged.events();
    }
    let out = STAGED.scope(staged.clone(), write).await;
    // Committed with events: this node's delivery worker may look at once.
    if out.is_ok() && staged.events.get().is_some_and(|e| !e.is_empty()) {
        OUTBOX.notify_one();
    }
    if out.is_ok() && !staged.is_written() {
        let action = staged.entries[0].action.clone();
        tracing::error!(%action, "a change committed without its audit entry");
        debug_assert!(
            false,
            "{action}: a change committed without its audit entry"
        );
    }
    out
}

/// The entries staged for the write being made, unless a transaction wrote them already.
/// Capture them before moving work to another task or thread.
pub(crate) fn staged() -> Option<Arc<Staged>> {
    STAGED.try_with(Arc::clone).ok().filter(|s| !s.is_written())
}

/// Runs `fut` with `staged` in scope again (on another task), or as it is when there is none.
pub(crate) async fn carry<F: Future>(staged: Option<Arc<Staged>>, fut: F) -> F::Output {
    match staged {
        Some(s) => STAGED.scope(s, fut).await,
        None => fut.await,
    }
}

/// The columns of `audit_log`, in the order reads select them.
pub(crate) const COLUMNS: &str = "id, organization_id, occurred_at, actor_type, actor_id, \
    actor_label, action, target_type, target_id, changes, request_id, client_address, \
    user_agent, surface";
