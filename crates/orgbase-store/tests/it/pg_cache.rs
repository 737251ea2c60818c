//! PostgreSQL nodes cache keys and organizations; a change made through one node reaches the
//! others' caches by NOTIFY. Two stores on one database stand for two nodes.
use orgbase_domain::credential::API_KEY_PREFIX;
use orgbase_domain::{now, ApiKey, NewSecret, SecretHash};
use orgbase_store::{ApiKeyStore, OrganizationStore, PlanStore};
use std::time::{Duration, Instant};

use crate::organizations::new_org;

/// Polls `f` until it holds, for at most two seconds.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_reaches_the_others_cache() {
    let Some(db) = orgbase_store::testing::postgres().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    // Node A concrete, to look into its cache; node B as any node.
    let a = db.pg_node().await;
    let b = orgbase_store::open(&db.url, &Default::default())
        .await
        .unwrap();
    // Let both listeners come up (the cache is bypassed until their first ping returns).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let org = new_org("Acme", "acme");
    a.insert_organization(&org).await.unwrap();
    let secret = NewSecret::generate(API_KEY_PREFIX);
    let key = ApiKey::new_platform("k".into(), &secret);
    a.insert_api_key(&key).await.unwrap();
    let other = ApiKey::new_platform("other".into(), &NewSecret::generate(API_KEY_PREFIX));
    a.insert_api_key(&other).await.unwrap();
    // Node A reads (and caches) both.
    assert_eq!(a.get_organization(org.id).await.unwrap().version, 1);
    assert!(a.find_api_key(&secret.hash).await.unwrap().is_some());
    assert_eq!(
        a.cached_counts(),
        (1, 1),
        "node A serves them from its cache now"
    );

    // Node B changes the organization and revokes the key.
    let mut next = b.get_organization(org.id).await.unwrap();
    next.name = "Renamed".into();
    next.version = 2;
    b.update_organization(&next, &org).await.unwrap();
    b.revoke_api_key(key.id, now()).await.unwrap();
    // B sees its own writes at once.
    assert_eq!(b.get_organization(org.id).await.unwrap().name, "Renamed");
    assert!(!b
        .find_api_key(&secret.hash)
        .await
        .unwrap()
        .unwrap()
        .is_active());

    // A sees them as soon as the notices arrive.
    let started = Instant::now();
    eventually("the renamed organization on node A", async || {
        a.get_organization(org.id).await.unwrap().name == "Renamed"
    })
    .await;
    eventually("the revocation on node A", async || {
        !a.find_api_key(&SecretHash::of(&secret.plain))
            .await
            .unwrap()
            .unwrap()
            .is_active()
    })
    .await;
    eprintln!(
        "notices reached the other node within {:?}",
        started.elapsed()
    );

    // A change of who may do what (a suspension: its notice goes with its transaction) too.
    let current = b.get_organization(org.id).await.unwrap();
    let mut suspended = current.clone();
    suspended.status = orgbase_domain::OrgStatus::Suspended;
    suspended.version = current.version + 1;
    b.update_organization(&suspended, &current).await.unwrap();
    eventually("the suspension on node A", async || {
        a.get_organization(org.id).await.unwrap().status == orgbase_domain::OrgStatus::Suspended
    })
    .await;

    // The node that writes keeps what it wrote, and a later change elsewhere still reaches it.
    let current = a.get_organization(org.id).await.unwrap();
    let mut renamed = current.clone();
    renamed.name = "Written on A".into();
    renamed.version = current.version + 1;
    a.update_organization(&renamed, &current).await.unwrap();
    assert_eq!(a.cached_counts().1, 1, "kept after the write");
    assert_eq!(a.get_organization(org.id).await.unwrap(), renamed);
    eventually("A's rename on node B", async || {
        b.get_organization(org.id).await.unwrap().name == "Written on A"
    })
    .await;
    let mut again = b.get_organization(org.id).await.unwrap();
    let before = again.clone();
    again.name = "Written on B".into();
    again.version += 1;
    b.update_organization(&again, &before).await.unwrap();
    eventually("B's rename on node A", async || {
        a.get_organization(org.id).await.unwrap().name == "Written on B"
    })
    .await;

    // Plans too: node A caches starter; node B changes its price.
    let starter = a.get_plan("starter").await.unwrap();
    let mut dearer = b.get_plan("starter").await.unwrap();
    dearer.price = starter.price + 100;
    b.update_plan(&dearer).await.unwrap();
    eventually("the new price on node A", async || {
        a.get_plan("starter").await.unwrap().price == starter.price + 100
    })
    .await;
}
