//! The audit log on SQLite: entries are inserted by the write transaction of their change (see
//! `write_then`), read newest first, and purged past their retention through the purge gate.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::audit::{Actor, ActorType, AuditEntry, AuditQuery, AuditSurface, Target};
use orgbase_domain::webhook::Event;
use orgbase_domain::OrganizationId;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row};

use super::{bad_value, map_err, parse_json, parse_ts, parse_uuid, ts, SqliteStore};
use crate::audit::COLUMNS;
use crate::{AuditStore, StoreResult};

/// Inserts `entries` with the transaction `conn` is in.
pub(super) fn insert(conn: &Connection, entries: &[AuditEntry]) -> StoreResult<()> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO audit_log ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))
        .map_err(map_err)?;
    for e in entries {
        let changes = serde_json::to_string(&e.changes).map_err(crate::StoreError::other)?;
        stmt.execute(params![
            e.id.to_string(),
            e.organization_id.map(|o| o.to_string()),
            ts(&e.occurred_at),
            e.actor.kind.as_str(),
            e.actor.id,
            e.actor.label,
            e.action,
            e.target.kind,
            e.target.id,
            changes,
            e.request_id,
            e.client_address,
            e.user_agent,
            e.surface.as_str(),
        ])
        .map_err(map_err)?;
    }
    Ok(())
}

/// `COLUMNS`, each prefixed with `alias.`.
fn qualified_columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn entry_from_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let org: Option<String> = r.get(1)?;
    let actor_type: String = r.get(3)?;
    let surface: String = r.get(13)?;
    Ok(AuditEntry {
        id: parse_uuid(&r.get::<_, String>(0)?)?,
        organization_id: org
            .as_deref()
            .map(parse_uuid)
            .transpose()?
            .map(OrganizationId),
        occurred_at: parse_ts(&r.get::<_, String>(2)?)?,
        actor: Actor {
            kind: ActorType::parse(&actor_type).ok_or_else(|| bad_value("actor", &actor_type))?,
            id: r.get(4)?,
            label: r.get(5)?,
        },
        action: r.get(6)?,
        target: Target {
            kind: r.get(7)?,
            id: r.get(8)?,
        },
        changes: parse_json(&r.get::<_, String>(9)?)?,
        request_id: r.get(10)?,
        client_address: r.get(11)?,
        user_agent: r.get(12)?,
        surface: AuditSurface::parse(&surface).ok_or_else(|| bad_value("surface", &surface))?,
        object: Default::default(),
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn list_audit_entries(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut args: Vec<SqlValue> = Vec::new();
        let mut arg = |v: SqlValue| {
            args.push(v);
            format!("?{}", args.len())
        };
        // The organizations asked for, as a condition on a column naming an organization.
        let mut scope: Vec<String> = Vec::new();
        if let Some(o) = q.organization_id {
            scope.push(format!("{{col}} = {}", arg(o.to_string().into())));
        }
        if let Some(p) = q.partner_id {
            let p = arg(p.to_string().into());
            scope.push(format!(
                "({{col}} = {p} OR {{col}} IN (SELECT id FROM organizations WHERE parent_id = {p}))"
            ));
        }
        let scope_on = |col: &str| -> String {
            scope
                .iter()
                .map(|c| format!(" AND {}", c.replace("{col}", col)))
                .collect()
        };
        // The other filters, on the entry `a`.
        let mut filters = String::new();
        if let Some(a) = &q.action {
            filters += &format!(" AND a.action = {}", arg(a.clone().into()));
        }
        if let Some(a) = &q.actor_id {
            filters += &format!(" AND a.actor_id = {}", arg(a.clone().into()));
        }
        if let Some(t) = &q.target_id {
            filters += &format!(" AND a.target_id = {}", arg(t.clone().into()));
        }
        if let Some(t) = &q.since {
            filters += &format!(" AND a.occurred_at >= {}", arg(ts(t).into()));
        }
        if let Some(t) = &q.until {
            filters += &format!(" AND a.occurred_at < {}", arg(ts(t).into()));
        }
        if let Some(b) = q.before {
            filters += &format!(" AND a.id < {}", arg(b.to_string().into()));
        }
        let limit = arg(i64::from(q.limit).into());
        let cols = qualified_columns("a");
        let sql = if scope.is_empty() {
            format!(
                "SELECT {cols} FROM audit_log a WHERE 1 = 1{filters} ORDER BY a.id DESC LIMIT {limit}"
            )
        } else {
            // An organization's entries: those the indexer has put in the per-organization
            // index (in the search database), and those written since, read from the log's
            // end by sequence number (a range of rowids: the part of the log not indexed yet;
            // NOT INDEXED, or the planner walks the whole id index for the outer ORDER BY).
            // One statement, so both parts read the same moment of the index.
            let indexed = scope_on("x.organization_id");
            let recent = scope_on("a.organization_id");
            format!(
                "SELECT * FROM (SELECT {cols} FROM search.audit_by_org x \
                   JOIN audit_log a ON a.id = x.id WHERE 1 = 1{indexed}{filters} \
                   ORDER BY x.id DESC LIMIT {limit}) \
                 UNION ALL \
                 SELECT * FROM (SELECT {cols} FROM audit_log a NOT INDEXED \
                   WHERE a.seq > (SELECT seq FROM search.audit_indexed){recent}{filters}) \
                 ORDER BY 1 DESC LIMIT {limit}"
            )
        };
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
            let rows = stmt
                .query_map(params_from_iter(args), entry_from_row)
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn append_audit_entries(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        let entries = entries.to_vec();
        self.write(move |conn| {
            insert(conn, &entries)?;
            // Made only where some endpoint may take them.
            let events = std::cell::OnceCell::<Vec<Event>>::new();
            super::webhooks::insert_events(conn, || {
                events.get_or_init(|| entries.iter().flat_map(Event::from_entry).collect())
            })
        })
        .await
    }

    async fn purge_audit_entries(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        let before = ts(&before);
        self.write(move |conn| {
            conn.execute("UPDATE audit_purge_gate SET open = 1", [])
                .map_err(map_err)?;
            let n = conn
                .execute(
                    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log \
                     WHERE occurred_at < ?1 ORDER BY id LIMIT ?2)",
                    params![before, i64::from(limit)],
                )
                .map_err(map_err)?;
            conn.execute("UPDATE audit_purge_gate SET open = 0", [])
                .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }
}
