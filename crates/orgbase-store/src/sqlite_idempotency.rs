//! Idempotency keys on SQLite: claims go through the single writer, so two requests with one
//! key cannot both claim it.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{map_err, parse_ts, ts, SqliteStore};
use crate::{Claim, IdempotencyStore, StoreResult, StoredAnswer};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
        request_hash: &str,
        at: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        let (scope, key, hash) = (scope.to_owned(), key.to_owned(), request_hash.to_owned());
        let claim_id = claim_id.to_owned();
        self.write(move |conn| {
            type Row = (
                String,
                bool,
                bool,
                Option<i64>,
                Option<String>,
                Option<Vec<u8>>,
                String,
            );
            let found: Option<Row> = conn
                .prepare_cached(
                    "SELECT request_hash, done, committed, status, headers, body, created_at \
                     FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![scope, key], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    })
                    .optional()
                })
                .map_err(map_err)?;
            match found {
                Some((h, true, _, Some(status), headers, body, _)) => {
                    let headers: Vec<(String, String)> = headers
                        .as_deref()
                        .map(serde_json::from_str)
                        .transpose()
                        .map_err(crate::StoreError::other)?
                        .unwrap_or_default();
                    return Ok(Claim::Done {
                        request_hash: h,
                        answer: StoredAnswer {
                            status: status as u16,
                            headers,
                            body: body.unwrap_or_default(),
                        },
                    });
                }
                Some((h, true, _, None, ..)) => return Ok(Claim::Committed { request_hash: h }),
                Some((h, false, committed, _, _, _, created)) => {
                    let created = parse_ts(&created).map_err(map_err)?;
                    if created >= abandoned_before {
                        return Ok(Claim::InFlight { request_hash: h });
                    }
                    if committed {
                        return Ok(Claim::Committed { request_hash: h });
                    }
                }
                None => {}
            }
            conn.prepare_cached(
                "INSERT INTO idempotency_keys \
                 (scope, key, request_hash, done, created_at, claim_id) \
                 VALUES (?1, ?2, ?3, 0, ?4, ?5) ON CONFLICT (scope, key) DO UPDATE \
                 SET request_hash = excluded.request_hash, done = 0, committed = 0, status = NULL, \
                 headers = NULL, body = NULL, created_at = excluded.created_at, \
                 claim_id = excluded.claim_id",
            )
            .and_then(|mut s| s.execute(params![scope, key, hash, ts(&at), claim_id]))
            .map_err(map_err)?;
            Ok(Claim::Claimed)
        })
        .await
    }

    async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
        answer: &StoredAnswer,
    ) -> StoreResult<()> {
        let (scope, key, answer) = (scope.to_owned(), key.to_owned(), answer.clone());
        let claim_id = claim_id.to_owned();
        let headers = serde_json::to_string(&answer.headers).map_err(crate::StoreError::other)?;
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE idempotency_keys SET done = 1, status = ?3, headers = ?4, body = ?5 \
                 WHERE scope = ?1 AND key = ?2 AND claim_id = ?6",
            )
            .and_then(|mut s| {
                s.execute(params![
                    scope,
                    key,
                    answer.status as i64,
                    headers,
                    answer.body,
                    claim_id
                ])
            })
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
    ) -> StoreResult<()> {
        let (scope, key, claim_id) = (scope.to_owned(), key.to_owned(), claim_id.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM idempotency_keys \
                 WHERE scope = ?1 AND key = ?2 AND claim_id = ?3 AND done = 0 AND committed = 0",
            )
            .and_then(|mut s| s.execute(params![scope, key, claim_id]))
            .map_err(map_err)?;
            // A change that committed keeps its key, done, with no answer to replay.
            conn.prepare_cached(
                "UPDATE idempotency_keys SET done = 1, status = NULL \
                 WHERE scope = ?1 AND key = ?2 AND claim_id = ?3 AND done = 0 AND committed = 1",
            )
            .and_then(|mut s| s.execute(params![scope, key, claim_id]))
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |conn| {
            // The wallet's keys go with the rest: after that a key is free again.
            conn.prepare_cached("DELETE FROM wallet_idempotency WHERE created_at < ?1")
                .and_then(|mut s| s.execute([ts(&before)]))
                .map_err(map_err)?;
            conn.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")
                .and_then(|mut s| s.execute([ts(&before)]))
                .map(|n| n as u64)
                .map_err(map_err)
        })
        .await
    }
}
