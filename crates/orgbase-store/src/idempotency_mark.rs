//! The `Idempotency-Key` a request runs under, marked as committed by the request's own writes.
//!
//! When the answer to a COMMIT is lost (the connection broke after the server received it), the
//! request cannot tell whether its change happened. A retry under the same key must then not act
//! again. So every write transaction made while a claimed key is in scope also sets that key's
//! `committed` flag, in the same transaction: either both are stored or neither. A key whose
//! request ended without an answer to keep, but whose flag is set, is never run again (see
//! `IdempotencyStore::release_idempotency_key` and `claim_idempotency_key`).
use std::future::Future;

/// A claimed key: the scope (the credential's hash), the key, and the claim that holds it.
#[derive(Debug, Clone)]
pub struct Mark {
    pub scope: String,
    pub key: String,
    pub claim_id: String,
}

tokio::task_local! {
    static MARK: Mark;
}

/// Runs `fut` with `mark` in scope: its writes mark the key committed.
pub async fn scope<F: Future>(mark: Mark, fut: F) -> F::Output {
    MARK.scope(mark, fut).await
}

/// The key in scope, if any. Capture it before moving work to another task or thread.
pub fn current() -> Option<Mark> {
    MARK.try_with(Mark::clone).ok()
}

/// Runs `fut` with `mark` in scope again (on another task), or as it is when there is none.
pub async fn carry<F: Future>(mark: Option<Mark>, fut: F) -> F::Output {
    match mark {
        Some(m) => MARK.scope(m, fut).await,
        None => fut.await,
    }
}
