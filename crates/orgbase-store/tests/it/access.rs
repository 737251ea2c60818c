//! What the access check reads: an organization's standing, its wallet's funds and its plan's
//! entitlements, as committed.
use orgbase_domain::access_check::{Funds, Standing};
use orgbase_domain::wallet::EntryKind;
use orgbase_domain::{now, OrgStatus, Organization, OrganizationId};
use orgbase_store::testing::TestDb;
use orgbase_store::{AccessFacts, DynStore, Store, StoreError};

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
    assert_eq!(f.funds, Funds::default(), "never credited");
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
    assert_eq!(
        f.funds,
        Funds {
            balance: true,
            sms_points: false
        },
        "credited"
    );

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
        if i % 2 == 0 {
            s.append_entry(&entry(o.id, EntryKind::Credit, 100 + i, None))
                .await
                .unwrap();
        }
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
        assert_eq!(f.funds.balance, k % 2 == 0, "credited or not");
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

/// Two PostgreSQL nodes: the store that changes, and a second node whose access readers keep
/// what they read. `None` without `TEST_DATABASE_URL`.
async fn two_nodes() -> Option<(TestDb, orgbase_store::postgres::PgStore)> {
    let db = orgbase_store::testing::postgres().await?;
    let b = db.pg_node().await;
    Some((db, b))
}

/// Every change of what the check reads, committed through node A, is what node B's very next
/// check answers, though B's reader kept the facts it read just before. One check after each
/// change, no polling: a read-back loop would hide a stale answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_change_a_check_reads_is_in_the_next_check_on_another_node() {
    let Some((db, b)) = two_nodes().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let a = &db.store;
    plans(a, &["gold"]).await;
    let mut org = insert(a, "acme").await;
    let mut plan = a.get_plan("gold").await.unwrap();
    let mut funds = Funds::default();
    // Node B's next check is what `org`, `plan` and `funds` say.
    let agrees = async |org: &Organization, plan: &orgbase_domain::Plan, funds, what: &str| {
        let expected = AccessFacts {
            standing: Standing::of(org),
            funds,
            plan_entitlements: Some(plan.entitlements.clone()),
        };
        assert_eq!(b.access_facts(org.id).await.unwrap(), expected, "{what}");
    };
    type OrgChange = fn(&mut Organization);
    let org_changes: [(&str, OrgChange); 10] = [
        ("suspension", |o| o.status = OrgStatus::Suspended),
        ("its reason alone", |o| {
            o.status_reason = Some("fraud".into())
        }),
        ("lifted", |o| {
            o.status = OrgStatus::Active;
            o.status_reason = None
        }),
        ("billing overdue", |o| o.billing_overdue = true),
        ("sms enabled", |o| o.sms.enabled = true),
        ("sms brand", |o| o.sms.brand_id = Some("B1".into())),
        ("sms campaign", |o| o.sms.campaign_id = Some("C1".into())),
        ("entitlements", |o| o.entitlements = vec![]),
        ("inactive", |o| o.status = OrgStatus::Inactive),
        ("deletion", |o| o.deleted_at = Some(now())),
    ];
    for (what, change) in org_changes {
        agrees(&org, &plan, funds, &format!("before {what}")).await;
        let mut next = org.clone();
        change(&mut next);
        next.version += 1;
        a.update_organization(&next, &org).await.unwrap();
        org = next;
        agrees(&org, &plan, funds, what).await;
    }

    // The plan's entitlements.
    plan.entitlements = vec!["voice".into(), "sms".into()];
    a.update_plan(&plan).await.unwrap();
    agrees(&org, &plan, funds, "the plan").await;

    // The wallet: each balance crossing zero, both ways; entries that do not cross change
    // nothing the check says.
    let mut sms = entry(org.id, EntryKind::Charge, 50, None);
    sms.sms_points = 5;
    let funds_of = |balance, sms_points| Funds {
        balance,
        sms_points,
    };
    let steps = [
        (
            "a credit from zero",
            entry(org.id, EntryKind::Credit, 250, None),
            funds_of(true, false),
        ),
        (
            "a charge that leaves some",
            entry(org.id, EntryKind::Charge, 100, None),
            funds_of(true, false),
        ),
        ("SMS points bought", sms, funds_of(true, true)),
        (
            "a charge to zero",
            entry(org.id, EntryKind::Charge, 100, None),
            funds_of(false, true),
        ),
        (
            "a credit again",
            entry(org.id, EntryKind::Credit, 1, None),
            funds_of(true, true),
        ),
    ];
    for (what, e, after) in steps {
        agrees(&org, &plan, funds, &format!("before {what}")).await;
        a.append_entry(&e).await.unwrap();
        funds = after;
        agrees(&org, &plan, funds, what).await;
    }

    // Purged for good: not found.
    let purged = a.purge_deleted(now(), 10).await.unwrap();
    assert!(purged.contains(&org.id));
    assert!(matches!(
        b.access_facts(org.id).await,
        Err(StoreError::NotFound)
    ));
}

/// What a reader keeps is what it answers from, until a notice names it: a row changed behind
/// Orgbase's back (no notice) is not seen; the notice makes the next check read it. And a lost
/// connection takes what it kept with it. (One thread, so one reader: each thread that checks
/// has its own, with what it keeps.)
#[tokio::test]
async fn postgres_a_reader_answers_from_what_it_keeps_until_a_notice_or_a_lost_connection() {
    let Some((db, b)) = two_nodes().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    plans(&db.store, &["gold"]).await;
    let org = insert(&db.store, "acme").await;
    let billing = async || {
        b.access_facts(org.id)
            .await
            .map(|f| f.standing.billing_overdue)
    };
    let set_overdue = async |on: bool| {
        db.execute_raw(&format!(
            "UPDATE organizations SET billing_overdue = {on} WHERE id = '{}'",
            org.id
        ))
        .await
        .unwrap();
    };
    assert!(!billing().await.unwrap());
    set_overdue(true).await;
    assert!(!billing().await.unwrap(), "kept: no notice named it");
    db.execute_raw(&format!(
        "SELECT pg_notify('orgbase_cache', 'org:{}')",
        org.id
    ))
    .await
    .unwrap();
    assert!(billing().await.unwrap(), "read again after its notice");

    // The reader's connection is cut; the row changes without a notice meanwhile.
    set_overdue(false).await;
    assert!(billing().await.unwrap(), "kept");
    let cut = db
        .execute_raw(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = '{}'",
            orgbase_store::postgres::READER_NAME
        ))
        .await
        .unwrap();
    assert_eq!(cut, 1, "one reader (one thread)");
    // The check that finds the connection gone may fail (unavailable: PostgreSQL's last word
    // on it); the next connects anew.
    let mut answer = billing().await;
    if let Err(StoreError::Unavailable(_)) = answer {
        answer = billing().await;
    }
    assert!(
        !answer.unwrap(),
        "a new connection keeps nothing of the old one's"
    );
}

/// Checks racing changes, on two nodes: each change of an organization names its number in its
/// status reason, and every check on the other node must answer a number at least that of the
/// last change committed before the check was asked (never from before it). Three organizations
/// and eight checkers on two threads, so batches mix facts kept, dropped and read; the changes
/// alternate between the batched settings path (the reason alone) and the single write (with
/// billing state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_checks_racing_changes_never_answer_from_before_a_committed_one() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::Arc;
    let Some((db, b)) = two_nodes().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let a = db.store.clone();
    plans(&a, &["gold"]).await;
    let mut orgs = Vec::new();
    for i in 0..3 {
        orgs.push(insert(&a, &format!("org-{i}")).await);
    }
    let ids: Vec<OrganizationId> = orgs.iter().map(|o| o.id).collect();
    let committed: Arc<Vec<AtomicI64>> = Arc::new((0..3).map(|_| AtomicI64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let b = Arc::new(b);
    let checkers: Vec<_> = (0..8)
        .map(|c| {
            let (b, ids, committed, done) =
                (b.clone(), ids.clone(), committed.clone(), done.clone());
            tokio::spawn(async move {
                let mut checks = 0;
                for n in 0.. {
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    let k = (c + n) % ids.len();
                    let floor = committed[k].load(Ordering::SeqCst);
                    let f = b.access_facts(ids[k]).await.unwrap();
                    let seen: i64 = f.standing.status_reason.map_or(0, |r| r.parse().unwrap());
                    assert!(
                        seen >= floor,
                        "checker {c}: change {floor} was committed, saw {seen}"
                    );
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for n in 1..=150 {
        let k = n as usize % orgs.len();
        let mut next = orgs[k].clone();
        next.status_reason = Some(n.to_string());
        if n % 3 == 0 {
            next.billing_overdue = !next.billing_overdue;
        }
        next.version += 1;
        a.update_organization(&next, &orgs[k]).await.unwrap();
        committed[k].store(n, Ordering::SeqCst);
        orgs[k] = next;
    }
    done.store(true, Ordering::SeqCst);
    let mut checks = 0;
    for c in checkers {
        checks += c.await.unwrap();
    }
    assert!(checks > 150, "the checks raced the changes ({checks})");
}
