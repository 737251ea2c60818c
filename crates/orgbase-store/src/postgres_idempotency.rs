//! Idempotency keys on PostgreSQL: a claim is one statement (insert, or take over an abandoned
//! claim), so two requests with one key on any two nodes cannot both claim it.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::Row;

use super::{map_err, PgStore};
use crate::{Claim, IdempotencyStore, StoreResult, StoredAnswer};

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
        request_hash: &str,
        at: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        // Claimed when the row is new, or an unfinished claim older than `abandoned_before`.
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys \
             (scope, key, request_hash, done, created_at, claim_id) \
             VALUES ($1, $2, $3, FALSE, $4, $6) ON CONFLICT (scope, key) DO UPDATE \
             SET request_hash = EXCLUDED.request_hash, created_at = EXCLUDED.created_at, \
             claim_id = EXCLUDED.claim_id \
             WHERE NOT idempotency_keys.done AND NOT idempotency_keys.committed \
             AND idempotency_keys.created_at < $5 \
             RETURNING 1",
        )
        .bind(scope)
        .bind(key)
        .bind(request_hash)
        .bind(at)
        .bind(abandoned_before)
        .bind(claim_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        if claimed.is_some() {
            return Ok(Claim::Claimed);
        }
        let row = sqlx::query(
            "SELECT request_hash, done, committed, status, headers, body, created_at \
             FROM idempotency_keys \
             WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(r) = row else {
            // Released meanwhile: try once more.
            return Box::pin(self.claim_idempotency_key(
                scope,
                key,
                claim_id,
                request_hash,
                at,
                abandoned_before,
            ))
            .await;
        };
        let hash: String = r.try_get("request_hash").map_err(map_err)?;
        let done: bool = r.try_get("done").map_err(map_err)?;
        let status: Option<i32> = r.try_get("status").map_err(map_err)?;
        let Some(status) = status.filter(|_| done) else {
            // Not done: in flight, or (taken over had it not committed) abandoned after its
            // change committed. Done without an answer: committed, its answer lost.
            let committed: bool = r.try_get("committed").map_err(map_err)?;
            let created: DateTime<Utc> = r.try_get("created_at").map_err(map_err)?;
            return Ok(if done || (committed && created < abandoned_before) {
                Claim::Committed { request_hash: hash }
            } else {
                Claim::InFlight { request_hash: hash }
            });
        };
        Ok(Claim::Done {
            request_hash: hash,
            answer: StoredAnswer {
                status: status as u16,
                headers: r
                    .try_get::<Option<Json<Vec<(String, String)>>>, _>("headers")
                    .map_err(map_err)?
                    .map(|j| j.0)
                    .unwrap_or_default(),
                body: r
                    .try_get::<Option<Vec<u8>>, _>("body")
                    .map_err(map_err)?
                    .unwrap_or_default(),
            },
        })
    }

    async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
        answer: &StoredAnswer,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET done = TRUE, status = $3, headers = $4, body = $5 \
             WHERE scope = $1 AND key = $2 AND claim_id = $6",
        )
        .bind(scope)
        .bind(key)
        .bind(answer.status as i32)
        .bind(Json(&answer.headers))
        .bind(&answer.body)
        .bind(claim_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
    ) -> StoreResult<()> {
        // A change that committed keeps its key, done, with no answer to replay.
        sqlx::query(
            "WITH gone AS (DELETE FROM idempotency_keys \
               WHERE scope = $1 AND key = $2 AND claim_id = $3 AND NOT done AND NOT committed) \
             UPDATE idempotency_keys SET done = TRUE, status = NULL \
             WHERE scope = $1 AND key = $2 AND claim_id = $3 AND NOT done AND committed",
        )
        .bind(scope)
        .bind(key)
        .bind(claim_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        // The wallet's keys go with the rest: after that a key is free again.
        sqlx::query("DELETE FROM wallet_idempotency WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }
}
