//! The delivery worker, one per node: it leases the messages that are due (made with their
//! events, by the changes' own transactions) and attempts each.
//! A message is leased while its attempt runs, so several nodes on one PostgreSQL database
//! never attempt it twice at once, and a node that dies mid-attempt leaves it to another (or to
//! its restart) when the lease ends: delivery is at least once.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use orgbase_domain::webhook::{
    failing_limit, next_attempt, AttemptOutcome, DueMessage, MessageStatus, WebhookAttempt,
};
use orgbase_domain::{now, Actor, AuditEntry, AuditSurface, Origin, Target};
use orgbase_store::{DynStore, StoreResult};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::deliver::{Deliverer, Sent};

/// Attempts in flight at once, per node.
const CONCURRENCY: usize = 64;
/// How long an idle worker waits before looking again (unless woken: by a change committed on
/// this node, a replay).
const IDLE_POLL: Duration = Duration::from_millis(100);
/// After a wake by a commit, how long to let others join the round.
const COALESCE: Duration = Duration::from_millis(2);
/// Finished attempts are recorded together once this many wait, or the oldest has waited this
/// long, or none is left in flight.
const RECORD_AT: usize = 32;
const RECORD_WITHIN: Duration = Duration::from_millis(10);
/// While the node is busy serving requests (see `load`): attempts in flight, and the pause
/// after each claim. At most 8 per 40 ms (200 a second) then, so that deliveries go on without
/// taking the requests' CPU; the rest waits until the load falls.
const BUSY_ROUND: usize = 8;
const BUSY_PAUSE: Duration = Duration::from_millis(40);

/// An attempt's end: what to record with the others, or nothing (recorded already, when it
/// disabled its endpoint), or the error that kept it from being recorded.
type Finished = StoreResult<Option<(WebhookAttempt, AttemptOutcome)>>;

/// A task's result; a panicked attempt is recorded nowhere, and goes again when its lease ends.
fn joined(r: Result<Finished, tokio::task::JoinError>) -> Finished {
    r.unwrap_or_else(|e| {
        Err(orgbase_store::StoreError::msg(format!(
            "a webhook attempt panicked: {e}"
        )))
    })
}

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub attempted: u32,
}

impl Progress {
    pub fn idle(&self) -> bool {
        self.attempted == 0
    }
}

/// The worker of one node.
pub struct Worker {
    store: DynStore,
    deliverer: Deliverer,
    wake: Notify,
    stats: crate::stats::Stats,
    load: Arc<crate::Load>,
}

impl Worker {
    pub fn new(store: DynStore, deliverer: Deliverer) -> Arc<Self> {
        Arc::new(Self {
            store,
            deliverer,
            wake: Notify::new(),
            stats: Default::default(),
            load: Default::default(),
        })
    }

    /// The node's requests in flight: the server counts each one here, and the worker yields
    /// to them when they are many.
    pub fn load(&self) -> &Arc<crate::Load> {
        &self.load
    }

    /// What this node's worker did, for `/metrics`.
    pub fn stats(&self) -> &crate::stats::Stats {
        &self.stats
    }

    /// Makes an idle worker look at once (a change was committed, a message replayed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One round: the due messages that can run at once attempted.
    pub async fn run_once(&self) -> StoreResult<Progress> {
        self.round(None).await
    }

    /// A round: up to `CONCURRENCY` messages due now (or by `due_by`, a test's way of letting a
    /// retry's wait pass) claimed, attempted side by side, and recorded together.
    async fn round(&self, due_by: Option<DateTime<Utc>>) -> StoreResult<Progress> {
        let due = self.claim(due_by, CONCURRENCY).await?;
        let progress = Progress {
            attempted: due.len() as u32,
        };
        let finished: Vec<Finished> = futures::stream::iter(due)
            .map(|m| self.attempt(m))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        self.record(finished).await?;
        Ok(progress)
    }

    /// Rounds until one finds nothing to do now: every message due now attempted (a retry
    /// scheduled for later stays). For tests.
    pub async fn drain(&self) -> StoreResult<Progress> {
        self.drain_rounds(None).await
    }

    /// [`Self::drain`], counting as due what is due by `at`.
    pub async fn drain_due_by(&self, at: DateTime<Utc>) -> StoreResult<Progress> {
        self.drain_rounds(Some(at)).await
    }

    async fn drain_rounds(&self, due_by: Option<DateTime<Utc>>) -> StoreResult<Progress> {
        let mut total = Progress::default();
        loop {
            let p = self.round(due_by).await?;
            if p.idle() {
                return Ok(total);
            }
            total.attempted += p.attempted;
        }
    }

    /// Delivers until `shutdown`, resting while there is nothing to do.
    ///
    /// Attempts run side by side, up to `CONCURRENCY`, each in its own task: a slow endpoint
    /// (up to its 15 s time limit) holds one slot, never the others' deliveries. Finished
    /// attempts are recorded together (`RECORD_AT`, `RECORD_WITHIN`); free slots are filled by
    /// one claim once a quarter of them are free (or none is busy), so claims stay batched.
    /// At shutdown no more are claimed, and the attempts in flight finish and are recorded.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            // A message this node's previous process held when it died goes again at once
            // where storage can tell (SQLite); elsewhere when its lease ends.
            match self.store.release_webhook_leases().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    messages = n,
                    "webhook deliveries left in flight by the previous process resumed"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not resume the previous process's webhook deliveries; their leases will end")
                }
            }
            let mut in_flight: JoinSet<Finished> = JoinSet::new();
            let mut done: Vec<Finished> = Vec::new();
            let mut warned_at: Option<std::time::Instant> = None;
            // No claim before this (a pause while busy).
            let mut hold_until = tokio::time::Instant::now();
            // When the oldest finished attempt not yet recorded finished.
            let mut done_since: Option<tokio::time::Instant> = None;
            loop {
                while let Some(r) = in_flight.try_join_next() {
                    done.push(joined(r));
                }
                if !done.is_empty() {
                    let since = *done_since.get_or_insert_with(tokio::time::Instant::now);
                    if in_flight.is_empty()
                        || done.len() >= RECORD_AT
                        || since.elapsed() >= RECORD_WITHIN
                    {
                        self.record_or_warn(std::mem::take(&mut done)).await;
                        done_since = None;
                    }
                }
                if shutdown.is_cancelled() {
                    while let Some(r) = in_flight.join_next().await {
                        done.push(joined(r));
                    }
                    self.record_or_warn(done).await;
                    return;
                }
                // Busy serving: a few at a time, with a pause between.
                let busy = self.load.busy();
                let slots = if busy { BUSY_ROUND } else { CONCURRENCY };
                let free = slots.saturating_sub(in_flight.len());
                let mut rest = IDLE_POLL;
                let held = hold_until.saturating_duration_since(tokio::time::Instant::now());
                let holding = !held.is_zero();
                if holding {
                    rest = held;
                } else if free > 0 && (in_flight.is_empty() || free >= slots / 4) {
                    match self.claim(None, free).await {
                        Ok(due) => {
                            let claimed = due.len();
                            for m in due {
                                let worker = self.clone();
                                in_flight.spawn(async move { worker.attempt(m).await });
                            }
                            if busy && claimed > 0 {
                                self.stats.yielded();
                                hold_until = tokio::time::Instant::now() + BUSY_PAUSE;
                                rest = BUSY_PAUSE;
                            } else if claimed == free {
                                // Perhaps more due: look again as soon as slots free up.
                                rest = Duration::ZERO;
                            }
                        }
                        Err(e) => {
                            // The database away: say so once a minute, and keep trying.
                            if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                                tracing::warn!(error = %e, "webhook delivery paused: the database cannot be reached");
                                warned_at = Some(std::time::Instant::now());
                            }
                            rest = Duration::from_secs(1);
                        }
                    }
                }
                if rest.is_zero() && in_flight.len() < slots {
                    continue;
                }
                // Back in time to record what finished.
                if let Some(since) = done_since {
                    let due = RECORD_WITHIN
                        .saturating_sub(since.elapsed())
                        .max(Duration::from_millis(1));
                    if rest.is_zero() || due < rest {
                        rest = due;
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    Some(r) = in_flight.join_next(), if !in_flight.is_empty() => {
                        done.push(joined(r));
                    }
                    _ = self.wake.notified() => {}
                    _ = orgbase_store::audit::outbox_written(), if !holding => {
                        // A moment for the changes committing alongside to join the claim.
                        tokio::time::sleep(COALESCE).await;
                    }
                    _ = tokio::time::sleep(rest), if !rest.is_zero() => {}
                }
            }
        })
    }

    /// Leases up to `limit` messages due now (or by `due_by`) for attempts that start at once.
    async fn claim(
        &self,
        due_by: Option<DateTime<Utc>>,
        limit: usize,
    ) -> StoreResult<Vec<DueMessage>> {
        let at = due_by.unwrap_or_else(now);
        // The lease outlasts the attempt's own time limit (and its record), by a margin; a
        // node that dies holding it delays its messages by this much on PostgreSQL.
        let lease = chrono::Duration::from_std(crate::deliver::TIMEOUT * 2).unwrap_or_default();
        self.store
            .claim_webhook_messages(at, at + lease, limit as u32)
            .await
    }

    /// Records finished attempts together: one transaction, not one each. One attempt that
    /// could not finish (its endpoint's disabling not written) leaves the others recorded; its
    /// own message goes again when its lease ends, as do all of them if the record fails.
    async fn record(&self, finished: Vec<Finished>) -> StoreResult<()> {
        let done: Vec<_> = finished
            .into_iter()
            .filter_map(|r| {
                r.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "a webhook attempt could not be recorded; it goes again");
                    None
                })
            })
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        self.store.finish_webhook_attempts(&done).await
    }

    /// [`Self::record`] for the running worker: a failure is logged (its messages go again
    /// when their leases end).
    async fn record_or_warn(&self, finished: Vec<Finished>) {
        if let Err(e) = self.record(finished).await {
            tracing::warn!(error = %e, "webhook attempts could not be recorded; they go again when their leases end");
        }
    }

    /// One attempt at `m`, and what it leaves: to record with the round's others, or (when it
    /// disables the endpoint, with its audit entry) recorded already.
    async fn attempt(
        &self,
        m: DueMessage,
    ) -> StoreResult<Option<(WebhookAttempt, AttemptOutcome)>> {
        let at = now();
        let sent = if m.endpoint.disabled {
            // Disabled since the message was made: it receives nothing. The message fails,
            // for `recover` to send once the endpoint is enabled again.
            Sent {
                error: Some("the endpoint is disabled".into()),
                ..Sent::default()
            }
        } else {
            let secrets = m.endpoint.signing_secrets(at);
            self.deliverer
                .send(
                    &m.endpoint.url,
                    &m.message.event_id,
                    &m.payload,
                    &secrets,
                    at,
                    crate::deliver::TIMEOUT,
                )
                .await
        };
        let attempt = WebhookAttempt {
            // Time first (UUIDv7): new attempts go to the end of the id index.
            id: format!("atm_{}", uuid::Uuid::now_v7().simple()),
            message_id: m.message.id.clone(),
            endpoint_id: m.endpoint.id,
            attempted_at: at,
            status_code: sent.status,
            response: sent.response.clone(),
            duration_ms: sent.duration_ms,
            error: sent.error.clone(),
        };
        let outcome = self.outcome(&m, &sent, at).await?;
        if !m.endpoint.disabled {
            self.stats.attempt(sent.succeeded(), sent.duration_ms);
        }
        match outcome.status {
            MessageStatus::Delivered => {
                let lag = crate::stats::occurred_at(&m.payload)
                    .map(|t| (now() - t).num_milliseconds().max(0) as u64);
                self.stats.delivered(lag);
            }
            MessageStatus::Failed => self.stats.failed(),
            MessageStatus::Pending => {}
        }
        tracing::debug!(
            message = %m.message.id, endpoint = %m.endpoint.id, status = ?sent.status,
            error = ?sent.error, outcome = outcome.status.as_str(), "webhook attempt"
        );
        match &outcome.disable_endpoint {
            Some(reason) => {
                let mut entry = AuditEntry::new(
                    m.endpoint.owner.organization_id(),
                    at,
                    Actor::system("webhooks"),
                    "webhook_endpoint.disabled",
                    Target::new("webhook_endpoint", m.endpoint.id),
                    AuditSurface::System,
                    &Origin::default(),
                );
                entry.changes.insert(
                    "disabled".into(),
                    orgbase_domain::audit::FieldChange {
                        before: false.into(),
                        after: true.into(),
                    },
                );
                entry.changes.insert(
                    "disabledReason".into(),
                    orgbase_domain::audit::FieldChange {
                        before: serde_json::Value::Null,
                        after: reason.clone().into(),
                    },
                );
                orgbase_store::audit::record(
                    vec![entry],
                    self.store.finish_webhook_attempt(&attempt, &outcome),
                )
                .await?;
                Ok(None)
            }
            None => Ok(Some((attempt, outcome))),
        }
    }

    /// Where an attempt leaves its message: delivered on a 2xx; on a 410 failed, and the
    /// endpoint disabled; otherwise retried on the schedule, and failed after it, the endpoint
    /// disabled once it has failed everything for five days.
    async fn outcome(
        &self,
        m: &DueMessage,
        sent: &Sent,
        at: DateTime<Utc>,
    ) -> StoreResult<AttemptOutcome> {
        let attempts = m.message.attempts + 1;
        if m.endpoint.disabled {
            return Ok(AttemptOutcome {
                status: MessageStatus::Failed,
                attempts,
                next_attempt_at: None,
                disable_endpoint: None,
            });
        }
        if sent.succeeded() {
            return Ok(AttemptOutcome {
                status: MessageStatus::Delivered,
                attempts,
                next_attempt_at: None,
                disable_endpoint: None,
            });
        }
        if sent.gone() {
            return Ok(AttemptOutcome {
                status: MessageStatus::Failed,
                attempts,
                next_attempt_at: None,
                disable_endpoint: Some("the endpoint answered 410 Gone".into()),
            });
        }
        let retry_after = sent
            .retry_after
            .map(|s| chrono::Duration::seconds(s.min(86_400) as i64));
        let next = next_attempt(attempts, at, retry_after);
        // Unknown (the database away a moment): no disabling this time.
        let failing_since = self
            .store
            .webhook_failing_since(m.endpoint.id)
            .await
            .ok()
            .flatten()
            .unwrap_or(at);
        let disable = (at - failing_since >= failing_limit()).then(|| {
            format!(
                "every delivery failed since {}",
                failing_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        });
        Ok(AttemptOutcome {
            status: if next.is_some() {
                MessageStatus::Pending
            } else {
                MessageStatus::Failed
            },
            attempts,
            next_attempt_at: next,
            disable_endpoint: disable,
        })
    }
}
