use orgbase_domain::{now, BillingProvider, Plan, PlanInterval};
use orgbase_store::testing::TestDb;
use orgbase_store::StoreError;

use crate::organizations::{new_org, plans};

fn plan(id: &str, price: i64, public: bool) -> Plan {
    let t = now();
    Plan {
        id: id.into(),
        name: format!("Plan {id}"),
        price,
        currency: "EUR".into(),
        interval: PlanInterval::Year,
        entitlements: vec!["voice".into()],
        rate_limit: 50,
        public,
        provider: Some(BillingProvider::Stripe),
        provider_price_id: Some("price_1".into()),
        created_at: t,
        updated_at: t,
    }
}

async fn plans_round_trip_and_list_by_price(db: TestDb) {
    let s = &db.store;
    // The default plan exists from the first migration on.
    let starter = s.get_plan("starter").await.unwrap();
    assert_eq!((starter.price, starter.public), (0, true));
    let pro = plan("pro", 4900, true);
    let hidden = plan("hidden", 100, false);
    s.insert_plan(&pro).await.unwrap();
    s.insert_plan(&hidden).await.unwrap();
    assert_eq!(s.get_plan("pro").await.unwrap(), pro);
    match s.insert_plan(&pro).await {
        Err(StoreError::Conflict {
            constraint: "plan_id",
        }) => {}
        other => panic!("{other:?}"),
    }
    let ids = |v: Vec<Plan>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_plans(true).await.unwrap()), ["starter", "pro"]);
    assert_eq!(
        ids(s.list_plans(false).await.unwrap()),
        ["starter", "hidden", "pro"]
    );
    let mut changed = pro.clone();
    changed.price = 5900;
    changed.provider = None;
    changed.provider_price_id = None;
    s.update_plan(&changed).await.unwrap();
    assert_eq!(s.get_plan("pro").await.unwrap(), changed);
    assert!(matches!(
        s.update_plan(&plan("ghost", 1, true)).await,
        Err(StoreError::NotFound)
    ));
}

/// An organization's plan and offered plan must exist; a plan in use (or offered, or used by a
/// deleted organization) is not deleted.
async fn a_plan_in_use_stays(db: TestDb) {
    let s = &db.store;
    plans(s, &["pro", "offer"]).await;
    let mut o = new_org("Acme", "acme");
    o.product_plan_id = "nope".into();
    assert!(matches!(
        s.insert_organization(&o).await,
        Err(StoreError::Conflict {
            constraint: "organization_plan"
        })
    ));
    o.product_plan_id = "pro".into();
    s.insert_organization(&o).await.unwrap();
    let mut n = o.clone();
    n.offered_product_plan_id = Some("missing".into());
    n.version += 1;
    assert!(matches!(
        s.update_organization(&n, &o).await,
        Err(StoreError::Conflict {
            constraint: "organization_plan"
        })
    ));
    n.offered_product_plan_id = Some("offer".into());
    s.update_organization(&n, &o).await.unwrap();
    for id in ["pro", "offer"] {
        assert!(
            matches!(
                s.delete_plan(id).await,
                Err(StoreError::Conflict {
                    constraint: "plan_in_use"
                })
            ),
            "{id}"
        );
    }
    let mut m = n.clone();
    m.product_plan_id = "starter".into();
    m.offered_product_plan_id = None;
    m.version += 1;
    s.update_organization(&m, &n).await.unwrap();
    s.delete_plan("pro").await.unwrap();
    s.delete_plan("offer").await.unwrap();
    assert!(matches!(s.get_plan("pro").await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.delete_plan("pro").await,
        Err(StoreError::NotFound)
    ));
}

/// The partner settings API changes an organization and its owner's e-mail in one transaction:
/// a taken e-mail writes neither.
async fn settings_and_owner_email_change_together(db: TestDb) {
    let s = &db.store;
    let t = now();
    let person = |email: &str| orgbase_domain::User {
        id: orgbase_domain::UserId::new(),
        email: orgbase_domain::Email::parse("e", email).unwrap(),
        name: "P".into(),
        password_hash: None,
        created_at: t,
        updated_at: t,
    };
    let o = new_org("Acme", "acme");
    let (o, owner) = s
        .insert_organization_with_owner(&o, &person("owner@example.com"))
        .await
        .unwrap();
    let other = person("taken@example.com");
    s.insert_user(&other).await.unwrap();
    let mut n = o.clone();
    n.name = "Renamed".into();
    n.version += 1;
    let taken = orgbase_domain::Email::parse("e", "taken@example.com").unwrap();
    assert!(matches!(
        s.update_organization_and_owner_email(&n, &o, Some((owner.user_id, taken)))
            .await,
        Err(StoreError::Conflict {
            constraint: "user_email"
        })
    ));
    assert_eq!(s.get_organization(o.id).await.unwrap().name, "Acme");
    let fresh = orgbase_domain::Email::parse("e", "new@example.com").unwrap();
    s.update_organization_and_owner_email(&n, &o, Some((owner.user_id, fresh.clone())))
        .await
        .unwrap();
    assert_eq!(s.get_organization(o.id).await.unwrap().name, "Renamed");
    assert_eq!(s.get_user(owner.user_id).await.unwrap().email, fresh);
}

crate::conformance!(
    plans_round_trip_and_list_by_price,
    a_plan_in_use_stays,
    settings_and_owner_email_change_together,
);
