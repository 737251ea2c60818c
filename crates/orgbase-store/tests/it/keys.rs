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
