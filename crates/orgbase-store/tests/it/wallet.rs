use orgbase_domain::wallet::{EntryKind, NewEntry, Service};
use orgbase_domain::{now, OrganizationId};
use orgbase_store::testing::TestDb;
use orgbase_store::{Appended, DynStore, StoreError};
use uuid::Uuid;

use crate::organizations::new_org;

pub fn entry(org: OrganizationId, kind: EntryKind, amount: i64, key: Option<&str>) -> NewEntry {
    NewEntry {
        id: Uuid::now_v7(),
        organization_id: org,
        kind,
        service: (kind == EntryKind::Charge).then_some(Service::Voice),
        amount,
        sms_points: 0,
        reason: Some("test".into()),
        actor: "key:test".into(),
        idempotency_key: key.map(str::to_owned),
        currency: "USD".into(),
        created_at: now(),
    }
}

async fn org(s: &DynStore) -> OrganizationId {
    let o = new_org(
        "Wallet",
        &format!("w-{}", &Uuid::now_v7().simple().to_string()[20..]),
    );
    s.insert_organization(&o).await.unwrap();
    o.id
}

async fn entries_move_the_balances_and_never_below_zero(db: TestDb) {
    let s = &db.store;
    let o = org(s).await;
    assert!(s.get_wallet(o).await.unwrap().is_none());
    // Nothing to charge against: refused, nothing written.
    assert!(matches!(
        s.append_entry(&entry(o, EntryKind::Charge, 1, None)).await,
        Err(StoreError::Conflict {
            constraint: "insufficient_funds"
        })
    ));
    assert!(s.list_entries(o, None, 10).await.unwrap().is_empty());
    let Appended::New(c) = s
        .append_entry(&entry(o, EntryKind::Credit, 1000, None))
        .await
        .unwrap()
    else {
        panic!("a new entry")
    };
    assert_eq!((c.balance_after, c.sms_points_after), (1000, 0));
    let mut sms = entry(o, EntryKind::Charge, 300, None);
    sms.service = Some(Service::Sms);
    sms.sms_points = 50;
    let Appended::New(d) = s.append_entry(&sms).await.unwrap() else {
        panic!("a new entry")
    };
    assert_eq!((d.balance_after, d.sms_points_after), (700, 50));
    assert!(matches!(
        s.append_entry(&entry(o, EntryKind::Charge, 701, None))
            .await,
        Err(StoreError::Conflict {
            constraint: "insufficient_funds"
        })
    ));
    let w = s.get_wallet(o).await.unwrap().unwrap();
    assert_eq!(
        (w.balance, w.sms_points, w.currency.as_str()),
        (700, 50, "USD")
    );
    let list = s.list_entries(o, None, 10).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, d.id, "newest first");
    let older = s.list_entries(o, Some(d.id), 10).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].id, c.id);
}

async fn an_idempotency_key_makes_one_entry(db: TestDb) {
    let s = &db.store;
    let o = org(s).await;
    let first = entry(o, EntryKind::Credit, 500, Some("k-1"));
    let Appended::New(made) = s.append_entry(&first).await.unwrap() else {
        panic!("new")
    };
    let again = NewEntry {
        id: Uuid::now_v7(),
        ..first.clone()
    };
    match s.append_entry(&again).await.unwrap() {
        Appended::Existing(e) => assert_eq!(e, made),
        other => panic!("{other:?}"),
    }
    // The same key in another organization is another entry.
    let o2 = org(s).await;
    let elsewhere = NewEntry {
        id: Uuid::now_v7(),
        organization_id: o2,
        ..first
    };
    assert!(matches!(
        s.append_entry(&elsewhere).await.unwrap(),
        Appended::New(_)
    ));
    assert_eq!(s.get_wallet(o).await.unwrap().unwrap().balance, 500);
    // Another credential's key of the same name is its own.
    let other_actor = NewEntry {
        id: Uuid::now_v7(),
        actor: "key:other".into(),
        ..entry(o, EntryKind::Credit, 500, Some("k-1"))
    };
    assert!(matches!(
        s.append_entry(&other_actor).await.unwrap(),
        Appended::New(_)
    ));
    // Once keys are purged (after 24 hours), the key is free again.
    assert!(s
        .purge_idempotency_keys(now() + chrono::Duration::seconds(1))
        .await
        .is_ok());
    let later = NewEntry {
        id: Uuid::now_v7(),
        ..entry(o, EntryKind::Credit, 500, Some("k-1"))
    };
    assert!(matches!(
        s.append_entry(&later).await.unwrap(),
        Appended::New(_)
    ));
    assert_eq!(s.get_wallet(o).await.unwrap().unwrap().balance, 1500);
}

/// Many entries at once, some repeated under one key: the balance is the sum of the entries,
/// never below zero, and each key made one entry.
async fn concurrent_entries_lose_nothing(db: TestDb) {
    let s = &db.store;
    let o = org(s).await;
    s.append_entry(&entry(o, EntryKind::Credit, 1000, None))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let key = format!("key-{}", i % 60);
                let kind = if i % 3 == 0 {
                    EntryKind::Credit
                } else {
                    EntryKind::Charge
                };
                let amount = if kind == EntryKind::Credit { 100 } else { 70 };
                // Two requests per key: the same request retried.
                let e = NewEntry {
                    kind,
                    amount,
                    service: (kind == EntryKind::Charge).then_some(Service::Voice),
                    ..entry(o, kind, amount, Some(&key))
                };
                s.append_entry(&e).await
            })
        })
        .collect();
    for t in tasks {
        match t.await.unwrap() {
            Ok(_)
            | Err(StoreError::Conflict {
                constraint: "insufficient_funds",
            }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let entries = s.list_entries(o, None, 1000).await.unwrap();
    let sum: i64 = entries
        .iter()
        .map(|e| match e.kind {
            EntryKind::Credit => e.amount,
            EntryKind::Charge => -e.amount,
        })
        .sum();
    let w = s.get_wallet(o).await.unwrap().unwrap();
    assert_eq!(w.balance, sum);
    assert!(entries.iter().all(|e| e.balance_after >= 0));
    let keys: std::collections::HashSet<_> = entries
        .iter()
        .filter_map(|e| e.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), entries.len() - 1, "one entry per key");
    // The entry applied last carries the balance (ids are made before the write, so under
    // concurrency the order of ids is not quite the order of application).
    assert!(entries.iter().any(|e| e.balance_after == w.balance));
}

/// A wallet read once an entry has answered shows that entry, however many reads ran beside it
/// (a store that keeps wallets in memory must drop its copy at the entry's commit, and a read
/// that began before the commit must not put back what it read).
async fn a_read_after_an_entry_shows_it(db: TestDb) {
    let s = &db.store;
    let o = org(s).await;
    assert!(
        s.get_wallet(o).await.unwrap().is_none(),
        "read before any entry"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (s, stop) = (s.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    s.get_wallet(o).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for i in 1..=40 {
        s.append_entry(&entry(o, EntryKind::Credit, 1, None))
            .await
            .unwrap();
        let w = s.get_wallet(o).await.unwrap().expect("credited");
        assert_eq!(w.balance, i, "the read after entry {i}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    // Removed for good: no wallet is left to read.
    let before = s.get_organization(o).await.unwrap();
    let mut deleted = before.clone();
    deleted.deleted_at = Some(now() - chrono::Duration::days(40));
    deleted.version += 1;
    s.update_organization(&deleted, &before).await.unwrap();
    let purged = s
        .purge_deleted(now() - chrono::Duration::days(30), 100)
        .await
        .unwrap();
    assert!(purged.contains(&o));
    assert!(s.get_wallet(o).await.unwrap().is_none(), "purged");
}

crate::conformance!(
    a_read_after_an_entry_shows_it,
    entries_move_the_balances_and_never_below_zero,
    an_idempotency_key_makes_one_entry,
    concurrent_entries_lose_nothing,
);
