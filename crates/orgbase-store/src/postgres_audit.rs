//! The audit log on PostgreSQL: entries are inserted by the transaction of their change (see
//! `commit`, the organization batch writer and the wallet's one statement), read newest first,
//! and purged past their retention with `orgbase.audit_purge` set for that transaction only.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::audit::{Actor, ActorType, AuditEntry, AuditQuery, AuditSurface, Target};
use orgbase_domain::webhook::Event;
use orgbase_domain::OrganizationId;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::PgRecordEncoder;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgRow, PgTypeInfo};
use sqlx::types::Json;
use sqlx::{Encode, PgConnection, PgExecutor, Postgres, QueryBuilder, Row, Type};

use super::{bad, begin, map_err, PgStore};
use crate::audit::{hooked_hint, note_hooked, Staged, COLUMNS};
use crate::{AuditStore, StoreResult};

/// Inserts entries given as an array of rows (`rows`; one statement for any number of them),
/// and in the same statement their webhook events (`super::webhooks::rows`) where some
/// endpoint may take them; says whether some endpoint is enabled.
const INSERT_WITH_EVENTS: &str = concat!(
    "WITH ev AS (INSERT INTO webhook_events \
    SELECT * FROM jsonb_populate_recordset(NULL::webhook_events, $2) WHERE ",
    some_endpoint_enabled!(),
    "), a AS (INSERT INTO audit_log SELECT * FROM unnest($1::audit_log[])) \
    SELECT ",
    some_endpoint_enabled!()
);

/// `INSERT_WITH_EVENTS` without the events: no insert into the outbox, whose statement-level
/// fan-out trigger fires even for no row.
const INSERT: &str = concat!(
    "WITH a AS (INSERT INTO audit_log SELECT * FROM unnest($1::audit_log[])) \
    SELECT ",
    some_endpoint_enabled!()
);

/// The events alone, once `INSERT` found an endpoint enabled.
const INSERT_EVENTS: &str =
    "INSERT INTO webhook_events SELECT * FROM jsonb_populate_recordset(NULL::webhook_events, $1)";

/// `entries` as the array of rows `INSERT` takes (`unnest($n::audit_log[])`).
pub(super) fn rows(entries: &[AuditEntry]) -> Vec<AuditRow<'_>> {
    entries.iter().map(AuditRow).collect()
}

/// An entry as a row of `audit_log` (the one place that lists its columns for writing), sent in
/// PostgreSQL's binary format as a value of the table's row type: the server reads each column
/// as it is stored, where a JSON array of rows (`jsonb_populate_recordset`) was parsed, its keys
/// sorted and each value converted from text, about a fifth of PostgreSQL's extra work for a
/// settings change's entry. Borrowed: the changes are not copied. Written with sqlx's
/// `PgRecordEncoder`, the encoder its own `#[derive(sqlx::Type)]` composites use.
pub(super) struct AuditRow<'a>(&'a AuditEntry);

impl Type<Postgres> for AuditRow<'_> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("audit_log")
    }
}

impl PgHasArrayType for AuditRow<'_> {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::array_of("audit_log")
    }
}

impl Encode<'_, Postgres> for AuditRow<'_> {
    /// The columns in the table's order (`COLUMNS`), each with the type it is stored as:
    /// PostgreSQL refuses a row whose column types differ.
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let e = self.0;
        let mut row = PgRecordEncoder::new(buf);
        row.encode(e.id)?
            .encode(e.organization_id.map(|o| o.0))?
            .encode(e.occurred_at)?
            .encode(e.actor.kind.as_str())?
            .encode(e.actor.id.as_deref())?
            .encode(e.actor.label.as_deref())?
            .encode(e.action.as_str())?
            .encode(e.target.kind.as_str())?
            .encode(e.target.id.as_str())?
            .encode(Json(&e.changes))?
            .encode(e.request_id.as_deref())?
            .encode(e.client_address.as_deref())?
            .encode(e.user_agent.as_deref())?
            .encode(e.surface.as_str())?;
        row.finish();
        Ok(IsNull::No)
    }
}

/// Inserts `entries`, and their webhook `events` if any (one statement, so no round trip more
/// for them): whether some endpoint is enabled.
async fn insert<'c>(
    conn: impl PgExecutor<'c>,
    entries: &[AuditEntry],
    events: Option<&[Event]>,
) -> StoreResult<bool> {
    let q = match events.and_then(super::webhooks::rows) {
        Some(events) => sqlx::query_scalar(INSERT_WITH_EVENTS)
            .bind(rows(entries))
            .bind(events),
        None => sqlx::query_scalar(INSERT).bind(rows(entries)),
    };
    let hooked = q.fetch_one(conn).await.map_err(map_err)?;
    note_hooked(hooked);
    Ok(hooked)
}

/// Inserts a change's staged entries, and their webhook events where some endpoint is enabled,
/// in the change's transaction `tx`: one statement. The events are made beforehand only where
/// this node last found an endpoint (`hooked_hint`); else the statement says whether one is
/// enabled, and if one is, the events follow in a second statement of the same transaction.
pub(super) async fn insert_staged(tx: &mut PgConnection, s: &Staged) -> StoreResult<()> {
    let made = hooked_hint();
    let hooked = insert(&mut *tx, &s.entries(), made.then(|| s.events())).await?;
    if let Some(events) = (hooked && !made)
        .then(|| super::webhooks::rows(s.events()))
        .flatten()
    {
        sqlx::query(INSERT_EVENTS)
            .bind(events)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

fn entry_from_row(r: &PgRow) -> Result<AuditEntry, sqlx::Error> {
    let actor_type: String = r.try_get("actor_type")?;
    let surface: String = r.try_get("surface")?;
    let changes: Json<orgbase_domain::audit::Changes> = r.try_get("changes")?;
    Ok(AuditEntry {
        id: r.try_get("id")?,
        organization_id: r
            .try_get::<Option<uuid::Uuid>, _>("organization_id")?
            .map(OrganizationId),
        occurred_at: r.try_get("occurred_at")?,
        actor: Actor {
            kind: ActorType::parse(&actor_type).ok_or_else(|| bad("actor", &actor_type))?,
            id: r.try_get("actor_id")?,
            label: r.try_get("actor_label")?,
        },
        action: r.try_get("action")?,
        target: Target {
            kind: r.try_get("target_type")?,
            id: r.try_get("target_id")?,
        },
        changes: changes.0,
        request_id: r.try_get("request_id")?,
        client_address: r.try_get("client_address")?,
        user_agent: r.try_get("user_agent")?,
        surface: AuditSurface::parse(&surface).ok_or_else(|| bad("surface", &surface))?,
        object: Default::default(),
    })
}

#[async_trait]
impl AuditStore for PgStore {
    async fn list_audit_entries(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut b = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_log WHERE TRUE"));
        if let Some(o) = q.organization_id {
            b.push(" AND organization_id = ").push_bind(o.0);
        }
        if let Some(p) = q.partner_id {
            b.push(" AND (organization_id = ")
                .push_bind(p.0)
                .push(" OR organization_id IN (SELECT id FROM organizations WHERE parent_id = ")
                .push_bind(p.0)
                .push("))");
        }
        if let Some(a) = &q.action {
            b.push(" AND action = ").push_bind(a.clone());
        }
        if let Some(a) = &q.actor_id {
            b.push(" AND actor_id = ").push_bind(a.clone());
        }
        if let Some(t) = &q.target_id {
            b.push(" AND target_id = ").push_bind(t.clone());
        }
        if let Some(t) = q.since {
            b.push(" AND occurred_at >= ").push_bind(t);
        }
        if let Some(t) = q.until {
            b.push(" AND occurred_at < ").push_bind(t);
        }
        if let Some(id) = q.before {
            b.push(" AND id < ").push_bind(id);
        }
        b.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = b.build().fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter()
            .map(entry_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn append_audit_entries(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        let events: Vec<Event> = entries.iter().flat_map(Event::from_entry).collect();
        insert(&self.pool, entries, Some(&events)).await.map(|_| ())
    }

    async fn purge_audit_entries(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        sqlx::query("SET LOCAL orgbase.audit_purge = 'on'")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let n = sqlx::query(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log \
             WHERE occurred_at < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }
}
