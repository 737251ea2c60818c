//! PostgreSQL's substring search and external account look-up live in `organization_search`, kept
//! by an indexer from a queue filled by triggers. Both must be exact before the indexer has run,
//! after, and across nodes.
use chrono::Duration as Days;
use orgbase_domain::{now, Organization};
use orgbase_store::{OrganizationQuery, OrganizationStore, StatusFilter};
use std::time::{Duration, Instant};

use crate::organizations::new_org;

/// The sorted names of the organizations `q` lists, deleted ones included.
async fn listed(s: &dyn OrganizationStore, q: OrganizationQuery) -> Vec<String> {
    let q = OrganizationQuery {
        include_deleted: true,
        status: None::<StatusFilter>,
        limit: 50,
        ..q
    };
    let mut n: Vec<String> = s
        .list_organizations(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    n.sort();
    n
}

async fn names(s: &dyn OrganizationStore, text: &str) -> Vec<String> {
    let q = OrganizationQuery {
        q: Some(text.into()),
        ..Default::default()
    };
    listed(s, q).await
}

async fn by_account(s: &dyn OrganizationStore, account: &str) -> Vec<String> {
    let q = OrganizationQuery {
        external_account_id: Some(account.into()),
        ..Default::default()
    };
    listed(s, q).await
}

fn with_account(o: &Organization, account: Option<&str>) -> Organization {
    let mut n = o.clone();
    n.external_account_id = account.map(Into::into);
    n.version = o.version + 1;
    n.updated_at = now();
    n
}

fn renamed(o: &Organization, name: &str) -> Organization {
    let mut n = o.clone();
    n.name = name.into();
    n.version = o.version + 1;
    n.updated_at = now();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_exact_before_and_after_the_indexer_runs() {
    let Some(db) = orgbase_store::testing::postgres().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    // A second node, concrete, to look into the queue.
    let b = db.pg_node().await;
    let a = &db.store;
    let queued = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM search_outbox")
            .fetch_one(b.pool())
            .await
            .unwrap()
    };
    let indexed = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT name, slug FROM organization_search ORDER BY name",
        )
        .fetch_all(b.pool())
        .await
        .unwrap()
    };
    let drained = || async {
        let deadline = Instant::now() + Duration::from_secs(3);
        while queued().await > 0 {
            assert!(
                Instant::now() < deadline,
                "the indexer did not catch up in 3 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    let alpha = new_org("Alpha Works", "alpha-works");
    let beta = new_org("Beta Works", "beta-works");
    a.insert_organization(&alpha).await.unwrap();
    a.insert_organization(&beta).await.unwrap();
    let alpha2 = renamed(&alpha, "Omega Works");
    a.update_organization(&alpha2, &alpha).await.unwrap();
    // Exact at once, on either node, whether or not the indexer has run yet.
    for s in [a.as_ref() as &dyn OrganizationStore, &b] {
        assert!(names(s, "alpha w").await.is_empty());
        assert_eq!(names(s, "OMEGA").await, ["Omega Works"]);
        assert_eq!(names(s, "works").await, ["Beta Works", "Omega Works"]);
        assert_eq!(names(s, "beta-w").await, ["Beta Works"]);
    }

    drained().await;
    assert_eq!(
        indexed().await,
        [
            ("Beta Works".to_owned(), "beta-works".to_owned()),
            ("Omega Works".to_owned(), "alpha-works".to_owned())
        ]
    );
    assert!(names(a.as_ref(), "alpha w").await.is_empty());
    assert_eq!(names(a.as_ref(), "alpha-w").await, ["Omega Works"]);
    assert_eq!(names(&b, "works").await, ["Beta Works", "Omega Works"]);

    // A change that is not a rename queues nothing.
    let mut quiet = alpha2.clone();
    quiet.premium = !quiet.premium;
    quiet.version += 1;
    a.update_organization(&quiet, &alpha2).await.unwrap();
    assert_eq!(queued().await, 0);

    // The external account id: exact while queued and once indexed, on either node; a change
    // of it alone is queued (and is an update in place of the organization's row).
    let indexed_accounts = || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT external_account_id FROM organization_search ORDER BY name",
        )
        .fetch_all(b.pool())
        .await
        .unwrap()
    };
    let alpha3 = with_account(&quiet, Some("AC-1"));
    a.update_organization(&alpha3, &quiet).await.unwrap();
    let beta2 = with_account(&beta, Some("AC-2"));
    a.update_organization(&beta2, &beta).await.unwrap();
    assert_eq!(queued().await, 2);
    for s in [a.as_ref() as &dyn OrganizationStore, &b] {
        assert_eq!(by_account(s, "AC-1").await, ["Omega Works"]);
        assert_eq!(by_account(s, "AC-2").await, ["Beta Works"]);
        assert!(by_account(s, "AC-3").await.is_empty());
        assert!(
            by_account(s, "ac-1").await.is_empty(),
            "exact, case and all"
        );
    }
    drained().await;
    assert_eq!(
        indexed_accounts().await,
        [Some("AC-2".to_owned()), Some("AC-1".to_owned())]
    );
    // Moved from one organization to another, then indexed: each look-up follows.
    let alpha4 = with_account(&alpha3, Some("AC-2"));
    a.update_organization(&alpha4, &alpha3).await.unwrap();
    let beta3 = with_account(&beta2, None);
    a.update_organization(&beta3, &beta2).await.unwrap();
    assert!(by_account(&b, "AC-1").await.is_empty());
    assert_eq!(by_account(&b, "AC-2").await, ["Omega Works"]);
    drained().await;
    assert!(by_account(a.as_ref(), "AC-1").await.is_empty());
    assert_eq!(by_account(a.as_ref(), "AC-2").await, ["Omega Works"]);
    assert_eq!(indexed_accounts().await, [None, Some("AC-2".to_owned())]);
    let beta = beta3;

    // Purged for good: gone from the results at once, and from the index once indexed.
    let mut gone = beta.clone();
    gone.deleted_at = Some(now() - Days::days(40));
    gone.version += 1;
    a.update_organization(&gone, &beta).await.unwrap();
    assert_eq!(
        names(a.as_ref(), "beta").await,
        ["Beta Works"],
        "soft-deleted, still listed with include_deleted"
    );
    let purged = a.purge_deleted(now() - Days::days(30), 10).await.unwrap();
    assert_eq!(purged, [beta.id]);
    assert!(names(&b, "beta").await.is_empty());
    drained().await;
    assert_eq!(indexed().await.len(), 1);
    assert!(names(&b, "beta").await.is_empty());
    assert_eq!(names(&b, "works").await, ["Omega Works"]);
}
