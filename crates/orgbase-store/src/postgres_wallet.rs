//! The wallet on PostgreSQL, for any number of nodes. An entry is one statement: the balance
//! moves only where it stays at or above zero (the row's lock orders concurrent entries; each
//! sees the one before), and the entry is written from what the move returned. So there is no
//! lost update, and an entry that does not fit writes nothing.
use async_trait::async_trait;
use orgbase_domain::wallet::{Entry, EntryKind, NewEntry, Service, Wallet};
use orgbase_domain::OrganizationId;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::{bad, map_err, PgStore};
use crate::{Appended, StoreError, StoreResult, WalletStore};

const ENTRY_COLUMNS: &str = "id, organization_id, kind, service, amount, sms_points, \
    balance_after, sms_points_after, reason, actor, idempotency_key, created_at";

fn entry_from_row(r: &PgRow) -> Result<Entry, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    let service: Option<String> = r.try_get("service")?;
    Ok(Entry {
        id: r.try_get("id")?,
        organization_id: OrganizationId(r.try_get("organization_id")?),
        kind: EntryKind::parse(&kind).ok_or_else(|| bad("entry kind", &kind))?,
        service: service
            .as_deref()
            .map(|s| Service::parse(s).ok_or_else(|| bad("service", s)))
            .transpose()?,
        amount: r.try_get("amount")?,
        sms_points: r.try_get("sms_points")?,
        balance_after: r.try_get("balance_after")?,
        sms_points_after: r.try_get("sms_points_after")?,
        reason: r.try_get("reason")?,
        actor: r.try_get("actor")?,
        idempotency_key: r.try_get("idempotency_key")?,
        created_at: r.try_get("created_at")?,
    })
}

impl PgStore {
    async fn entry_by_key(
        &self,
        org: OrganizationId,
        actor: &str,
        key: &str,
    ) -> StoreResult<Option<Entry>> {
        let cols = ENTRY_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = sqlx::query(&format!(
            "SELECT {cols} FROM wallet_idempotency i JOIN wallet_entries e ON e.id = i.entry_id \
             WHERE i.organization_id = $1 AND i.actor = $2 AND i.key = $3"
        ))
        .bind(org.0)
        .bind(actor)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref()
            .map(entry_from_row)
            .transpose()
            .map_err(map_err)
    }
}

#[async_trait]
impl WalletStore for PgStore {
    async fn get_wallet(&self, org: OrganizationId) -> StoreResult<Option<Wallet>> {
        let row = sqlx::query(
            "SELECT balance, sms_points, currency, updated_at FROM wallets \
             WHERE organization_id = $1",
        )
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|r| {
            Ok(Wallet {
                organization_id: org,
                balance: r.try_get("balance")?,
                sms_points: r.try_get("sms_points")?,
                currency: r.try_get("currency")?,
                updated_at: Some(r.try_get("updated_at")?),
            })
        })
        .transpose()
        .map_err(map_err)
    }

    async fn append_entry(&self, e: &NewEntry) -> StoreResult<Appended> {
        if let Some(key) = &e.idempotency_key {
            if let Some(found) = self.entry_by_key(e.organization_id, &e.actor, key).await? {
                if let Some(s) = crate::audit::staged() {
                    s.no_change();
                }
                return Ok(Appended::Existing(found));
            }
        }
        // The entry's audit entries and webhook events go in its statement.
        let staged = crate::audit::staged();
        let entries = staged
            .as_ref()
            .map(|s| s.entries().into_owned())
            .unwrap_or_default();
        // Made beforehand only where this node last found an endpoint enabled; made without
        // them, the statement changes nothing if one is enabled after all ($14), and goes again
        // with them.
        let mut with_events = crate::audit::hooked_hint();
        let events = |with: bool| {
            if with {
                super::webhooks::rows(staged.iter().flat_map(|s| s.events()))
            } else {
                None
            }
        };
        // A balance that crosses zero changes what the access check says: its notice goes in
        // the entry's transaction (delivered at its commit), so that every access reader drops
        // its copy before it answers a check made after that commit. Other entries send none.
        // Tries: one more for the events, one more to make the wallet.
        for _ in 0..3 {
            // One statement, so one transaction and one round trip.
            let row = sqlx::query(&format!(
                "WITH w AS (UPDATE wallets SET balance = balance + $3, \
                 sms_points = sms_points + $6, updated_at = $10 \
                 WHERE organization_id = $2 AND balance + $3 >= 0 AND ($14 OR NOT {endpoint}) \
                 RETURNING balance, sms_points), \
                 e AS (INSERT INTO wallet_entries ({ENTRY_COLUMNS}) \
                 SELECT $1, $2, $4, $5, $11, $6, w.balance, w.sms_points, $7, $8, $9, $10 FROM w \
                 RETURNING {ENTRY_COLUMNS}), \
                 i AS (INSERT INTO wallet_idempotency (organization_id, actor, key, entry_id, \
                 created_at) SELECT organization_id, actor, idempotency_key, id, created_at \
                 FROM e WHERE idempotency_key IS NOT NULL), \
                 a AS (INSERT INTO audit_log SELECT * FROM unnest($12::audit_log[]) \
                 WHERE EXISTS (SELECT 1 FROM e)), \
                 n AS (SELECT pg_notify('{channel}', 'wallet:' || $2::text) FROM w \
                 WHERE (w.balance > 0) <> (w.balance - $3 > 0) \
                 OR (w.sms_points > 0) <> (w.sms_points - $6 > 0)){ev} \
                 SELECT *, {endpoint} AS hooked, (SELECT count(*) FROM n) AS crossed FROM e",
                channel = super::cache::CHANNEL,
                endpoint = some_endpoint_enabled!(),
                // Without events, no insert into the outbox: its statement-level fan-out
                // trigger fires even for no row.
                ev = if with_events {
                    concat!(
                        ", ev AS (INSERT INTO webhook_events SELECT * FROM \
                         jsonb_populate_recordset(NULL::webhook_events, $13) \
                         WHERE EXISTS (SELECT 1 FROM e) AND ",
                        some_endpoint_enabled!(),
                        ")"
                    )
                } else {
                    ""
                }
            ))
            .bind(e.id)
            .bind(e.organization_id.0)
            .bind(e.delta())
            .bind(e.kind.as_str())
            .bind(e.service.map(Service::as_str))
            .bind(e.sms_points)
            .bind(&e.reason)
            .bind(&e.actor)
            .bind(&e.idempotency_key)
            .bind(e.created_at)
            .bind(e.amount)
            .bind(super::audit::rows(&entries))
            .bind(events(with_events))
            .bind(with_events)
            .fetch_optional(&self.pool)
            .await;
            match row {
                Ok(Some(r)) => {
                    crate::audit::note_hooked(r.try_get("hooked").map_err(map_err)?);
                    if let Some(s) = &staged {
                        s.written();
                    }
                    return Ok(Appended::New(entry_from_row(&r).map_err(map_err)?));
                }
                Ok(None) if !with_events => {
                    // Perhaps an endpoint is enabled: the same again with the events, which
                    // also says whether the wallet is there and covers the charge.
                    with_events = true;
                }
                Ok(None) => {
                    // No wallet yet (make it and go again), or a charge it does not cover.
                    let made = sqlx::query(
                        "INSERT INTO wallets (organization_id, balance, sms_points, currency, \
                         updated_at) VALUES ($1, 0, 0, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(e.organization_id.0)
                    .bind(&e.currency)
                    .bind(e.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                    if made.rows_affected() == 0 {
                        return Err(StoreError::Conflict {
                            constraint: "insufficient_funds",
                        });
                    }
                }
                Err(sqlx::Error::Database(db))
                    if db.constraint() == Some("wallet_idempotency_pkey") =>
                {
                    // The same key, committed meanwhile by a concurrent request.
                    let key = e.idempotency_key.as_deref().unwrap_or_default();
                    return match self.entry_by_key(e.organization_id, &e.actor, key).await? {
                        Some(found) => {
                            if let Some(s) = &staged {
                                s.no_change();
                            }
                            Ok(Appended::Existing(found))
                        }
                        None => Err(StoreError::msg("idempotency key vanished")),
                    };
                }
                Err(err) => return Err(map_err(err)),
            }
        }
        Err(StoreError::Conflict {
            constraint: "insufficient_funds",
        })
    }

    async fn list_entries(
        &self,
        org: OrganizationId,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Entry>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM wallet_entries WHERE organization_id = $1 \
             AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(org.0)
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(entry_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }
}
