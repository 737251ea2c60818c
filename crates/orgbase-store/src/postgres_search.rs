//! PostgreSQL's substring search (`?q=`) and external account look-up (`externalAccountId=`):
//! indexes on `organization_search`, a table of their own, kept up to date by an indexer task
//! (see migrations 0011 and 0012 for why apart).
//!
//! Every change of a name, slug or external account id queues the organization in
//! `search_outbox`, by trigger, in the transaction of the change. The indexer takes queued
//! entries, writes the current values of each organization (or drops it if it is gone) and
//! deletes the entries, all in one transaction. A query (`search_filter`,
//! `external_account_filter`) takes index matches for organizations not queued and checks the
//! queued ones against their current row, in one snapshot: it is exact whether or not the
//! indexer has caught up.
//!
//! Every node runs an indexer; a transaction-scoped advisory lock lets one work at a time.
use std::time::Duration;

use sqlx::postgres::PgPool;

use super::begin;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// How often the indexer looks at the queue when the last pass emptied it. Queries stay exact
/// meanwhile; a longer wait folds repeated renames of an organization into one index write,
/// a shorter one keeps the queue that queries check small.
const EVERY: Duration = Duration::from_millis(500);
/// Queue entries taken per pass.
const CHUNK: i64 = 10_000;
/// The advisory lock the indexers share ("orgsrch").
const LOCK: i64 = 0x006f_7267_7372_6368;

/// Takes up to `$1` queued entries, oldest first; the organizations they name. (`= ANY(ARRAY(…))`
/// rather than `IN (…)`: the planner joined the latter by hash over a scan of the whole queue,
/// dead entries and all.)
const TAKE: &str = "DELETE FROM search_outbox \
    WHERE seq = ANY(ARRAY(SELECT seq FROM search_outbox ORDER BY seq LIMIT $1)) RETURNING org_id";
/// Drops the index rows of organizations among `$1` that are gone.
const DROP_GONE: &str = "DELETE FROM organization_search s WHERE s.id = ANY($1) \
    AND NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = s.id)";
/// Writes the current name, slug and external account id of the organizations among `$1`.
const PUT: &str = "INSERT INTO organization_search (id, name, slug, external_account_id) \
    SELECT o.id, o.name, o.slug, o.external_account_id FROM organizations o WHERE o.id = ANY($1) \
    ON CONFLICT (id) DO UPDATE \
    SET name = excluded.name, slug = excluded.slug, external_account_id = excluded.external_account_id \
    WHERE organization_search.name IS DISTINCT FROM excluded.name \
       OR organization_search.slug IS DISTINCT FROM excluded.slug \
       OR organization_search.external_account_id IS DISTINCT FROM excluded.external_account_id";

/// Runs the indexer until the task is aborted (with the store).
pub(crate) async fn index(pool: PgPool, wait: std::time::Duration) {
    let mut failing = false;
    loop {
        // A pass on a connection that stopped answering is given up (and its transaction
        // rolled back by the server's idle-in-transaction timeout).
        let passed = match tokio::time::timeout(wait, pass(&pool)).await {
            Ok(r) => r,
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        };
        match passed {
            Ok(n) => {
                failing = false;
                if n == CHUNK {
                    continue;
                }
            }
            // Before the migrations have run (undefined table): nothing to index yet.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {}
            // The database away: try again later, and say so once.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "postgres search indexer pass failed; retrying");
            }
            Err(_) => {}
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// One pass: applies up to `CHUNK` queued entries, unless another node's indexer is at work.
/// The number of entries applied.
pub(crate) async fn pass(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let mut tx = begin(pool).await?;
    let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !ours {
        return Ok(0);
    }
    let mut ids: Vec<Uuid> = sqlx::query_scalar(TAKE)
        .bind(CHUNK)
        .fetch_all(&mut *tx)
        .await?;
    let n = ids.len() as i64;
    ids.sort_unstable();
    ids.dedup();
    if !ids.is_empty() {
        // Each statement reads the organizations as of its start: an organization changed
        // since the entries were taken was queued again, by a transaction this one cannot see.
        sqlx::query(DROP_GONE).bind(&ids).execute(&mut *tx).await?;
        sqlx::query(PUT).bind(&ids).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Narrows a query on `organizations o` to those whose name or slug contains `text`, case
/// aside.
pub(crate) fn search_filter(b: &mut QueryBuilder<'_, Postgres>, text: &str) {
    let pattern = format!("%{}%", crate::like_escape(text));
    exact_filter(b, |b, t| {
        b.push(format_args!("{t}.name ILIKE "))
            .push_bind(pattern.clone())
            .push(format_args!(" ESCAPE '\\' OR {t}.slug ILIKE "))
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\'");
    });
}

/// Narrows a query on `organizations o` to those whose external account id is `id`.
pub(crate) fn external_account_filter(b: &mut QueryBuilder<'_, Postgres>, id: &str) {
    exact_filter(b, |b, t| {
        b.push(format_args!("{t}.external_account_id = "))
            .push_bind(id.to_owned());
    });
}

/// Narrows a query on `organizations o` to those meeting `condition` (pushed for a table alias
/// holding `name`, `slug` and `external_account_id`): index matches of organizations not queued,
/// and queued ones checked on their row, in one snapshot.
fn exact_filter(
    b: &mut QueryBuilder<'_, Postgres>,
    mut condition: impl FnMut(&mut QueryBuilder<'_, Postgres>, &str),
) {
    b.push(" AND o.id IN (SELECT s.id FROM organization_search s WHERE (");
    condition(b, "s");
    b.push(") AND NOT EXISTS (SELECT 1 FROM search_outbox x WHERE x.org_id = s.id)")
        .push(" UNION ALL SELECT x.org_id FROM search_outbox x JOIN organizations c ON c.id = x.org_id")
        .push(" WHERE ");
    condition(b, "c");
    b.push(")");
}
