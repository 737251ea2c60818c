use chrono::Duration;
use orgbase_domain::{
    now, CountryCode, NewOrganization, OrgName, OrgStatus, OrgType, Organization, OrganizationId,
    OrganizationPatch, Slug,
};
use orgbase_store::testing::TestDb;
use orgbase_store::{OrganizationQuery, StatusFilter, StoreError};
use serde_json::Value;
use std::collections::BTreeMap;

pub fn new_org(name: &str, slug: &str) -> Organization {
    NewOrganization {
        name: OrgName::parse("name", name).unwrap(),
        slug: None,
        country_code: CountryCode::parse("countryCode", "US").unwrap(),
        org_type: OrgType::Normal,
        parent_id: None,
        owner: None,
        rest: OrganizationPatch::default(),
    }
    .build(
        OrganizationId::new(),
        Slug::parse("slug", slug).unwrap(),
        now(),
    )
    .unwrap()
}

fn q(limit: u32) -> OrganizationQuery {
    OrganizationQuery {
        limit,
        ..Default::default()
    }
}

/// Plans with these ids, for organizations to be on.
pub async fn plans(s: &orgbase_store::DynStore, ids: &[&str]) {
    for id in ids {
        let t = now();
        s.insert_plan(&orgbase_domain::Plan {
            id: (*id).into(),
            name: id.to_uppercase(),
            price: 100,
            currency: "USD".into(),
            interval: orgbase_domain::PlanInterval::Month,
            entitlements: vec!["sms".into()],
            rate_limit: 10,
            public: true,
            provider: None,
            provider_price_id: None,
            created_at: t,
            updated_at: t,
        })
        .await
        .unwrap();
    }
}

async fn insert_then_get_round_trips_every_field(db: TestDb) {
    let s = &db.store;
    plans(s, &["pro"]).await;
    let mut o = new_org("Acme", "acme");
    o.avatar_url = Some("https://example.com/a.png".into());
    o.status = OrgStatus::Suspended;
    o.status_reason = Some("fraud".into());
    o.sms.enabled = true;
    o.sms.brand_id = Some("B1".into());
    o.sms.campaign_id = Some("C1".into());
    o.premium = true;
    o.external_account_id = Some("AC_1".into());
    o.external_billing_id = Some("BILL_1".into());
    o.kyc_level = 2;
    o.placement_group = "dedicated".into();
    o.billing_overdue = true;
    o.rate_limit = Some(42);
    o.entitlements = vec!["voice".into(), "sms".into()];
    o.preferences.use_platform_url = true;
    o.preferences.recording_lifespan_days = Some(-1);
    o.metadata.0.insert("tier".into(), Value::from("gold"));
    o.metadata.0.insert("seats".into(), Value::from(5));
    o.metadata.0.insert("vip".into(), Value::from(true));
    o.offered_product_plan_id = Some("pro".into());
    o.owner = Some(orgbase_domain::UserId::new());
    o.subscription = Some(orgbase_domain::Subscription {
        provider: orgbase_domain::BillingProvider::Stripe,
        id: "sub_1".into(),
        status: "active".into(),
    });
    s.insert_organization(&o).await.unwrap();
    let back = s.get_organization(o.id).await.unwrap();
    assert_eq!(back, o);
}

/// Only changed columns are written: every kind of column must still land, and the unchanged
/// ones stay.
async fn an_update_writes_every_changed_column(db: TestDb) {
    let s = &db.store;
    plans(s, &["pro", "max"]).await;
    let o = new_org("Before", "before");
    s.insert_organization(&o).await.unwrap();
    let mut n = o.clone();
    n.name = "After".into();
    n.slug = "after".into();
    n.country_code = "DE".into();
    n.avatar_url = Some("https://e.com/x.png".into());
    n.status = OrgStatus::Suspended;
    n.status_reason = Some("why".into());
    n.org_type = OrgType::Partner;
    n.owner = Some(orgbase_domain::UserId::new());
    n.product_plan_id = "pro".into();
    n.offered_product_plan_id = Some("max".into());
    n.sms.enabled = true;
    n.sms.brand_id = Some("b".into());
    n.sms.campaign_id = Some("c".into());
    n.premium = true;
    n.external_account_id = Some("e1".into());
    n.external_billing_id = Some("e2".into());
    n.kyc_level = 1;
    n.placement_group = "pg".into();
    n.billing_overdue = true;
    n.rate_limit = Some(9);
    n.entitlements = vec!["x".into()];
    n.preferences.use_platform_url = true;
    n.preferences.recording_lifespan_days = Some(7);
    n.metadata.0.insert("k".into(), Value::from("v"));
    n.subscription = Some(orgbase_domain::Subscription {
        provider: orgbase_domain::BillingProvider::Chargebee,
        id: "cb_1".into(),
        status: "trialing".into(),
    });
    n.updated_at = now() + Duration::seconds(5);
    n.deleted_at = Some(now());
    n.version = 2;
    s.update_organization(&n, &o).await.unwrap();
    assert_eq!(s.get_organization(o.id).await.unwrap(), n);
    // The row itself, read from the database: a store's cache keeps the organization it wrote.
    let stored = |id| async move {
        let only = OrganizationQuery {
            only: Some(id),
            include_deleted: true,
            ..q(1)
        };
        s.list_organizations(&only).await.unwrap().pop().unwrap()
    };
    assert_eq!(stored(o.id).await, n);
    // Then one column alone.
    let mut m = n.clone();
    m.rate_limit = Some(10);
    m.version = 3;
    s.update_organization(&m, &n).await.unwrap();
    assert_eq!(s.get_organization(o.id).await.unwrap(), m);
    assert_eq!(stored(o.id).await, m);
    // An organization's own rate limit returns to its plan's (NULL).
    let mut back = m.clone();
    back.rate_limit = None;
    back.version = 4;
    s.update_organization(&back, &m).await.unwrap();
    assert_eq!(s.get_organization(o.id).await.unwrap().rate_limit, None);
}

async fn unknown_ids_are_not_found(db: TestDb) {
    let e = db
        .store
        .get_organization(OrganizationId::new())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    let o = new_org("Ghost", "ghost");
    let mut o2 = o.clone();
    o2.version = 2;
    let e = db.store.update_organization(&o2, &o).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
}

async fn slugs_are_unique(db: TestDb) {
    let s = &db.store;
    s.insert_organization(&new_org("A", "same-slug"))
        .await
        .unwrap();
    let e = s
        .insert_organization(&new_org("B", "same-slug"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                constraint: "organization_slug"
            }
        ),
        "{e:?}"
    );
    // The failed insert left nothing behind.
    assert_eq!(s.list_organizations(&q(10)).await.unwrap().len(), 1);
}

async fn a_failed_write_does_not_disturb_its_neighbours(db: TestDb) {
    // Many concurrent inserts, some of them conflicting: with group commit they share
    // transactions, and each must succeed or fail on its own.
    let s = db.store.clone();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let slug = if i % 3 == 0 {
                "contested".to_owned()
            } else {
                format!("org-{i}")
            };
            s.insert_organization(&new_org(&format!("Org {i}"), &slug))
                .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict {
                constraint: "organization_slug",
            }) => conflicts += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 41);
    assert_eq!(conflicts, 19);
    assert_eq!(s.list_organizations(&q(100)).await.unwrap().len(), 41);
}

async fn updates_are_conditional_on_the_version(db: TestDb) {
    let s = &db.store;
    let o = new_org("Acme", "acme");
    s.insert_organization(&o).await.unwrap();
    let patch = OrganizationPatch {
        name: Some(OrgName::parse("name", "Acme 2").unwrap()),
        ..Default::default()
    };
    let o2 = patch.apply(&o, now()).unwrap();
    assert_eq!(o2.version, 2);
    s.update_organization(&o2, &o).await.unwrap();
    // A second writer based on version 1 loses.
    let e = s.update_organization(&o2, &o).await.unwrap_err();
    assert!(matches!(e, StoreError::VersionMismatch), "{e:?}");
    assert_eq!(s.get_organization(o.id).await.unwrap(), o2);
}

async fn an_update_cannot_take_a_used_slug(db: TestDb) {
    let s = &db.store;
    s.insert_organization(&new_org("A", "taken")).await.unwrap();
    let b = new_org("B", "free");
    s.insert_organization(&b).await.unwrap();
    let mut b2 = b.clone();
    b2.slug = "taken".into();
    b2.version = 2;
    let e = s.update_organization(&b2, &b).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                constraint: "organization_slug"
            }
        ),
        "{e:?}"
    );
    assert_eq!(s.get_organization(b.id).await.unwrap(), b);
}

async fn lists_page_newest_first(db: TestDb) {
    let s = &db.store;
    let mut ids = Vec::new();
    for i in 0..7 {
        let o = new_org(&format!("Org {i}"), &format!("org-{i}"));
        ids.push(o.id);
        s.insert_organization(&o).await.unwrap();
    }
    ids.reverse();
    let page1 = s.list_organizations(&q(3)).await.unwrap();
    assert_eq!(page1.iter().map(|o| o.id).collect::<Vec<_>>(), ids[..3]);
    let page2 = s
        .list_organizations(&OrganizationQuery {
            before: Some(page1[2].id),
            ..q(3)
        })
        .await
        .unwrap();
    assert_eq!(page2.iter().map(|o| o.id).collect::<Vec<_>>(), ids[3..6]);
    let page3 = s
        .list_organizations(&OrganizationQuery {
            before: Some(page2[2].id),
            ..q(3)
        })
        .await
        .unwrap();
    assert_eq!(page3.iter().map(|o| o.id).collect::<Vec<_>>(), ids[6..]);
}

async fn lists_filter_by_every_field(db: TestDb) {
    let s = &db.store;
    let mut partner = new_org("Big Partner", "big-partner");
    partner.org_type = OrgType::Partner;
    s.insert_organization(&partner).await.unwrap();
    let mut child = new_org("Child Co", "child-co");
    child.parent_id = Some(partner.id);
    child.external_account_id = Some("AC_77".into());
    child.metadata.0.insert("tier".into(), Value::from("gold"));
    child.metadata.0.insert("seats".into(), Value::from(5));
    s.insert_organization(&child).await.unwrap();
    let mut off = new_org("Sleepy Inc", "sleepy");
    off.status = OrgStatus::Inactive;
    off.metadata.0.insert("tier".into(), Value::from("silver"));
    s.insert_organization(&off).await.unwrap();
    let mut gone = new_org("Gone Ltd", "gone-ltd");
    gone.deleted_at = Some(now());
    s.insert_organization(&gone).await.unwrap();

    let names = |v: Vec<Organization>| {
        let mut n: Vec<String> = v.into_iter().map(|o| o.name).collect();
        n.sort();
        n
    };
    let all = s.list_organizations(&q(50)).await.unwrap();
    assert_eq!(names(all), ["Big Partner", "Child Co", "Sleepy Inc"]);
    let with_deleted = s
        .list_organizations(&OrganizationQuery {
            include_deleted: true,
            ..q(50)
        })
        .await
        .unwrap();
    assert_eq!(with_deleted.len(), 4);
    let deleted = s
        .list_organizations(&OrganizationQuery {
            status: Some(StatusFilter::Deleted),
            ..q(50)
        })
        .await
        .unwrap();
    assert_eq!(names(deleted), ["Gone Ltd"]);
    let inactive = s
        .list_organizations(&OrganizationQuery {
            status: Some(StatusFilter::Is(OrgStatus::Inactive)),
            ..q(50)
        })
        .await
        .unwrap();
    assert_eq!(names(inactive), ["Sleepy Inc"]);
    let partners = s
        .list_organizations(&OrganizationQuery {
            org_type: Some(OrgType::Partner),
            ..q(50)
        })
        .await
        .unwrap();
    assert_eq!(names(partners), ["Big Partner"]);
    let children = s
        .list_organizations(&OrganizationQuery {
            parent_id: Some(partner.id),
            ..q(50)
        })
        .await
        .unwrap();
    assert_eq!(names(children), ["Child Co"]);
    let ext = s
        .list_organizations(&OrganizationQuery {
            external_account_id: Some("AC_77".into()),
            ..q(50)
        })
        .await
        .unwrap();
    assert_eq!(names(ext), ["Child Co"]);
    for (text, expect) in [
        ("CHILD", vec!["Child Co"]),
        ("eep", vec!["Sleepy Inc"]),
        ("g-part", vec!["Big Partner"]),
        ("100%", vec![]),
        ("o_x", vec![]),
    ] {
        let found = s
            .list_organizations(&OrganizationQuery {
                q: Some(text.into()),
                ..q(50)
            })
            .await
            .unwrap();
        assert_eq!(names(found), expect, "q={text}");
    }
    let gold = s
        .list_organizations(&OrganizationQuery {
            metadata: vec![("tier".into(), "gold".into())],
            ..q(50)
        })
        .await
        .unwrap();
    assert_eq!(names(gold), ["Child Co"]);
    let both = s
        .list_organizations(&OrganizationQuery {
            metadata: vec![("tier".into(), "gold".into()), ("seats".into(), "5".into())],
            ..q(50)
        })
        .await
        .unwrap();
    assert_eq!(names(both), ["Child Co"]);
    let none = s
        .list_organizations(&OrganizationQuery {
            metadata: vec![("tier".into(), "gold".into()), ("seats".into(), "6".into())],
            ..q(50)
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(s.count_children(partner.id).await.unwrap(), 1);
}

async fn search_follows_renames_and_metadata_follows_updates(db: TestDb) {
    let s = &db.store;
    let o = new_org("Alpha Works", "alpha-works");
    s.insert_organization(&o).await.unwrap();
    let mut meta = BTreeMap::new();
    meta.insert("tier".to_owned(), Some(Value::from("gold")));
    let o2 = OrganizationPatch {
        name: Some(OrgName::parse("name", "Omega Works").unwrap()),
        metadata: Some(meta),
        ..Default::default()
    }
    .apply(&o, now())
    .unwrap();
    s.update_organization(&o2, &o).await.unwrap();
    let find = |t: &str| OrganizationQuery {
        q: Some(t.into()),
        ..q(10)
    };
    assert!(s
        .list_organizations(&find("Alpha W"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.list_organizations(&find("omega")).await.unwrap().len(), 1);
    let gold = OrganizationQuery {
        metadata: vec![("tier".into(), "gold".into())],
        ..q(10)
    };
    assert_eq!(s.list_organizations(&gold).await.unwrap().len(), 1);
    let mut rm = BTreeMap::new();
    rm.insert("tier".to_owned(), None);
    let o3 = OrganizationPatch {
        metadata: Some(rm),
        ..Default::default()
    }
    .apply(&o2, now())
    .unwrap();
    s.update_organization(&o3, &o2).await.unwrap();
    assert!(s.list_organizations(&gold).await.unwrap().is_empty());
}

async fn soft_delete_keeps_the_row_and_restore_brings_back_the_status(db: TestDb) {
    let s = &db.store;
    let mut o = new_org("Acme", "acme");
    o.status = OrgStatus::Suspended;
    o.status_reason = Some("fraud".into());
    s.insert_organization(&o).await.unwrap();
    let mut d = o.clone();
    d.deleted_at = Some(now() + Duration::seconds(1));
    d.version = 2;
    s.update_organization(&d, &o).await.unwrap();
    assert!(s.get_organization(o.id).await.unwrap().is_deleted());
    assert!(s.list_organizations(&q(10)).await.unwrap().is_empty());
    let mut r = d.clone();
    r.deleted_at = None;
    r.version = 3;
    s.update_organization(&r, &d).await.unwrap();
    let back = s.get_organization(o.id).await.unwrap();
    assert_eq!(back.status, OrgStatus::Suspended);
    assert!(!back.is_deleted());
}

async fn a_parent_must_exist(db: TestDb) {
    let mut o = new_org("Orphan", "orphan");
    o.parent_id = Some(OrganizationId::new());
    let e = db.store.insert_organization(&o).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                constraint: "foreign_key"
            }
        ),
        "{e:?}"
    );
}

/// Callers that go away mid-read or mid-write (a client hanging up) must not cost the store a
/// connection or leave one in a transaction: everything after them still works.
async fn cancelled_calls_leave_the_store_whole(db: TestDb) {
    let s = db.store.clone();
    for i in 0..40 {
        s.insert_organization(&new_org(&format!("Org {i}"), &format!("org-{i}")))
            .await
            .unwrap();
    }
    for i in 0..200u64 {
        let s2 = s.clone();
        let task = tokio::spawn(async move {
            let _ = s2.list_organizations(&q(100)).await;
            let o = new_org("Late", &format!("late-{i}"));
            let _ = s2.insert_organization(&o).await;
        });
        // Cancel at varying points: before, during and after the work started.
        tokio::time::sleep(std::time::Duration::from_micros(i % 7 * 50)).await;
        task.abort();
        let _ = tokio::time::timeout(
            std::time::Duration::from_micros(i % 5 * 20),
            s.get_organization(OrganizationId::new()),
        )
        .await;
    }
    // Every pooled connection is usable, and in no transaction.
    let mut checks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        checks.push(tokio::spawn(async move {
            assert_eq!(s.list_organizations(&q(5)).await.unwrap().len(), 5);
            s.insert_organization(&new_org("After", &format!("after-{i}")))
                .await
                .unwrap();
        }));
    }
    for c in checks {
        c.await.unwrap();
    }
    let after = s
        .list_organizations(&OrganizationQuery {
            q: Some("after".into()),
            ..q(100)
        })
        .await
        .unwrap();
    assert_eq!(after.len(), 32);
}

/// Reads racing writes, and writes whose callers went away after sending them, never leave a
/// reader with an organization older than the database's (`list` always reads the database;
/// `get` may be served from memory).
async fn reads_never_lag_behind_writes(db: TestDb) {
    let s = db.store.clone();
    let mut orgs = Vec::new();
    for i in 0..3 {
        let o = new_org(&format!("Race {i}"), &format!("race-{i}"));
        s.insert_organization(&o).await.unwrap();
        orgs.push(o);
    }
    let ids: Vec<_> = orgs.iter().map(|o| o.id).collect();
    let mut readers = Vec::new();
    for r in 0..4 {
        let s = s.clone();
        let ids = ids.clone();
        readers.push(tokio::spawn(async move {
            for n in 0..300 {
                let _ = s.get_organization(ids[(n + r) % ids.len()]).await.unwrap();
            }
        }));
    }
    for round in 0..40u64 {
        for o in orgs.iter_mut() {
            let current = s.get_organization(o.id).await.unwrap();
            let next = OrganizationPatch {
                name: Some(OrgName::parse("name", &format!("Race {round} {}", o.slug)).unwrap()),
                ..Default::default()
            }
            .apply(&current, now())
            .unwrap();
            let s2 = s.clone();
            let (n2, c2) = (next.clone(), current.clone());
            let task = tokio::spawn(async move { s2.update_organization(&n2, &c2).await });
            if round % 3 == 0 {
                // The caller goes away; the write may or may not have happened, but if it did,
                // nobody may see the version before it.
                task.abort();
                let _ = task.await;
            } else {
                // An earlier abandoned write may land after `current` was read: then this one
                // loses the race, as it should.
                match task.await.unwrap() {
                    Ok(()) | Err(StoreError::VersionMismatch) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
    }
    for r in readers {
        r.await.unwrap();
    }
    // A last write that lands for each: an abandoned one still on its way can then no longer
    // land after it (its expected version is gone).
    for o in &orgs {
        loop {
            let current = s.get_organization(o.id).await.unwrap();
            let next = OrganizationPatch {
                name: Some(OrgName::parse("name", "Final").unwrap()),
                ..Default::default()
            }
            .apply(&current, now())
            .unwrap();
            match s.update_organization(&next, &current).await {
                Ok(()) => break,
                Err(StoreError::VersionMismatch) => continue,
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    let listed = s.list_organizations(&q(10)).await.unwrap();
    for id in ids {
        let from_db = listed.iter().find(|o| o.id == id).unwrap();
        assert_eq!(&s.get_organization(id).await.unwrap(), from_db);
    }
}

async fn concurrent_updates_each_get_their_own_answer(db: TestDb) {
    // Settings updates arriving together share a statement on PostgreSQL (and a transaction on
    // SQLite): each must still succeed or fail on its own version check and constraints.
    let s = db.store.clone();
    s.insert_organization(&new_org("Taken", "taken"))
        .await
        .unwrap();
    let mut orgs = Vec::new();
    for i in 0..40 {
        let o = new_org(&format!("Org {i}"), &format!("org-{i}"));
        s.insert_organization(&o).await.unwrap();
        orgs.push(o);
    }
    let change = |o: &Organization, tag: &str| {
        let mut n = o.clone();
        n.name = format!("{} {tag}", o.name);
        n.external_account_id = Some(format!("AC_{tag}"));
        n.premium = !o.premium;
        n.version = o.version + 1;
        n.updated_at = now();
        n
    };
    // A stale writer: the row moved on before it wrote.
    let stale = orgs[39].clone();
    let moved = change(&stale, "moved");
    s.update_organization(&moved, &stale).await.unwrap();

    #[derive(Debug, PartialEq)]
    enum Want {
        Ok,
        OneOfTwo,
        Slug,
        Mismatch,
        Missing,
    }
    let mut jobs: Vec<(Organization, Organization, Want)> = Vec::new();
    for o in &orgs[..30] {
        jobs.push((change(o, "a"), o.clone(), Want::Ok));
    }
    for o in &orgs[30..35] {
        jobs.push((change(o, "first"), o.clone(), Want::OneOfTwo));
        jobs.push((change(o, "second"), o.clone(), Want::OneOfTwo));
    }
    for o in &orgs[35..39] {
        let mut n = change(o, "slug");
        n.slug = "taken".into();
        jobs.push((n, o.clone(), Want::Slug));
    }
    jobs.push((change(&stale, "stale"), stale.clone(), Want::Mismatch));
    let ghost = new_org("Ghost", "ghost");
    jobs.push((change(&ghost, "ghost"), ghost.clone(), Want::Missing));

    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(next, prev, want)| {
            let s = s.clone();
            tokio::spawn(async move {
                let got = s.update_organization(&next, &prev).await;
                (next, want, got)
            })
        })
        .collect();
    let mut winners = BTreeMap::new();
    for t in tasks {
        let (next, want, got) = t.await.unwrap();
        match (&want, got) {
            (Want::Ok, Ok(())) => {
                winners.insert(next.id, next);
            }
            (Want::OneOfTwo, Ok(())) => {
                assert!(winners.insert(next.id, next).is_none(), "both writers won");
            }
            (Want::OneOfTwo, Err(StoreError::VersionMismatch)) => {}
            (
                Want::Slug,
                Err(StoreError::Conflict {
                    constraint: "organization_slug",
                }),
            ) => {}
            (Want::Mismatch, Err(StoreError::VersionMismatch)) => {}
            (Want::Missing, Err(StoreError::NotFound)) => {}
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", next.name),
        }
    }
    assert_eq!(winners.len(), 35, "30 writers and one of each pair");
    for o in &orgs[..35] {
        assert_eq!(&s.get_organization(o.id).await.unwrap(), &winners[&o.id]);
    }
    // The writes that failed changed nothing.
    for o in &orgs[35..39] {
        assert_eq!(&s.get_organization(o.id).await.unwrap(), o);
    }
    assert_eq!(s.get_organization(stale.id).await.unwrap(), moved);
    assert!(matches!(
        s.get_organization(ghost.id).await,
        Err(StoreError::NotFound)
    ));
}

crate::conformance!(
    concurrent_updates_each_get_their_own_answer,
    updates_from_many_runtimes_are_each_answered_by_their_version,
    reads_never_lag_behind_writes,
    cancelled_calls_leave_the_store_whole,
    an_update_writes_every_changed_column,
    insert_then_get_round_trips_every_field,
    unknown_ids_are_not_found,
    slugs_are_unique,
    a_failed_write_does_not_disturb_its_neighbours,
    updates_are_conditional_on_the_version,
    an_update_cannot_take_a_used_slug,
    lists_page_newest_first,
    lists_filter_by_every_field,
    search_follows_renames_and_metadata_follows_updates,
    soft_delete_keeps_the_row_and_restore_brings_back_the_status,
    a_parent_must_exist,
);

/// Settings updates from threads that are each a runtime of their own (as the server's are with
/// `ORGBASE_HTTP_THREADS`), at once and on the same rows, handed to PostgreSQL's batch writer on
/// another runtime: each update is answered by its own version check, and the rows end where the
/// answers say (one version step for each update answered Ok). Every runtime keeps running until
/// the check is done, as the server's do: a pool connection is driven by the runtime that opened
/// it, whichever thread uses it.
async fn updates_from_many_runtimes_are_each_answered_by_their_version(db: TestDb) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::sync::Barrier;
    const THREADS: usize = 7;
    let s = &db.store;
    let mut orgs = Vec::new();
    for i in 0..3 {
        let o = new_org(&format!("Runtimes {i}"), &format!("runtimes-{i}"));
        s.insert_organization(&o).await.unwrap();
        orgs.push(o);
    }
    let written = Arc::new(AtomicUsize::new(0));
    let all_written = Arc::new(Barrier::new(THREADS));
    let checked = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, orgs, written) = (s.clone(), orgs.clone(), written.clone());
            let (all_written, checked) = (all_written.clone(), checked.clone());
            crate::on_own_runtime(move || async move {
                // No panic before the barriers (the other threads would wait for ever):
                // each thread's failures are its answer, judged once every thread is done.
                let mut wrote: Result<(), String> = Ok(());
                for round in 0..6 {
                    let id = orgs[(t + round) % orgs.len()].id;
                    // Read, change, write: another thread may have moved the row since.
                    let o = match store.get_organization(id).await {
                        Ok(o) => o,
                        Err(e) => {
                            wrote = Err(format!("thread {t}, round {round}: read: {e:?}"));
                            break;
                        }
                    };
                    let mut n = o.clone();
                    n.name = format!("Runtimes {t}.{round}");
                    n.version = o.version + 1;
                    n.updated_at = now();
                    match store.update_organization(&n, &o).await {
                        Ok(()) => {
                            written.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(StoreError::VersionMismatch) => {}
                        Err(e) => {
                            wrote = Err(format!("thread {t}, round {round}: {e:?}"));
                            break;
                        }
                    }
                }
                all_written.wait().await;
                let mut found: Result<(), String> = Ok(());
                if t == 0 {
                    let mut steps = 0;
                    for o in &orgs {
                        match store.get_organization(o.id).await {
                            Ok(now) if now.name.starts_with("Runtimes ") => {
                                steps += (now.version - o.version) as usize;
                            }
                            Ok(now) => found = Err(format!("{} was not renamed", now.name)),
                            Err(e) => found = Err(format!("the check's read: {e:?}")),
                        }
                    }
                    let answered = written.load(Ordering::SeqCst);
                    if found.is_ok() && (steps != answered || steps == 0) {
                        found = Err(format!(
                            "{steps} version steps, {answered} updates answered Ok"
                        ));
                    }
                }
                checked.wait().await;
                wrote.and(found)
            })
        })
        .collect();
    tokio::task::block_in_place(|| {
        for t in threads {
            t.join().unwrap().unwrap();
        }
    });
}
