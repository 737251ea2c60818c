//! The wallet on SQLite. Entries go through the single writer, so each sees the balances the
//! previous one left: no lost update, and the balance test and the write are one step.
use async_trait::async_trait;
use orgbase_domain::wallet::{Entry, EntryKind, NewEntry, Service, Wallet};
use orgbase_domain::OrganizationId;
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::{bad_value, map_err, parse_ts, parse_uuid, ts, SqliteStore};
use crate::{Appended, StoreError, StoreResult, WalletStore};

/// Wallets kept before all are dropped at once.
pub(super) const WALLET_CACHE_MAX: usize = 20_000;

const ENTRY_COLUMNS: &str = "id, organization_id, kind, service, amount, sms_points, \
    balance_after, sms_points_after, reason, actor, idempotency_key, created_at";

fn entry_from_row(r: &Row<'_>) -> rusqlite::Result<Entry> {
    let kind: String = r.get(2)?;
    let service: Option<String> = r.get(3)?;
    Ok(Entry {
        id: parse_uuid(&r.get::<_, String>(0)?)?,
        organization_id: OrganizationId(parse_uuid(&r.get::<_, String>(1)?)?),
        kind: EntryKind::parse(&kind).ok_or_else(|| bad_value("entry kind", &kind))?,
        service: service
            .as_deref()
            .map(|s| Service::parse(s).ok_or_else(|| bad_value("service", s)))
            .transpose()?,
        amount: r.get(4)?,
        sms_points: r.get(5)?,
        balance_after: r.get(6)?,
        sms_points_after: r.get(7)?,
        reason: r.get(8)?,
        actor: r.get(9)?,
        idempotency_key: r.get(10)?,
        created_at: parse_ts(&r.get::<_, String>(11)?)?,
    })
}

fn existing(
    conn: &Connection,
    org: OrganizationId,
    actor: &str,
    key: &str,
) -> StoreResult<Option<Entry>> {
    let cols = ENTRY_COLUMNS
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    conn.prepare_cached(&format!(
        "SELECT {cols} FROM wallet_idempotency i JOIN wallet_entries e ON e.id = i.entry_id \
         WHERE i.organization_id = ?1 AND i.actor = ?2 AND i.key = ?3"
    ))
    .and_then(|mut s| {
        s.query_row(params![org.to_string(), actor, key], entry_from_row)
            .optional()
    })
    .map_err(map_err)
}

#[async_trait]
impl WalletStore for SqliteStore {
    async fn get_wallet(&self, org: OrganizationId) -> StoreResult<Option<Wallet>> {
        let key = org.to_string();
        let generation = match self.wallets.get(&key) {
            Ok(w) => return Ok(w),
            Err(generation) => generation,
        };
        let wallet = self
            .read_now(|conn| {
                conn.prepare_cached(
                    "SELECT balance, sms_points, currency, updated_at FROM wallets \
                     WHERE organization_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&key], |r| {
                        Ok(Wallet {
                            organization_id: org,
                            balance: r.get(0)?,
                            sms_points: r.get(1)?,
                            currency: r.get(2)?,
                            updated_at: Some(parse_ts(&r.get::<_, String>(3)?)?),
                        })
                    })
                    .optional()
                })
                .map_err(map_err)
            })
            .await?;
        self.wallets.offer(&key, &wallet, generation);
        Ok(wallet)
    }

    async fn append_entry(&self, e: &NewEntry) -> StoreResult<Appended> {
        let e = e.clone();
        let staged = crate::audit::staged();
        let wallets = self.wallets.clone();
        // The replay and the balance are checked before anything is written; the key's row
        // cannot then be taken (this transaction holds the write lock).
        self.write_with(
            super::Guard::ChecksFirst,
            move |conn| {
                let org = e.organization_id.to_string();
                if let Some(key) = &e.idempotency_key {
                    if let Some(found) = existing(conn, e.organization_id, &e.actor, key)? {
                        if let Some(s) = &staged {
                            s.no_change();
                        }
                        return Ok(Appended::Existing(found));
                    }
                }
                let (balance, sms): (i64, i64) = conn
                    .prepare_cached(
                        "SELECT balance, sms_points FROM wallets WHERE organization_id = ?1",
                    )
                    .and_then(|mut s| {
                        s.query_row([&org], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(map_err)?
                    .unwrap_or((0, 0));
                let balance_after = balance + e.delta();
                if balance_after < 0 {
                    return Err(StoreError::Conflict {
                        constraint: "insufficient_funds",
                    });
                }
                let sms_after = sms + e.sms_points;
                conn.prepare_cached(
                "INSERT INTO wallets (organization_id, balance, sms_points, currency, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (organization_id) DO UPDATE \
                 SET balance = excluded.balance, sms_points = excluded.sms_points, \
                 updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    org,
                    balance_after,
                    sms_after,
                    e.currency,
                    ts(&e.created_at)
                ])
            })
            .map_err(map_err)?;
                let entry = Entry {
                    id: e.id,
                    organization_id: e.organization_id,
                    kind: e.kind,
                    service: e.service,
                    amount: e.amount,
                    sms_points: e.sms_points,
                    balance_after,
                    sms_points_after: sms_after,
                    reason: e.reason.clone(),
                    actor: e.actor.clone(),
                    idempotency_key: e.idempotency_key.clone(),
                    created_at: e.created_at,
                };
                conn.prepare_cached(&format!(
                    "INSERT INTO wallet_entries ({ENTRY_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        entry.id.to_string(),
                        org,
                        entry.kind.as_str(),
                        entry.service.map(Service::as_str),
                        entry.amount,
                        entry.sms_points,
                        entry.balance_after,
                        entry.sms_points_after,
                        entry.reason,
                        entry.actor,
                        entry.idempotency_key,
                        ts(&entry.created_at),
                    ])
                })
                .map_err(map_err)?;
                if let Some(key) = &entry.idempotency_key {
                    conn.prepare_cached(
                        "INSERT INTO wallet_idempotency (organization_id, actor, key, entry_id, \
                     created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            org,
                            entry.actor,
                            key,
                            entry.id.to_string(),
                            ts(&entry.created_at)
                        ])
                    })
                    .map_err(map_err)?;
                }
                Ok(Appended::New(entry))
            },
            move |appended| {
                if let Appended::New(entry) = appended {
                    wallets.forget(&entry.organization_id.to_string());
                }
            },
        )
        .await
    }

    async fn list_entries(
        &self,
        org: OrganizationId,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Entry>> {
        self.read(move |conn| {
            let (sql, args): (String, Vec<String>) = match before {
                Some(b) => (
                    format!(
                        "SELECT {ENTRY_COLUMNS} FROM wallet_entries WHERE organization_id = ?1 \
                         AND id < ?2 ORDER BY id DESC LIMIT ?3"
                    ),
                    vec![org.to_string(), b.to_string()],
                ),
                None => (
                    format!(
                        "SELECT {ENTRY_COLUMNS} FROM wallet_entries WHERE organization_id = ?1 \
                         ORDER BY id DESC LIMIT ?2"
                    ),
                    vec![org.to_string()],
                ),
            };
            let mut values: Vec<rusqlite::types::Value> =
                args.into_iter().map(rusqlite::types::Value::Text).collect();
            values.push(rusqlite::types::Value::Integer(limit as i64));
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params_from_iter(values), entry_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(map_err)
        })
        .await
    }
}
