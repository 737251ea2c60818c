//! `Idempotency-Key`: a request claims its key, runs with the key in scope (its writes mark the
//! key committed in their own transactions), and then keeps its answer for replays or frees the
//! key to be tried again. The HTTP side (which requests, the request hash, the answers) is each
//! surface's; the key's life is here.
use std::future::Future;

use orgbase_domain::now;
pub use orgbase_store::idempotency_mark::Mark;
pub use orgbase_store::{Claim, StoredAnswer};

use crate::{ServiceResult, Services};

/// Keys are kept this long.
pub fn retention() -> chrono::Duration {
    chrono::Duration::hours(24)
}

/// A claim still unanswered after this long belonged to a request that died.
fn abandoned_after() -> chrono::Duration {
    chrono::Duration::minutes(5)
}

/// How long a key's outcome is retried while the database is away: well inside the five
/// minutes after which an unfinished claim is taken over.
const SETTLE_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// What is left to do with a key once its request has ended.
#[derive(Debug)]
pub enum Outcome {
    /// Keep this answer for replays.
    Keep(StoredAnswer),
    /// Free the key: the request may be tried again.
    Release,
}

/// Claims `mark`'s key for a request whose content hashes to `request_hash`; answers what the
/// key holds already when it is not free (a kept answer, a request in flight, a committed one).
pub async fn claim(services: &Services, mark: &Mark, request_hash: &str) -> ServiceResult<Claim> {
    let t = now();
    Ok(services
        .store
        .claim_idempotency_key(
            &mark.scope,
            &mark.key,
            &mark.claim_id,
            request_hash,
            t,
            t - abandoned_after(),
        )
        .await?)
}

/// Runs `fut` (the request) with the claimed key in scope: every write it makes marks the key
/// committed in the write's own transaction.
pub async fn run<F: Future>(mark: Mark, fut: F) -> F::Output {
    orgbase_store::idempotency_mark::scope(mark, fut).await
}

/// Keeps `answer` for the replays of the request that holds `mark`, once.
pub async fn keep(services: &Services, mark: &Mark, answer: &StoredAnswer) -> ServiceResult<()> {
    Ok(services
        .store
        .complete_idempotency_key(&mark.scope, &mark.key, &mark.claim_id, answer)
        .await?)
}

/// Keeps an answer or releases a key, retrying with backoff (from 100 ms to 5 s) while the
/// database is away, for up to two minutes. Run it on a task of its own: an answer does not
/// wait for it.
pub async fn settle(services: Services, mark: Mark, outcome: Outcome) {
    let started = tokio::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        let done = match &outcome {
            Outcome::Keep(answer) => keep(&services, &mark, answer).await,
            Outcome::Release => services
                .store
                .release_idempotency_key(&mark.scope, &mark.key, &mark.claim_id)
                .await
                .map_err(Into::into),
        };
        match done {
            Ok(()) => return,
            Err(e) if started.elapsed() + wait > SETTLE_FOR => {
                tracing::error!(error = %e, "an idempotency key could not be settled; it is taken over after five minutes");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, key = %mark.key, "settling an idempotency key failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}
