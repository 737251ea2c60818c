//! Webhooks on SQLite. The outbox is written by the changes themselves, in their write
//! transaction beside their audit entries (`write_then`, with `insert_events`). Dispatching and
//! claiming go through the single writer, so no two take the same rows; a claim still leases
//! its messages, for the workers of this process that run at once.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::webhook::{
    AttemptOutcome, DueMessage, EndpointOwner, Event, EventType, MessageStatus, WebhookAttempt,
    WebhookEndpoint, WebhookMessage,
};
use orgbase_domain::OrganizationId;
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::{bad_value, map_err, parse_json, parse_ts, parse_uuid, to_json, ts, SqliteStore};
use crate::audit::Staged;
use crate::{StoreResult, WebhookStore};

/// Inserts the `events` of a change into the outbox with the transaction `conn` is in: the one
/// place that names the columns of `webhook_events` for writing. Each insert makes the event's
/// messages (the trigger of migration 0016). Where no endpoint is enabled, that trigger would
/// make none, and an event without a message is never read: then the events are not written,
/// nor even made (`events` is not called). The single writer reads the endpoints in the same
/// transaction, so an endpoint enabled before the change never misses its events. What it
/// finds is the hint that has the next changes make their events before they reach the writer
/// (`audit::hooked_hint`).
pub(super) fn insert_events<'e>(
    conn: &Connection,
    events: impl FnOnce() -> &'e [Event],
) -> StoreResult<()> {
    let some_enabled = match ENDPOINTS_ENABLED.get() {
        Some(known) => known,
        None => {
            let found: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE disabled = 0)",
                )
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(map_err)?;
            if WATCHING.get() {
                ENDPOINTS_ENABLED.set(Some(found));
            }
            found
        }
    };
    crate::audit::note_hooked(some_enabled);
    let events = if some_enabled { events() } else { &[] };
    if events.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO webhook_events (id, organization_id, event_type, occurred_at, payload) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(map_err)?;
    for e in events {
        stmt.execute(params![
            e.id,
            e.organization_id.map(|o| o.to_string()),
            e.event_type.as_str(),
            ts(&e.occurred_at),
            e.payload.to_string(),
        ])
        .map_err(map_err)?;
    }
    Ok(())
}

thread_local! {
    /// On the group-commit writer's thread: whether some endpoint is enabled, as found by the
    /// first change of the transaction that asked, so that the changes after it in the same
    /// group commit do not ask again. Only that thread's connection writes while its
    /// transaction is open, and it forgets what it found at every change to the endpoints (its
    /// update hook), at every rollback (of a savepoint or the transaction) and at every new
    /// transaction (`forget_endpoints`): never stale.
    static ENDPOINTS_ENABLED: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
    /// Set on the group-commit writer's thread only (`watch_endpoints`): other threads (the
    /// pool of writers of `WriteMode::Pool`) always ask.
    static WATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes this thread (the group-commit writer, with its connection `conn`) keep what
/// `insert_events` finds for the rest of a transaction.
pub(super) fn watch_endpoints(conn: &Connection) {
    conn.update_hook(Some(
        |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
            if table == "webhook_endpoints" {
                forget_endpoints();
            }
        },
    ));
    WATCHING.set(true);
}

/// Forgets whether some endpoint is enabled (see `ENDPOINTS_ENABLED`).
pub(super) fn forget_endpoints() {
    ENDPOINTS_ENABLED.set(None);
}

const ENDPOINT_COLUMNS: &str = "id, organization_id, url, description, event_types, disabled, \
    disabled_reason, secret, previous_secret, previous_secret_expires_at, created_at, updated_at";
const MESSAGE_COLUMNS: &str = "id, endpoint_id, event_id, event_type, status, attempts, \
    next_attempt_at, created_at, updated_at";
const ATTEMPT_COLUMNS: &str = "id, message_id, endpoint_id, attempted_at, status_code, response, \
    duration_ms, error";

/// `cols`, each prefixed with `alias.`.
fn qualified(cols: &str, alias: &str) -> String {
    cols.split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt_ts(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

/// The endpoint whose `ENDPOINT_COLUMNS` start at column `at`.
fn endpoint_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<WebhookEndpoint> {
    let org: Option<String> = r.get(at + 1)?;
    Ok(WebhookEndpoint {
        id: parse_uuid(&r.get::<_, String>(at)?)?,
        owner: match org {
            Some(o) => EndpointOwner::Organization(OrganizationId(parse_uuid(&o)?)),
            None => EndpointOwner::Platform,
        },
        url: r.get(at + 2)?,
        description: r.get(at + 3)?,
        event_types: parse_json::<Vec<EventType>>(&r.get::<_, String>(at + 4)?)?,
        disabled: r.get(at + 5)?,
        disabled_reason: r.get(at + 6)?,
        secret: r.get(at + 7)?,
        previous_secret: r.get(at + 8)?,
        previous_secret_expires_at: opt_ts(r.get(at + 9)?)?,
        created_at: parse_ts(&r.get::<_, String>(at + 10)?)?,
        updated_at: parse_ts(&r.get::<_, String>(at + 11)?)?,
    })
}

/// The message whose `MESSAGE_COLUMNS` start at column `at`.
fn message_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<WebhookMessage> {
    let event_type: String = r.get(at + 3)?;
    let status: String = r.get(at + 4)?;
    Ok(WebhookMessage {
        id: r.get(at)?,
        endpoint_id: parse_uuid(&r.get::<_, String>(at + 1)?)?,
        event_id: r.get(at + 2)?,
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| bad_value("event type", &event_type))?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| bad_value("message status", &status))?,
        attempts: r.get(at + 5)?,
        next_attempt_at: opt_ts(r.get(at + 6)?)?,
        created_at: parse_ts(&r.get::<_, String>(at + 7)?)?,
        updated_at: parse_ts(&r.get::<_, String>(at + 8)?)?,
    })
}

fn attempt_from_row(r: &Row<'_>) -> rusqlite::Result<WebhookAttempt> {
    Ok(WebhookAttempt {
        id: r.get(0)?,
        message_id: r.get(1)?,
        endpoint_id: parse_uuid(&r.get::<_, String>(2)?)?,
        attempted_at: parse_ts(&r.get::<_, String>(3)?)?,
        status_code: r.get(4)?,
        response: r.get(5)?,
        duration_ms: r.get(6)?,
        error: r.get(7)?,
    })
}

/// A write that found nothing to change (its row gone): nothing is recorded for it.
fn unchanged(staged: &Option<Arc<Staged>>) {
    if let Some(s) = staged {
        s.no_change();
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<()> {
        let e = e.clone();
        let event_types = to_json(&e.event_types)?;
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    e.id.to_string(),
                    e.owner.organization_id().map(|o| o.to_string()),
                    e.url,
                    e.description,
                    event_types,
                    e.disabled,
                    e.disabled_reason,
                    e.secret,
                    e.previous_secret,
                    e.previous_secret_expires_at.as_ref().map(ts),
                    ts(&e.created_at),
                    ts(&e.updated_at),
                ])
            })
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn get_webhook_endpoint(&self, id: Uuid) -> StoreResult<Option<WebhookEndpoint>> {
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1"
            ))
            .and_then(|mut s| {
                s.query_row([id.to_string()], |r| endpoint_from_row(r, 0))
                    .optional()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn list_webhook_endpoints(
        &self,
        owner: EndpointOwner,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let org = owner.organization_id().map(|o| o.to_string());
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
                     WHERE organization_id IS ?1 ORDER BY created_at, id"
                ))
                .map_err(map_err)?;
            let rows = stmt
                .query_map([org], |r| endpoint_from_row(r, 0))
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn update_webhook_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<bool> {
        let e = e.clone();
        let event_types = to_json(&e.event_types)?;
        let staged = crate::audit::staged();
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE webhook_endpoints SET url = ?2, description = ?3, event_types = ?4, \
                     disabled = ?5, disabled_reason = ?6, secret = ?7, previous_secret = ?8, \
                     previous_secret_expires_at = ?9, updated_at = ?10 WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        e.id.to_string(),
                        e.url,
                        e.description,
                        event_types,
                        e.disabled,
                        e.disabled_reason,
                        e.secret,
                        e.previous_secret,
                        e.previous_secret_expires_at.as_ref().map(ts),
                        ts(&e.updated_at),
                    ])
                })
                .map_err(map_err)?;
            if n == 0 {
                unchanged(&staged);
            }
            Ok(n > 0)
        })
        .await
    }

    async fn delete_webhook_endpoint(&self, id: Uuid) -> StoreResult<bool> {
        let staged = crate::audit::staged();
        self.write(move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?1")
                .and_then(|mut s| s.execute([id.to_string()]))
                .map_err(map_err)?;
            if n == 0 {
                unchanged(&staged);
            }
            Ok(n > 0)
        })
        .await
    }

    async fn claim_webhook_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueMessage>> {
        let (now, lease_until) = (ts(&now), ts(&lease_until));
        self.write(move |conn| {
            let n = MESSAGE_COLUMNS.split(", ").count();
            let due = conn
                .prepare_cached(&format!(
                    "SELECT {}, ev.payload, {} FROM webhook_messages m \
                     JOIN webhook_events ev ON ev.id = m.event_id \
                     JOIN webhook_endpoints e ON e.id = m.endpoint_id \
                     WHERE m.status = 'pending' AND m.next_attempt_at <= ?1 \
                     AND (m.lease_until IS NULL OR m.lease_until <= ?1) \
                     ORDER BY m.next_attempt_at, m.id LIMIT ?2",
                    qualified(MESSAGE_COLUMNS, "m"),
                    qualified(ENDPOINT_COLUMNS, "e"),
                ))
                .and_then(|mut s| {
                    s.query_map(params![now, limit], |r| {
                        Ok(DueMessage {
                            message: message_from_row(r, 0)?,
                            payload: r.get(n)?,
                            endpoint: endpoint_from_row(r, n + 1)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(map_err)?;
            let mut lease = conn
                .prepare_cached("UPDATE webhook_messages SET lease_until = ?2 WHERE id = ?1")
                .map_err(map_err)?;
            for d in &due {
                lease
                    .execute(params![d.message.id, lease_until])
                    .map_err(map_err)?;
            }
            Ok(due)
        })
        .await
    }

    async fn finish_webhook_attempt(
        &self,
        attempt: &WebhookAttempt,
        outcome: &AttemptOutcome,
    ) -> StoreResult<()> {
        let (a, o) = (attempt.clone(), outcome.clone());
        let staged = crate::audit::staged();
        self.write(move |conn| {
            if !finish_one(conn, &a, &o)? {
                unchanged(&staged);
            }
            Ok(())
        })
        .await
    }

    async fn finish_webhook_attempts(
        &self,
        done: &[(WebhookAttempt, AttemptOutcome)],
    ) -> StoreResult<()> {
        if done.is_empty() {
            return Ok(());
        }
        let done = done.to_vec();
        self.write(move |conn| {
            for (a, o) in &done {
                finish_one(conn, a, o)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_webhook_messages(
        &self,
        endpoint: Uuid,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookMessage>> {
        let before = before.map(str::to_owned);
        self.read(move |conn| {
            // Newest first; messages made together (one dispatch) in the order of their events.
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE endpoint_id = ?1 \
                     AND (?2 IS NULL OR (created_at, event_id) < \
                         (SELECT created_at, event_id FROM webhook_messages WHERE id = ?2)) \
                     ORDER BY created_at DESC, event_id DESC LIMIT ?3"
                ))
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![endpoint.to_string(), before, limit], |r| {
                    message_from_row(r, 0)
                })
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn get_webhook_message(&self, id: &str) -> StoreResult<Option<WebhookMessage>> {
        let id = id.to_owned();
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], |r| message_from_row(r, 0)).optional())
            .map_err(map_err)
        })
        .await
    }

    async fn list_webhook_attempts(&self, message: &str) -> StoreResult<Vec<WebhookAttempt>> {
        let message = message.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE message_id = ?1 \
                     ORDER BY attempted_at, id"
                ))
                .map_err(map_err)?;
            let rows = stmt
                .query_map([message], attempt_from_row)
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn requeue_webhook_messages(
        &self,
        endpoint: Uuid,
        id: Option<&str>,
        failed_since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        if id.is_none() && failed_since.is_none() {
            return Ok(0);
        }
        let id = id.map(str::to_owned);
        let (since, now) = (failed_since.as_ref().map(ts), ts(&now));
        let staged = crate::audit::staged();
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE webhook_messages SET status = 'pending', next_attempt_at = ?4, \
                     lease_until = NULL, updated_at = ?4 WHERE endpoint_id = ?1 \
                     AND (?2 IS NULL OR id = ?2) \
                     AND (?3 IS NULL OR (status = 'failed' AND updated_at >= ?3)) \
                     AND (lease_until IS NULL OR lease_until <= ?4)",
                )
                .and_then(|mut s| s.execute(params![endpoint.to_string(), id, since, now]))
                .map_err(map_err)?;
            if n == 0 {
                unchanged(&staged);
            }
            Ok(n as u64)
        })
        .await
    }

    async fn webhook_failing_since(&self, endpoint: Uuid) -> StoreResult<Option<DateTime<Utc>>> {
        let found: Option<String> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT min(attempted_at) FROM webhook_attempts WHERE endpoint_id = ?1 \
                     AND attempted_at > coalesce((SELECT attempted_at FROM webhook_attempts \
                         WHERE endpoint_id = ?1 AND status_code BETWEEN 200 AND 299 \
                         ORDER BY attempted_at DESC LIMIT 1), '')",
                )
                .and_then(|mut s| s.query_row([endpoint.to_string()], |r| r.get(0)))
                .map_err(map_err)
            })
            .await?;
        opt_ts(found).map_err(map_err)
    }

    /// One node works on an SQLite database: a lease left at start is a dead process's.
    async fn release_webhook_leases(&self) -> StoreResult<u64> {
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE webhook_messages SET lease_until = NULL WHERE lease_until IS NOT NULL",
            )
            .and_then(|mut s| s.execute([]))
            .map(|n| n as u64)
            .map_err(map_err)
        })
        .await
    }

    async fn pending_webhook_messages(&self) -> StoreResult<u64> {
        self.read(|conn| {
            conn.prepare_cached("SELECT count(*) FROM webhook_messages WHERE status = 'pending'")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                .map(|n| n as u64)
                .map_err(map_err)
        })
        .await
    }

    async fn purge_webhook_events(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        let before = ts(&before);
        self.write(move |conn| {
            // Oldest first, in the order of the outbox.
            conn.prepare_cached(
                "DELETE FROM webhook_events WHERE seq IN (SELECT ev.seq FROM webhook_events ev \
                 WHERE ev.occurred_at < ?1 AND NOT EXISTS \
                 (SELECT 1 FROM webhook_messages m WHERE m.event_id = ev.id \
                  AND m.status = 'pending') ORDER BY ev.seq LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![before, limit]))
            .map(|n| n as u64)
            .map_err(map_err)
        })
        .await
    }
}

/// Records attempt `a` and moves its message as `o` says; false when the message is gone (its
/// endpoint deleted during the attempt), and nothing is recorded.
fn finish_one(conn: &Connection, a: &WebhookAttempt, o: &AttemptOutcome) -> StoreResult<bool> {
    let at = ts(&a.attempted_at);
    let moved = conn
        .prepare_cached(
            "UPDATE webhook_messages SET status = ?2, attempts = ?3, \
                 next_attempt_at = ?4, lease_until = NULL, updated_at = ?5 \
                 WHERE id = ?1 AND attempts < ?3",
        )
        .and_then(|mut s| {
            s.execute(params![
                a.message_id,
                o.status.as_str(),
                o.attempts,
                o.next_attempt_at.as_ref().map(ts),
                at,
            ])
        })
        .map_err(map_err)?;
    // Not moved: the message is gone (its endpoint deleted during the attempt), and there is
    // nothing to record; or another worker moved it past this attempt (this one outlived its
    // lease), and the attempt is recorded, as it was made, without moving the message back.
    if moved == 0
        && !conn
            .prepare_cached("SELECT 1 FROM webhook_messages WHERE id = ?1")
            .and_then(|mut s| s.exists([&a.message_id]))
            .map_err(map_err)?
    {
        return Ok(false);
    }
    conn.prepare_cached(&format!(
        "INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            a.id,
            a.message_id,
            a.endpoint_id.to_string(),
            at,
            a.status_code,
            a.response,
            a.duration_ms,
            a.error,
        ])
    })
    .map_err(map_err)?;
    if let Some(reason) = &o.disable_endpoint {
        conn.prepare_cached(
            "UPDATE webhook_endpoints SET disabled = 1, disabled_reason = ?2, \
                 updated_at = ?3 WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![a.endpoint_id.to_string(), reason, at]))
        .map_err(map_err)?;
    }
    Ok(true)
}
