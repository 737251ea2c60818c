//! Webhooks on PostgreSQL, for any number of nodes. The outbox is written by the changes
//! themselves (`commit`, the organization batch writer and the wallet's one statement, beside
//! their audit entries: see `rows`). Dispatching and claiming are one statement each, taking
//! only rows no other node holds (`FOR UPDATE SKIP LOCKED`); a claim leases its messages, so a
//! node that dies mid-delivery leaves them to another once the lease has passed.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::webhook::{
    AttemptOutcome, DueMessage, EndpointOwner, Event, EventType, MessageStatus, WebhookAttempt,
    WebhookEndpoint, WebhookMessage,
};
use orgbase_domain::OrganizationId;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row};
use uuid::Uuid;

use super::{bad, begin, commit, map_err, PgStore};
use crate::{StoreResult, WebhookStore};

/// An event as a row of `webhook_events`, by column name: the one place that names them for
/// writing. Every column is given: `jsonb_populate_recordset` sets a column missing from the
/// JSON to NULL, not to its default. Writing it makes its messages (the trigger of migration
/// 0017), in the same statement. Borrowed and serialized straight into the statement's
/// parameter: the payload is not copied into a JSON tree first.
#[derive(serde::Serialize)]
pub(super) struct EventRow<'a> {
    id: &'a str,
    organization_id: Option<OrganizationId>,
    event_type: &'static str,
    occurred_at: DateTime<Utc>,
    payload: &'a Value,
}

impl<'a> EventRow<'a> {
    fn of(e: &'a Event) -> Self {
        Self {
            id: &e.id,
            organization_id: e.organization_id,
            event_type: e.event_type.as_str(),
            occurred_at: e.occurred_at,
            payload: &e.payload,
        }
    }
}

/// `events` as the JSON array of rows the inserts take (`jsonb_populate_recordset(NULL::
/// webhook_events, …)`), or NULL when there are none: no JSON is made, and the insert has no
/// row to write.
pub(super) fn rows<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> Option<Json<Vec<EventRow<'a>>>> {
    let rows: Vec<EventRow<'a>> = events.into_iter().map(EventRow::of).collect();
    (!rows.is_empty()).then_some(Json(rows))
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

/// The endpoint whose `ENDPOINT_COLUMNS` start at column `at`.
fn endpoint_from_row(r: &PgRow, at: usize) -> Result<WebhookEndpoint, sqlx::Error> {
    let org: Option<Uuid> = r.try_get(at + 1)?;
    Ok(WebhookEndpoint {
        id: r.try_get(at)?,
        owner: match org {
            Some(o) => EndpointOwner::Organization(OrganizationId(o)),
            None => EndpointOwner::Platform,
        },
        url: r.try_get(at + 2)?,
        description: r.try_get(at + 3)?,
        event_types: r.try_get::<Json<Vec<EventType>>, _>(at + 4)?.0,
        disabled: r.try_get(at + 5)?,
        disabled_reason: r.try_get(at + 6)?,
        secret: r.try_get(at + 7)?,
        previous_secret: r.try_get(at + 8)?,
        previous_secret_expires_at: r.try_get(at + 9)?,
        created_at: r.try_get(at + 10)?,
        updated_at: r.try_get(at + 11)?,
    })
}

/// The message whose `MESSAGE_COLUMNS` start at column `at`.
fn message_from_row(r: &PgRow, at: usize) -> Result<WebhookMessage, sqlx::Error> {
    let event_type: String = r.try_get(at + 3)?;
    let status: String = r.try_get(at + 4)?;
    Ok(WebhookMessage {
        id: r.try_get(at)?,
        endpoint_id: r.try_get(at + 1)?,
        event_id: r.try_get(at + 2)?,
        event_type: EventType::parse(&event_type).ok_or_else(|| bad("event type", &event_type))?,
        status: MessageStatus::parse(&status).ok_or_else(|| bad("message status", &status))?,
        attempts: r.try_get::<i32, _>(at + 5)? as u32,
        next_attempt_at: r.try_get(at + 6)?,
        created_at: r.try_get(at + 7)?,
        updated_at: r.try_get(at + 8)?,
    })
}

fn attempt_from_row(r: &PgRow) -> Result<WebhookAttempt, sqlx::Error> {
    Ok(WebhookAttempt {
        id: r.try_get(0)?,
        message_id: r.try_get(1)?,
        endpoint_id: r.try_get(2)?,
        attempted_at: r.try_get(3)?,
        status_code: r
            .try_get::<Option<i32>, _>(4)?
            .map(|c| u16::try_from(c).map_err(|_| bad("status code", &c.to_string())))
            .transpose()?,
        response: r.try_get(5)?,
        duration_ms: r.try_get::<i32, _>(6)?.max(0) as u32,
        error: r.try_get(7)?,
    })
}

/// Runs `q`, one statement that makes a change, and answers the rows it changed. Alone (its own
/// transaction, one round trip) when nothing goes with it; otherwise in a transaction that
/// `commit` ends with the change's audit entries and events and the request's Idempotency-Key.
/// A statement that changed nothing (its row gone) records nothing.
async fn change(
    pool: &PgPool,
    q: sqlx::query::Query<'_, Postgres, PgArguments>,
) -> StoreResult<u64> {
    let staged = crate::audit::staged();
    if staged.is_none() && crate::idempotency_mark::current().is_none() {
        return q
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err);
    }
    let mut tx = begin(pool).await.map_err(map_err)?;
    let n = q.execute(&mut *tx).await.map_err(map_err)?.rows_affected();
    if n == 0 {
        // Rolled back when dropped.
        if let Some(s) = staged {
            s.no_change();
        }
        return Ok(0);
    }
    commit(tx).await?;
    Ok(n)
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<()> {
        let q = sqlx::query(
            "INSERT INTO webhook_endpoints (id, organization_id, url, description, event_types, \
             disabled, disabled_reason, secret, previous_secret, previous_secret_expires_at, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(e.id)
        .bind(e.owner.organization_id().map(|o| o.0))
        .bind(&e.url)
        .bind(&e.description)
        .bind(Json(&e.event_types))
        .bind(e.disabled)
        .bind(&e.disabled_reason)
        .bind(&e.secret)
        .bind(&e.previous_secret)
        .bind(e.previous_secret_expires_at)
        .bind(e.created_at)
        .bind(e.updated_at);
        change(&self.pool, q).await.map(|_| ())
    }

    async fn get_webhook_endpoint(&self, id: Uuid) -> StoreResult<Option<WebhookEndpoint>> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|r| endpoint_from_row(&r, 0))
            .transpose()
            .map_err(map_err)
    }

    async fn list_webhook_endpoints(
        &self,
        owner: EndpointOwner,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
             WHERE organization_id IS NOT DISTINCT FROM $1 ORDER BY created_at, id"
        ))
        .bind(owner.organization_id().map(|o| o.0))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| endpoint_from_row(r, 0))
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn update_webhook_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<bool> {
        let q = sqlx::query(
            "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, \
             disabled = $5, disabled_reason = $6, secret = $7, previous_secret = $8, \
             previous_secret_expires_at = $9, updated_at = $10 WHERE id = $1",
        )
        .bind(e.id)
        .bind(&e.url)
        .bind(&e.description)
        .bind(Json(&e.event_types))
        .bind(e.disabled)
        .bind(&e.disabled_reason)
        .bind(&e.secret)
        .bind(&e.previous_secret)
        .bind(e.previous_secret_expires_at)
        .bind(e.updated_at);
        change(&self.pool, q).await.map(|n| n > 0)
    }

    async fn delete_webhook_endpoint(&self, id: Uuid) -> StoreResult<bool> {
        let q = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id);
        change(&self.pool, q).await.map(|n| n > 0)
    }

    async fn claim_webhook_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueMessage>> {
        let rows = sqlx::query(&format!(
            "WITH c AS (SELECT id FROM webhook_messages \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                 AND (lease_until IS NULL OR lease_until <= $1) \
                 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
             l AS (UPDATE webhook_messages m SET lease_until = $2 FROM c WHERE m.id = c.id \
                 RETURNING m.*) \
             SELECT {}, ev.payload::text, {} FROM l \
             JOIN webhook_events ev ON ev.id = l.event_id \
             JOIN webhook_endpoints e ON e.id = l.endpoint_id \
             ORDER BY l.next_attempt_at, l.id",
            qualified(MESSAGE_COLUMNS, "l"),
            qualified(ENDPOINT_COLUMNS, "e"),
        ))
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let n = MESSAGE_COLUMNS.split(", ").count();
        rows.iter()
            .map(|r| {
                Ok(DueMessage {
                    message: message_from_row(r, 0)?,
                    payload: r.try_get(n)?,
                    endpoint: endpoint_from_row(r, n + 1)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(map_err)
    }

    async fn finish_webhook_attempt(
        &self,
        attempt: &WebhookAttempt,
        outcome: &AttemptOutcome,
    ) -> StoreResult<()> {
        // One statement: the attempt, the endpoint disabled if the outcome says so, and the
        // message moved on with its lease released. A message gone meanwhile (its endpoint
        // deleted during the attempt) leaves nothing to record. A message another worker has
        // moved past this attempt (this one outlived its lease) keeps its state: the attempt
        // is recorded, as it was made, but never moves the message back.
        let sql = format!(
            "WITH a AS (INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) \
                 SELECT $1, id, $3, $4, $5, $6, $7, $8 FROM webhook_messages WHERE id = $2), \
             e AS (UPDATE webhook_endpoints SET disabled = TRUE, disabled_reason = $12, \
                 updated_at = $4 WHERE id = $3 AND $12::text IS NOT NULL \
                 AND EXISTS (SELECT 1 FROM webhook_messages WHERE id = $2)) \
             UPDATE webhook_messages SET status = $9, attempts = $10, next_attempt_at = $11, \
                 lease_until = NULL, updated_at = $4 WHERE id = $2 AND attempts < $10"
        );
        let q = sqlx::query(&sql)
            .bind(&attempt.id)
            .bind(&attempt.message_id)
            .bind(attempt.endpoint_id)
            .bind(attempt.attempted_at)
            .bind(attempt.status_code.map(i32::from))
            .bind(&attempt.response)
            .bind(i32::try_from(attempt.duration_ms).unwrap_or(i32::MAX))
            .bind(&attempt.error)
            .bind(outcome.status.as_str())
            .bind(i32::try_from(outcome.attempts).unwrap_or(i32::MAX))
            .bind(outcome.next_attempt_at)
            .bind(&outcome.disable_endpoint);
        change(&self.pool, q).await.map(|_| ())
    }

    async fn finish_webhook_attempts(
        &self,
        done: &[(WebhookAttempt, AttemptOutcome)],
    ) -> StoreResult<()> {
        if done.is_empty() {
            return Ok(());
        }
        // One statement for the round: the attempts of messages still there, and the messages
        // moved on with their leases released.
        let sql = format!(
            "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], \
                 $4::timestamptz[], $5::int[], $6::text[], $7::int[], $8::text[], $9::text[], \
                 $10::int[], $11::timestamptz[]) AS v(id, message_id, endpoint_id, attempted_at, \
                 status_code, response, duration_ms, error, status, attempts, next_attempt_at)), \
             a AS (INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) \
                 SELECT v.id, v.message_id, v.endpoint_id, v.attempted_at, v.status_code, \
                 v.response, v.duration_ms, v.error FROM v \
                 WHERE EXISTS (SELECT 1 FROM webhook_messages m WHERE m.id = v.message_id)) \
             UPDATE webhook_messages m SET status = v.status, attempts = v.attempts, \
                 next_attempt_at = v.next_attempt_at, lease_until = NULL, \
                 updated_at = v.attempted_at FROM v WHERE m.id = v.message_id \
                 AND m.attempts < v.attempts"
        );
        let col = |f: &dyn Fn(&(WebhookAttempt, AttemptOutcome)) -> Option<String>| {
            done.iter().map(f).collect::<Vec<_>>()
        };
        sqlx::query(&sql)
            .bind(col(&|(a, _)| Some(a.id.clone())))
            .bind(col(&|(a, _)| Some(a.message_id.clone())))
            .bind(done.iter().map(|(a, _)| a.endpoint_id).collect::<Vec<_>>())
            .bind(done.iter().map(|(a, _)| a.attempted_at).collect::<Vec<_>>())
            .bind(
                done.iter()
                    .map(|(a, _)| a.status_code.map(i32::from))
                    .collect::<Vec<_>>(),
            )
            .bind(col(&|(a, _)| a.response.clone()))
            .bind(
                done.iter()
                    .map(|(a, _)| i32::try_from(a.duration_ms).unwrap_or(i32::MAX))
                    .collect::<Vec<_>>(),
            )
            .bind(col(&|(a, _)| a.error.clone()))
            .bind(col(&|(_, o)| Some(o.status.as_str().to_owned())))
            .bind(
                done.iter()
                    .map(|(_, o)| i32::try_from(o.attempts).unwrap_or(i32::MAX))
                    .collect::<Vec<_>>(),
            )
            .bind(
                done.iter()
                    .map(|(_, o)| o.next_attempt_at)
                    .collect::<Vec<_>>(),
            )
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_webhook_messages(
        &self,
        endpoint: Uuid,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookMessage>> {
        // Newest first; messages made together (one dispatch) in the order of their events.
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE endpoint_id = $1 \
             AND ($2::text IS NULL OR (created_at, event_id) < \
                 (SELECT created_at, event_id FROM webhook_messages WHERE id = $2)) \
             ORDER BY created_at DESC, event_id DESC LIMIT $3"
        ))
        .bind(endpoint)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| message_from_row(r, 0))
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn get_webhook_message(&self, id: &str) -> StoreResult<Option<WebhookMessage>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|r| message_from_row(&r, 0))
            .transpose()
            .map_err(map_err)
    }

    async fn list_webhook_attempts(&self, message: &str) -> StoreResult<Vec<WebhookAttempt>> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE message_id = $1 \
             ORDER BY attempted_at, id"
        ))
        .bind(message)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(attempt_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)
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
        let q = sqlx::query(
            "UPDATE webhook_messages SET status = 'pending', next_attempt_at = $4, \
             lease_until = NULL, updated_at = $4 WHERE endpoint_id = $1 \
             AND ($2::text IS NULL OR id = $2) \
             AND ($3::timestamptz IS NULL OR (status = 'failed' AND updated_at >= $3)) \
             AND (lease_until IS NULL OR lease_until <= $4)",
        )
        .bind(endpoint)
        .bind(id)
        .bind(failed_since)
        .bind(now);
        change(&self.pool, q).await
    }

    async fn webhook_failing_since(&self, endpoint: Uuid) -> StoreResult<Option<DateTime<Utc>>> {
        sqlx::query_scalar(
            "SELECT min(attempted_at) FROM webhook_attempts WHERE endpoint_id = $1 \
             AND attempted_at > coalesce((SELECT attempted_at FROM webhook_attempts \
                 WHERE endpoint_id = $1 AND status_code BETWEEN 200 AND 299 \
                 ORDER BY attempted_at DESC LIMIT 1), '-infinity')",
        )
        .bind(endpoint)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn pending_webhook_messages(&self) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_messages WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn purge_webhook_events(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        // Oldest first by id (time-ordered), which walks the primary key.
        sqlx::query(
            "DELETE FROM webhook_events WHERE id IN (SELECT ev.id FROM webhook_events ev \
             WHERE ev.occurred_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM webhook_messages m WHERE m.event_id = ev.id \
              AND m.status = 'pending') ORDER BY ev.id LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(map_err)
    }
}
