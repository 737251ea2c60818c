//! What the access check reads: an organization's standing, its wallet and its plan's
//! entitlements, as committed.
use orgbase_domain::access_check::Standing;
use orgbase_domain::wallet::EntryKind;
use orgbase_domain::{now, OrgStatus, Organization, OrganizationId};
use orgbase_store::testing::TestDb;
use orgbase_store::{AccessFacts, DynStore, StoreError};

use crate::organizations::{new_org, plans};
use crate::wallet::entry;

crate::conformance!(
    the_access_facts_are_the_organization_its_wallet_and_its_plan,
    checks_at_once_each_get_their_own_organization,
    checks_from_many_runtimes_are_answered_after_theirs_stop,
);

async fn facts(s: &DynStore, id: OrganizationId) -> AccessFacts {
    s.access_facts(id).await.unwrap()
}

async fn insert(s: &DynStore, slug: &str) -> Organization {
    let mut o = new_org(slug, slug);
    o.product_plan_id = "gold".into();
    o.entitlements = vec!["voice".into()];
    s.insert_organization(&o).await.unwrap();
    o
}

async fn the_access_facts_are_the_organization_its_wallet_and_its_plan(db: TestDb) {
    let s = &db.store;
    plans(s, &["gold"]).await;
    let org = insert(s, "acme").await;
    let f = facts(s, org.id).await;
    assert_eq!(f.standing, Standing::of(&org));
    assert_eq!(f.wallet, None, "never credited");
    assert_eq!(f.plan_entitlements, Some(vec!["sms".to_owned()]));
    assert_eq!(
        f.standing.entitlements_with(&f.plan_entitlements.unwrap()),
        ["sms", "voice"]
    );

    // A credit, a suspension and the plan's deletion are read at once.
    s.append_entry(&entry(org.id, EntryKind::Credit, 250, None))
        .await
        .unwrap();
    let mut next = org.clone();
    next.status = OrgStatus::Suspended;
    next.status_reason = Some("fraud".into());
    next.billing_overdue = true;
    next.sms.enabled = true;
    next.sms.brand_id = Some("B1".into());
    next.version += 1;
    s.update_organization(&next, &org).await.unwrap();
    let f = facts(s, org.id).await;
    assert_eq!(f.standing, Standing::of(&next));
    assert!(f.standing.billing_overdue && !f.standing.deleted);
    let wallet = f.wallet.expect("credited");
    assert_eq!((wallet.balance, wallet.sms_points), (250, 0));
    assert_eq!(wallet.organization_id, org.id);

    // Deleted organizations are read too (the platform may check them).
    let mut gone = next.clone();
    gone.deleted_at = Some(now());
    gone.version += 1;
    s.update_organization(&gone, &next).await.unwrap();
    assert!(facts(s, org.id).await.standing.deleted);

    // An organization that does not exist.
    assert!(matches!(
        s.access_facts(OrganizationId::new()).await,
        Err(StoreError::NotFound)
    ));
}

/// Many checks at the same moment (PostgreSQL reads them in one statement), the same
/// organization asked several times among them, and one that does not exist.
async fn checks_at_once_each_get_their_own_organization(db: TestDb) {
    let s = &db.store;
    plans(s, &["gold"]).await;
    let mut orgs = Vec::new();
    for i in 0..8 {
        let o = insert(s, &format!("org-{i}")).await;
        s.append_entry(&entry(o.id, EntryKind::Credit, 100 + i, None))
            .await
            .unwrap();
        orgs.push(o);
    }
    let missing = OrganizationId::new();
    let asks: Vec<OrganizationId> = (0..200)
        .map(|i| match i % 9 {
            8 => missing,
            k => orgs[k].id,
        })
        .collect();
    let answers = futures::future::join_all(asks.iter().map(|id| s.access_facts(*id))).await;
    for (id, answer) in asks.iter().zip(answers) {
        if *id == missing {
            assert!(matches!(answer, Err(StoreError::NotFound)));
            continue;
        }
        let f = answer.unwrap();
        let k = orgs.iter().position(|o| o.id == *id).unwrap();
        assert_eq!(f.standing, Standing::of(&orgs[k]));
        assert_eq!(f.wallet.unwrap().balance, 100 + k as i64);
    }
}

/// Checks from threads that are each a runtime of their own (as the server's are), more of them
/// than PostgreSQL keeps readers for, then from new ones once the first have stopped (taking
/// their readers with them).
async fn checks_from_many_runtimes_are_answered_after_theirs_stop(db: TestDb) {
    let s = &db.store;
    plans(s, &["gold"]).await;
    let mut orgs = Vec::new();
    for i in 0..3 {
        orgs.push(insert(s, &format!("org-{i}")).await);
    }
    let from_threads = |n: usize| {
        let threads: Vec<_> = (0..n)
            .map(|t| {
                let (store, orgs) = (s.clone(), orgs.clone());
                crate::on_own_runtime(move || async move {
                    for round in 0..3 {
                        let o = &orgs[(t + round) % orgs.len()];
                        let f = store.access_facts(o.id).await.unwrap();
                        assert_eq!(f.standing, Standing::of(o), "thread {t}, round {round}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    };
    tokio::task::block_in_place(|| {
        from_threads(7);
        from_threads(3);
    });
    assert_eq!(facts(s, orgs[0].id).await.standing, Standing::of(&orgs[0]));
}
