//! Idempotency keys: claims, answers, releases, and the mark a request's own change leaves on
//! its key, so that a key whose answer was lost is never run twice.
use chrono::Duration;
use orgbase_domain::now;
use orgbase_store::idempotency_mark::{self, Mark};
use orgbase_store::testing::TestDb;
use orgbase_store::{Claim, StoreError, StoredAnswer};

use crate::organizations::new_org;

crate::conformance!(
    a_released_key_is_claimed_again,
    a_kept_answer_is_replayed,
    a_key_whose_change_committed_is_never_run_again,
    an_abandoned_key_is_taken_over_unless_its_change_committed,
    a_change_that_failed_leaves_no_mark,
    a_claim_is_answered_released_and_marked_by_itself_only,
);

/// The mark of claim `c1` on `key`.
fn mark(key: &str) -> Mark {
    Mark {
        scope: "scope".into(),
        key: key.into(),
        claim_id: "c1".into(),
    }
}

/// Claims `key` as claim `c1`.
async fn claim(db: &TestDb, key: &str, abandoned_after: Duration) -> Claim {
    claim_as(db, key, "c1", abandoned_after).await
}

async fn claim_as(db: &TestDb, key: &str, claim_id: &str, abandoned_after: Duration) -> Claim {
    let t = now();
    db.store
        .claim_idempotency_key("scope", key, claim_id, "hash", t, t - abandoned_after)
        .await
        .unwrap()
}

async fn a_claim_is_answered_released_and_marked_by_itself_only(db: TestDb) {
    let answer = StoredAnswer {
        status: 200,
        headers: vec![],
        body: b"late".to_vec(),
    };
    // c1 claims and is abandoned; c2 takes the key over.
    claim_as(&db, "k", "c1", Duration::minutes(5)).await;
    assert!(matches!(
        claim_as(&db, "k", "c2", Duration::seconds(-1)).await,
        Claim::Claimed
    ));
    // c1, late: its release and its answer touch nothing of c2's, and its change is refused
    // (it would commit beside the one c2 makes).
    db.store
        .release_idempotency_key("scope", "k", "c1")
        .await
        .unwrap();
    db.store
        .complete_idempotency_key("scope", "k", "c1", &answer)
        .await
        .unwrap();
    let late = new_org("Late", "late");
    let refused = idempotency_mark::scope(mark("k"), db.store.insert_organization(&late)).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Conflict {
                constraint: "idempotency_claim_lost"
            })
        ),
        "{refused:?}"
    );
    assert!(matches!(
        db.store.get_organization(late.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        claim_as(&db, "k", "c3", Duration::minutes(5)).await,
        Claim::InFlight { .. }
    ));
    // c2 releases: its change did not commit, so the key is free again.
    db.store
        .release_idempotency_key("scope", "k", "c2")
        .await
        .unwrap();
    assert!(matches!(
        claim_as(&db, "k", "c3", Duration::minutes(5)).await,
        Claim::Claimed
    ));
    // A release for a claim that was never stored (its answer lost) is harmless.
    db.store
        .release_idempotency_key("scope", "never", "c9")
        .await
        .unwrap();
}

async fn a_released_key_is_claimed_again(db: TestDb) {
    assert!(matches!(
        claim(&db, "k", Duration::minutes(5)).await,
        Claim::Claimed
    ));
    assert!(matches!(
        claim(&db, "k", Duration::minutes(5)).await,
        Claim::InFlight { .. }
    ));
    db.store
        .release_idempotency_key("scope", "k", "c1")
        .await
        .unwrap();
    assert!(matches!(
        claim(&db, "k", Duration::minutes(5)).await,
        Claim::Claimed
    ));
}

async fn a_kept_answer_is_replayed(db: TestDb) {
    claim(&db, "k", Duration::minutes(5)).await;
    let answer = StoredAnswer {
        status: 201,
        headers: vec![("etag".into(), "\"1\"".into())],
        body: b"{}".to_vec(),
    };
    db.store
        .complete_idempotency_key("scope", "k", "c1", &answer)
        .await
        .unwrap();
    // A release after the answer is kept changes nothing.
    db.store
        .release_idempotency_key("scope", "k", "c1")
        .await
        .unwrap();
    match claim(&db, "k", Duration::minutes(5)).await {
        Claim::Done {
            request_hash,
            answer: a,
        } => {
            assert_eq!(request_hash, "hash");
            assert_eq!(a, answer);
        }
        other => panic!("{other:?}"),
    }
}

async fn a_key_whose_change_committed_is_never_run_again(db: TestDb) {
    claim(&db, "k", Duration::minutes(5)).await;
    // The request's change commits, but its answer is lost: the request ends with a 5xx and
    // releases its key.
    idempotency_mark::scope(
        mark("k"),
        db.store.insert_organization(&new_org("Once", "once")),
    )
    .await
    .unwrap();
    db.store
        .release_idempotency_key("scope", "k", "c1")
        .await
        .unwrap();
    assert!(matches!(
        claim(&db, "k", Duration::minutes(5)).await,
        Claim::Committed { .. }
    ));
    // Another key of the same scope is untouched.
    assert!(matches!(
        claim(&db, "other", Duration::minutes(5)).await,
        Claim::Claimed
    ));
}

async fn an_abandoned_key_is_taken_over_unless_its_change_committed(db: TestDb) {
    // Abandoned before acting: taken over.
    claim(&db, "idle", Duration::minutes(5)).await;
    assert!(matches!(
        claim(&db, "idle", Duration::seconds(-1)).await,
        Claim::Claimed
    ));
    // Abandoned after its change committed (its node died): never run again, but while it is
    // recent it is still in flight.
    claim(&db, "acted", Duration::minutes(5)).await;
    idempotency_mark::scope(
        mark("acted"),
        db.store.insert_organization(&new_org("Acted", "acted")),
    )
    .await
    .unwrap();
    assert!(matches!(
        claim(&db, "acted", Duration::minutes(5)).await,
        Claim::InFlight { .. }
    ));
    assert!(matches!(
        claim(&db, "acted", Duration::seconds(-1)).await,
        Claim::Committed { .. }
    ));
}

async fn a_change_that_failed_leaves_no_mark(db: TestDb) {
    db.store
        .insert_organization(&new_org("Taken", "taken"))
        .await
        .unwrap();
    claim(&db, "k", Duration::minutes(5)).await;
    // The slug is taken: the write fails, and with it the mark.
    let failed = idempotency_mark::scope(
        mark("k"),
        db.store.insert_organization(&new_org("Again", "taken")),
    )
    .await;
    assert!(failed.is_err());
    db.store
        .release_idempotency_key("scope", "k", "c1")
        .await
        .unwrap();
    assert!(matches!(
        claim(&db, "k", Duration::minutes(5)).await,
        Claim::Claimed
    ));
}
