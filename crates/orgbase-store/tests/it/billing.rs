//! Billing accounts and webhook events: an account per organization (the first customer wins),
//! each event applied once, and a stale organization refused with nothing recorded.
use chrono::Duration;
use orgbase_domain::{now, BillingProvider, Organization, Plan, PlanInterval, Subscription};
use orgbase_store::testing::TestDb;
use orgbase_store::{BillingAccount, BillingChange, BillingEventRecord, DynStore, StoreError};
use uuid::Uuid;

use crate::organizations::new_org;

async fn org(s: &DynStore, name: &str) -> Organization {
    let o = new_org(
        name,
        &format!("b-{}", &Uuid::now_v7().simple().to_string()[20..]),
    );
    s.insert_organization(&o).await.unwrap();
    o
}

fn event(id: &str, org: Option<&Organization>) -> BillingEventRecord {
    BillingEventRecord {
        provider: BillingProvider::Stripe,
        event_id: id.into(),
        event_type: "customer.subscription.updated".into(),
        organization_id: org.map(|o| o.id),
        received_at: now(),
    }
}

/// `previous` subscribed, overdue, at the next version; and its account with every column set.
fn subscribed(previous: &Organization, customer: &str) -> BillingChange {
    let mut next = previous.clone();
    next.subscription = Some(Subscription {
        provider: BillingProvider::Stripe,
        id: "sub_1".into(),
        status: "active".into(),
    });
    next.billing_overdue = true;
    next.updated_at = now();
    next.version = previous.version + 1;
    let t = now();
    BillingChange {
        account: BillingAccount {
            organization_id: previous.id,
            provider: BillingProvider::Stripe,
            customer_id: customer.into(),
            subscription_as_of: Some(t),
            invoice_as_of: Some(t - Duration::seconds(5)),
            current_period_end: Some(t + Duration::days(30)),
            price_id: Some("price_pro".into()),
        },
        next,
        previous: previous.clone(),
    }
}

async fn a_customer_is_attached_once_per_organization(db: TestDb) {
    let s = &db.store;
    let a = org(s, "Alpha").await;
    let b = org(s, "Beta").await;
    assert!(s.get_billing_account(a.id).await.unwrap().is_none());
    let first = s
        .attach_billing_customer(a.id, BillingProvider::Stripe, "cus_a")
        .await
        .unwrap();
    assert_eq!(
        first,
        BillingAccount {
            organization_id: a.id,
            provider: BillingProvider::Stripe,
            customer_id: "cus_a".into(),
            subscription_as_of: None,
            invoice_as_of: None,
            current_period_end: None,
            price_id: None,
        }
    );
    // A second customer for the same organization: the first one stays, and is answered.
    let again = s
        .attach_billing_customer(a.id, BillingProvider::Stripe, "cus_other")
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        s.get_billing_account(a.id).await.unwrap(),
        Some(first.clone())
    );
    // Another organization cannot take the customer.
    assert!(matches!(
        s.attach_billing_customer(b.id, BillingProvider::Stripe, "cus_a")
            .await,
        Err(StoreError::Conflict {
            constraint: "billing_customer"
        })
    ));
    assert!(s.get_billing_account(b.id).await.unwrap().is_none());
    // The same id at another provider is another customer.
    let at_chargebee = s
        .attach_billing_customer(b.id, BillingProvider::Chargebee, "cus_a")
        .await
        .unwrap();
    assert_eq!(at_chargebee.provider, BillingProvider::Chargebee);
    // An organization that has an account answers it, whichever customer is asked for.
    assert_eq!(
        s.attach_billing_customer(a.id, BillingProvider::Chargebee, "cus_a")
            .await
            .unwrap(),
        first
    );
    // Found by customer.
    assert_eq!(
        s.find_billing_account(BillingProvider::Stripe, "cus_a")
            .await
            .unwrap(),
        Some(first)
    );
    assert_eq!(
        s.find_billing_account(BillingProvider::Chargebee, "cus_a")
            .await
            .unwrap(),
        Some(at_chargebee)
    );
    assert!(s
        .find_billing_account(BillingProvider::Stripe, "cus_none")
        .await
        .unwrap()
        .is_none());
    // No such organization.
    assert!(matches!(
        s.attach_billing_customer(
            orgbase_domain::OrganizationId::new(),
            BillingProvider::Stripe,
            "cus_ghost"
        )
        .await,
        Err(StoreError::NotFound)
    ));
}

async fn an_event_is_applied_once(db: TestDb) {
    let s = &db.store;
    let o = org(s, "Once").await;
    // Read first, so that a cached copy would show if the change left one behind.
    assert_eq!(s.get_organization(o.id).await.unwrap(), o);
    s.attach_billing_customer(o.id, BillingProvider::Stripe, "cus_once")
        .await
        .unwrap();
    assert!(!s
        .billing_event_seen(BillingProvider::Stripe, "evt_1")
        .await
        .unwrap());
    let change = subscribed(&o, "cus_once");
    assert!(s
        .apply_billing_event(&event("evt_1", Some(&o)), Some(&change))
        .await
        .unwrap());
    assert!(s
        .billing_event_seen(BillingProvider::Stripe, "evt_1")
        .await
        .unwrap());
    assert!(!s
        .billing_event_seen(BillingProvider::Chargebee, "evt_1")
        .await
        .unwrap());
    let stored = s.get_organization(o.id).await.unwrap();
    assert_eq!(stored, change.next);
    assert_eq!(
        s.get_billing_account(o.id).await.unwrap(),
        Some(change.account.clone())
    );

    // Delivered again, even with a change based on the current version: nothing happens.
    let mut again = subscribed(&stored, "cus_once");
    again.next.billing_overdue = false;
    again.account.price_id = Some("price_other".into());
    assert!(!s
        .apply_billing_event(&event("evt_1", Some(&o)), Some(&again))
        .await
        .unwrap());
    assert_eq!(s.get_organization(o.id).await.unwrap(), change.next);
    assert_eq!(
        s.get_billing_account(o.id).await.unwrap(),
        Some(change.account.clone())
    );

    // An event that changes nothing is recorded all the same, once.
    assert!(s
        .apply_billing_event(&event("evt_2", None), None)
        .await
        .unwrap());
    assert!(!s
        .apply_billing_event(&event("evt_2", None), None)
        .await
        .unwrap());
    assert!(s
        .billing_event_seen(BillingProvider::Stripe, "evt_2")
        .await
        .unwrap());
    assert_eq!(
        s.get_organization(o.id).await.unwrap().version,
        o.version + 1
    );
}

async fn a_stale_organization_records_nothing(db: TestDb) {
    let s = &db.store;
    let o = org(s, "Stale").await;
    // Someone else changes the organization after the webhook read it.
    let mut renamed = o.clone();
    renamed.name = "Renamed".into();
    renamed.version += 1;
    s.update_organization(&renamed, &o).await.unwrap();
    // Cached by this read: the failed apply must not make it stale, the retry must.
    assert_eq!(s.get_organization(o.id).await.unwrap(), renamed);

    let stale = subscribed(&o, "cus_stale");
    assert!(matches!(
        s.apply_billing_event(&event("evt_s", Some(&o)), Some(&stale))
            .await,
        Err(StoreError::VersionMismatch)
    ));
    assert!(!s
        .billing_event_seen(BillingProvider::Stripe, "evt_s")
        .await
        .unwrap());
    assert!(s.get_billing_account(o.id).await.unwrap().is_none());
    assert_eq!(s.get_organization(o.id).await.unwrap(), renamed);

    // Read again and retry: it goes through.
    let fresh = s.get_organization(o.id).await.unwrap();
    let retry = subscribed(&fresh, "cus_stale");
    assert!(s
        .apply_billing_event(&event("evt_s", Some(&o)), Some(&retry))
        .await
        .unwrap());
    let stored = s.get_organization(o.id).await.unwrap();
    assert_eq!(stored, retry.next);
    assert_eq!(stored.name, "Renamed");
    assert!(stored.billing_overdue);
    assert_eq!(
        s.get_billing_account(o.id).await.unwrap(),
        Some(retry.account.clone())
    );
    assert!(s
        .billing_event_seen(BillingProvider::Stripe, "evt_s")
        .await
        .unwrap());
}

/// The account's upsert replaces every column; a customer of another organization rolls the
/// whole event back.
async fn an_event_replaces_the_account(db: TestDb) {
    let s = &db.store;
    let o = org(s, "Upsert").await;
    let other = org(s, "Other").await;
    s.attach_billing_customer(other.id, BillingProvider::Stripe, "cus_taken")
        .await
        .unwrap();
    s.attach_billing_customer(o.id, BillingProvider::Stripe, "cus_mine")
        .await
        .unwrap();
    let first = subscribed(&o, "cus_mine");
    assert!(s
        .apply_billing_event(&event("evt_u1", Some(&o)), Some(&first))
        .await
        .unwrap());
    let mut second = subscribed(&first.next, "cus_mine");
    second.account.invoice_as_of = None;
    second.account.price_id = None;
    second.account.current_period_end = Some(now() + Duration::days(60));
    assert!(s
        .apply_billing_event(&event("evt_u2", Some(&o)), Some(&second))
        .await
        .unwrap());
    assert_eq!(
        s.get_billing_account(o.id).await.unwrap(),
        Some(second.account.clone())
    );

    let taken = subscribed(&second.next, "cus_taken");
    assert!(matches!(
        s.apply_billing_event(&event("evt_u3", Some(&o)), Some(&taken))
            .await,
        Err(StoreError::Conflict {
            constraint: "billing_customer"
        })
    ));
    assert!(!s
        .billing_event_seen(BillingProvider::Stripe, "evt_u3")
        .await
        .unwrap());
    assert_eq!(s.get_organization(o.id).await.unwrap(), second.next);
    assert_eq!(
        s.get_billing_account(o.id).await.unwrap(),
        Some(second.account)
    );
}

fn priced(id: &str, provider: Option<BillingProvider>, price: Option<&str>) -> Plan {
    let t = now();
    Plan {
        id: id.into(),
        name: id.to_uppercase(),
        price: 4900,
        currency: "USD".into(),
        interval: PlanInterval::Month,
        entitlements: vec!["sms".into()],
        rate_limit: 10,
        public: true,
        provider,
        provider_price_id: price.map(str::to_owned),
        created_at: t,
        updated_at: t,
    }
}

async fn a_plan_is_found_by_its_price(db: TestDb) {
    let s = &db.store;
    let pro = priced("pro", Some(BillingProvider::Stripe), Some("price_pro"));
    let cb = priced("cb", Some(BillingProvider::Chargebee), Some("price_cb"));
    s.insert_plan(&pro).await.unwrap();
    s.insert_plan(&cb).await.unwrap();
    s.insert_plan(&priced("free", None, None)).await.unwrap();
    assert_eq!(
        s.find_plan_by_price(BillingProvider::Stripe, "price_pro")
            .await
            .unwrap(),
        Some(pro)
    );
    assert_eq!(
        s.find_plan_by_price(BillingProvider::Chargebee, "price_cb")
            .await
            .unwrap(),
        Some(cb)
    );
    assert!(s
        .find_plan_by_price(BillingProvider::Chargebee, "price_pro")
        .await
        .unwrap()
        .is_none());
    assert!(s
        .find_plan_by_price(BillingProvider::Stripe, "price_none")
        .await
        .unwrap()
        .is_none());
}

/// Purging an organization takes its account; its events stay recorded.
async fn purging_an_organization_takes_its_account(db: TestDb) {
    let s = &db.store;
    let o = org(s, "Gone").await;
    s.attach_billing_customer(o.id, BillingProvider::Stripe, "cus_gone")
        .await
        .unwrap();
    let change = subscribed(&o, "cus_gone");
    assert!(s
        .apply_billing_event(&event("evt_g", Some(&o)), Some(&change))
        .await
        .unwrap());
    let mut deleted = change.next.clone();
    deleted.deleted_at = Some(now() - Duration::days(40));
    deleted.version += 1;
    s.update_organization(&deleted, &change.next).await.unwrap();
    let purged = s
        .purge_deleted(now() - Duration::days(30), 100)
        .await
        .unwrap();
    assert_eq!(purged, vec![o.id]);
    assert!(s.get_billing_account(o.id).await.unwrap().is_none());
    assert!(s
        .find_billing_account(BillingProvider::Stripe, "cus_gone")
        .await
        .unwrap()
        .is_none());
    assert!(s
        .billing_event_seen(BillingProvider::Stripe, "evt_g")
        .await
        .unwrap());
    // The customer is free again.
    let next = org(s, "Next").await;
    s.attach_billing_customer(next.id, BillingProvider::Stripe, "cus_gone")
        .await
        .unwrap();
}

crate::conformance!(
    a_customer_is_attached_once_per_organization,
    an_event_is_applied_once,
    a_stale_organization_records_nothing,
    an_event_replaces_the_account,
    a_plan_is_found_by_its_price,
    purging_an_organization_takes_its_account,
);

/// On PostgreSQL, a change applied by a webhook on one node reaches the others' caches.
mod pg_nodes {
    use super::*;
    use orgbase_store::OrganizationStore;
    use std::time::Instant;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_billing_change_reaches_every_nodes_cache() {
        let Some(db) = orgbase_store::testing::postgres().await else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return;
        };
        let a = db.pg_node().await;
        let b = orgbase_store::open(&db.url, &Default::default())
            .await
            .unwrap();
        // Let both listeners come up (the cache is bypassed until their first ping returns).
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let o = new_org("Nodes", "billing-nodes");
        a.insert_organization(&o).await.unwrap();
        assert_eq!(a.get_organization(o.id).await.unwrap(), o);
        assert_eq!(b.get_organization(o.id).await.unwrap(), o);
        assert_eq!(
            a.cached_counts().1,
            1,
            "node A serves it from its cache now"
        );

        let change = subscribed(&o, "cus_nodes");
        assert!(b
            .apply_billing_event(&event("evt_n", Some(&o)), Some(&change))
            .await
            .unwrap());
        // The writing node at once.
        assert_eq!(b.get_organization(o.id).await.unwrap(), change.next);
        // The other as soon as the notice arrives.
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        while a.get_organization(o.id).await.unwrap() != change.next {
            assert!(
                Instant::now() < deadline,
                "node A still serves the old organization"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
