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
use tokio_util::sync::CancellationToken;

use crate::deliver::{Deliverer, Sent};

/// Attempts in flight at once, per node.
const CONCURRENCY: usize = 64;
/// How long an idle worker waits before looking again (unless woken: by a change committed on
/// this node, a replay).
const IDLE_POLL: Duration = Duration::from_millis(100);
/// After a wake by a commit, how long to let others join the round.
const COALESCE: Duration = Duration::from_millis(2);
/// While the node is busy serving requests (see `load`): attempts per round, and the pause
/// after each round. At most 8 per 40 ms (200 a second) then, so that deliveries go on without
/// taking the requests' CPU; the rest waits until the load falls.
const BUSY_ROUND: usize = 8;
const BUSY_PAUSE: Duration = Duration::from_millis(40);

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
        self.round(None, CONCURRENCY).await
    }

    /// A round that also attempts the messages due by `due_by` (a test's way of letting a
    /// retry's wait pass).
    /// A round of at most `limit` attempts.
    async fn round(&self, due_by: Option<DateTime<Utc>>, limit: usize) -> StoreResult<Progress> {
        let mut progress = Progress::default();
        let at = due_by.unwrap_or_else(now);
        // The lease outlasts the attempt's own time limit (and its record), by a margin; a
        // node that dies holding it delays its messages by this much on PostgreSQL.
        let lease = chrono::Duration::from_std(crate::deliver::TIMEOUT * 2).unwrap_or_default();
        // No more than can be attempted at once: every message claimed starts now, well within
        // its lease.
        let due = self
            .store
            .claim_webhook_messages(at, at + lease, limit as u32)
            .await?;
        progress.attempted = due.len() as u32;
        let results: Vec<StoreResult<Option<(WebhookAttempt, AttemptOutcome)>>> =
            futures::stream::iter(due)
                .map(|m| self.attempt(m))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        // The round's attempts recorded together: one transaction, not one each. One attempt
        // that could not finish (its endpoint's disabling not written) leaves the others
        // recorded; its own message goes again when its lease ends.
        let done = results
            .into_iter()
            .filter_map(|r| {
                r.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "a webhook attempt could not be recorded; it goes again");
                    None
                })
            })
            .collect::<Vec<_>>();
        self.store.finish_webhook_attempts(&done).await?;
        Ok(progress)
    }

    /// Rounds until one finds nothing to do now: every message due now attempted (a retry scheduled for later stays). For tests, and for a node's shutdown.
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
            let p = self.round(due_by, CONCURRENCY).await?;
            if p.idle() {
                return Ok(total);
            }
            total.attempted += p.attempted;
        }
    }

    /// Runs rounds until `shutdown`, resting while there is nothing to do.
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
            let mut warned_at: Option<std::time::Instant> = None;
            loop {
                let busy = self.load.busy();
                let limit = if busy { BUSY_ROUND } else { CONCURRENCY };
                let rest = match self.round(None, limit).await {
                    Ok(p) if !p.idle() && !busy => continue,
                    Ok(p) if !p.idle() => {
                        self.stats.yielded();
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(BUSY_PAUSE) => continue,
                        }
                    }
                    Ok(_) => IDLE_POLL,
                    Err(e) => {
                        // The database away: say so once a minute, and keep trying.
                        if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::warn!(error = %e, "webhook delivery paused: the database cannot be reached");
                            warned_at = Some(std::time::Instant::now());
                        }
                        Duration::from_secs(1)
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = orgbase_store::audit::outbox_written() => {
                        // A moment for the changes committing alongside to join the round.
                        tokio::time::sleep(COALESCE).await;
                    }
                    _ = tokio::time::sleep(rest) => {}
                }
            }
        })
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
                )
                .await
        };
        let attempt = WebhookAttempt {
            id: format!("atm_{}", uuid::Uuid::new_v4().simple()),
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
