use orgbase_domain::credential::API_KEY_PREFIX;
use orgbase_domain::{now, ApiKey, ApiKeyId, KeyKind, NewSecret, SecretHash};
use orgbase_store::testing::TestDb;
use orgbase_store::{KeyQuery, StoreError};

fn platform_key(name: &str) -> (ApiKey, String) {
    let secret = NewSecret::generate(API_KEY_PREFIX);
    let key = ApiKey {
        id: ApiKeyId::new(),
        name: name.into(),
        kind: KeyKind::Platform,
        organization_id: None,
        roles: vec![],
        prefix: secret.prefix.clone(),
        hash: secret.hash.clone(),
        created_at: now(),
        revoked_at: None,
    };
    (key, secret.plain)
}

async fn keys_are_found_by_hash_only(db: TestDb) {
    let s = &db.store;
    let (k, plain) = platform_key("ops");
    s.insert_api_key(&k).await.unwrap();
    let found = s
        .find_api_key(&SecretHash::of(&plain))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, k.id);
    assert_eq!(found.name, "ops");
    assert_eq!(found.kind, KeyKind::Platform);
    assert_eq!(found.created_at, k.created_at);
    assert!(s
        .find_api_key(&SecretHash::of("obk_nope"))
        .await
        .unwrap()
        .is_none());
    // The same secret cannot be stored twice.
    let mut dup = k.clone();
    dup.id = ApiKeyId::new();
    let e = s.insert_api_key(&dup).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                constraint: "api_key_hash"
            }
        ),
        "{e:?}"
    );
}

async fn bootstrap_happens_once(db: TestDb) {
    let s = &db.store;
    let (a, _) = platform_key("bootstrap");
    let (b, _) = platform_key("bootstrap");
    let (first, second) = tokio::join!(s.insert_bootstrap_key(&a), s.insert_bootstrap_key(&b));
    assert!(
        first.unwrap() ^ second.unwrap(),
        "exactly one bootstrap wins"
    );
    let (c, _) = platform_key("bootstrap");
    assert!(!s.insert_bootstrap_key(&c).await.unwrap());
    assert_eq!(
        s.list_api_keys(&KeyQuery::default()).await.unwrap().len(),
        1
    );
}

async fn revoking_keeps_the_last_platform_key(db: TestDb) {
    let s = &db.store;
    let (a, plain_a) = platform_key("a");
    let (b, _) = platform_key("b");
    s.insert_api_key(&a).await.unwrap();
    s.insert_api_key(&b).await.unwrap();
    let revoked = s.revoke_api_key(a.id, now()).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    // Found, but revoked: the caller answers 401.
    let found = s
        .find_api_key(&SecretHash::of(&plain_a))
        .await
        .unwrap()
        .unwrap();
    assert!(!found.is_active());
    let e = s.revoke_api_key(b.id, now()).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                constraint: "last_platform_key"
            }
        ),
        "{e:?}"
    );
    let active = s.list_api_keys(&KeyQuery::default()).await.unwrap();
    assert_eq!(active.iter().map(|k| k.id).collect::<Vec<_>>(), vec![b.id]);
    let all = s
        .list_api_keys(&KeyQuery {
            include_revoked: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let e = s.revoke_api_key(ApiKeyId::new(), now()).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
}

crate::conformance!(
    keys_are_found_by_hash_only,
    bootstrap_happens_once,
    revoking_keeps_the_last_platform_key
);

/// Soft-deleted organizations past the retention are removed for good, with their metadata and
/// keys; recent ones, live ones, and partners that still have children stay.
mod purge {
    use crate::organizations::new_org;
    use chrono::Duration;
    use orgbase_domain::{now, ApiKey, ApiKeyId, KeyKind, NewSecret, OrgType, SecretHash};
    use orgbase_store::testing::TestDb;
    use orgbase_store::{OrganizationQuery, StoreError};
    use serde_json::Value;

    async fn purge_removes_only_long_deleted_childless_orgs(db: TestDb) {
        let s = &db.store;
        let long_ago = now() - Duration::days(40);
        let mut old = new_org("Old", "old-gone");
        old.created_at = long_ago - Duration::days(1);
        old.deleted_at = Some(long_ago);
        old.metadata.0.insert("tier".into(), Value::from("gold"));
        s.insert_organization(&old).await.unwrap();
        let secret = NewSecret::generate("obk_");
        let key = ApiKey {
            id: ApiKeyId::new(),
            name: "k".into(),
            kind: KeyKind::Organization,
            organization_id: Some(old.id),
            roles: vec![],
            prefix: secret.prefix.clone(),
            hash: secret.hash.clone(),
            created_at: long_ago,
            revoked_at: None,
        };
        s.insert_api_key(&key).await.unwrap();
        let mut recent = new_org("Recent", "recent-gone");
        recent.deleted_at = Some(now() - Duration::days(1));
        s.insert_organization(&recent).await.unwrap();
        let live = new_org("Live", "live-one");
        s.insert_organization(&live).await.unwrap();
        let mut partner = new_org("Partner", "old-partner");
        partner.org_type = OrgType::Partner;
        partner.deleted_at = Some(long_ago);
        s.insert_organization(&partner).await.unwrap();
        let mut child = new_org("Child", "its-child");
        child.parent_id = Some(partner.id);
        s.insert_organization(&child).await.unwrap();
        // Read once, so that a cached copy would show if the purge left one behind.
        s.get_organization(old.id).await.unwrap();

        let purged = s
            .purge_deleted(now() - Duration::days(30), 100)
            .await
            .unwrap();
        assert_eq!(purged, vec![old.id]);
        assert!(matches!(
            s.get_organization(old.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(s
            .find_api_key(&SecretHash::of(&secret.plain))
            .await
            .unwrap()
            .is_none());
        let gold = OrganizationQuery {
            limit: 10,
            include_deleted: true,
            metadata: vec![("tier".into(), "gold".into())],
            ..Default::default()
        };
        assert!(s.list_organizations(&gold).await.unwrap().is_empty());
        for kept in [&recent, &live, &partner, &child] {
            assert_eq!(s.get_organization(kept.id).await.unwrap().id, kept.id);
        }
        assert!(s
            .purge_deleted(now() - Duration::days(30), 100)
            .await
            .unwrap()
            .is_empty());
    }

    crate::conformance!(purge_removes_only_long_deleted_childless_orgs);
}
