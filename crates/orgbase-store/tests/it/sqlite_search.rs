//! The SQLite store's search index lives in a file of its own, filled by an indexer thread:
//! search answers the same before and after the indexer has caught up, and the index is rebuilt
//! when its file is missing or was laid out by an older version.
use crate::organizations::new_org;
use orgbase_domain::{now, OrgName, OrganizationPatch};
use orgbase_store::sqlite::{SqliteStore, WriteMode};
use orgbase_store::{OrganizationQuery, OrganizationStore};

fn q(text: &str) -> OrganizationQuery {
    OrganizationQuery {
        limit: 50,
        q: Some(text.into()),
        ..Default::default()
    }
}

async fn names(s: &SqliteStore, text: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .list_organizations(&q(text))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    v.sort();
    v
}

async fn search_is_exact_whether_or_not_the_index_caught_up(mode: WriteMode) {
    let dir = std::env::temp_dir().join(format!("orgbase-search-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("o.db");
    let path = path.to_str().unwrap();
    let s = SqliteStore::open(path, mode).await.unwrap();
    let a = new_org("Alpha Works", "alpha-works");
    s.insert_organization(&a).await.unwrap();
    s.insert_organization(&new_org("Beta Labs", "beta-labs"))
        .await
        .unwrap();
    // Whatever the indexer has done by now, the answer is the same.
    assert_eq!(names(&s, "works").await, ["Alpha Works"]);
    s.drain_search_index().await.unwrap();
    assert_eq!(names(&s, "works").await, ["Alpha Works"]);
    assert_eq!(
        names(&s, "A-WO").await,
        ["Alpha Works"],
        "slugs are searched too"
    );
    // A rename, before and after the index has it.
    let a2 = OrganizationPatch {
        name: Some(OrgName::parse("name", "Gamma Works").unwrap()),
        ..Default::default()
    }
    .apply(&a, now())
    .unwrap();
    s.update_organization(&a2, &a).await.unwrap();
    assert_eq!(names(&s, "gamma").await, ["Gamma Works"]);
    assert!(names(&s, "alpha w").await.is_empty());
    assert!(s.drain_search_index().await.unwrap() <= 1);
    assert_eq!(names(&s, "gamma").await, ["Gamma Works"]);
    assert!(names(&s, "alpha w").await.is_empty());
    drop(s);
    // A missing index is rebuilt from the organizations.
    std::fs::remove_file(format!("{path}.search")).unwrap();
    let _ = std::fs::remove_file(format!("{path}.search-wal"));
    let _ = std::fs::remove_file(format!("{path}.search-shm"));
    let s = SqliteStore::open(path, mode).await.unwrap();
    s.drain_search_index().await.unwrap();
    assert_eq!(names(&s, "labs").await, ["Beta Labs"]);
    assert_eq!(names(&s, "gamma").await, ["Gamma Works"]);
    drop(s);
    // An index in the first layout (contentless, with tombstones), here emptied, is rebuilt too.
    {
        let old = rusqlite::Connection::open(format!("{path}.search")).unwrap();
        old.execute_batch(
            "DROP TABLE org_search;
             CREATE VIRTUAL TABLE org_search USING fts5(name, slug, content = '',
                 contentless_delete = 1, tokenize = 'trigram');
             PRAGMA user_version = 0;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(path, mode).await.unwrap();
    assert_eq!(s.drain_search_index().await.unwrap(), 2);
    assert_eq!(names(&s, "labs").await, ["Beta Labs"]);
    assert_eq!(names(&s, "gamma").await, ["Gamma Works"]);
    drop(s);
    {
        let search = rusqlite::Connection::open(format!("{path}.search")).unwrap();
        let sql: String = search
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'org_search'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("contentless"), "{sql}");
        // A second start with the current layout rebuilds nothing.
        drop(search);
        let s = SqliteStore::open(path, mode).await.unwrap();
        assert_eq!(s.drain_search_index().await.unwrap(), 0);
        assert_eq!(names(&s, "labs").await, ["Beta Labs"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The per-organization audit index is filled by the same indexer: an organization's entries
/// (and a partner's reach) read the same before it caught up, after, and with new entries
/// written since.
async fn audit_reads_are_exact_whether_or_not_the_index_caught_up(mode: WriteMode) {
    use orgbase_domain::audit::{Actor, ActorType, AuditEntry, AuditQuery, AuditSurface, Target};
    use orgbase_domain::Origin;
    use orgbase_store::audit::record;
    use orgbase_store::AuditStore;

    let dir = std::env::temp_dir().join(format!("orgbase-audit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("o.db");
    let s = SqliteStore::open(path.to_str().unwrap(), mode)
        .await
        .unwrap();
    let mut partner = new_org("Partner", "partner");
    partner.org_type = orgbase_domain::OrgType::Partner;
    let mut child = new_org("Child", "child");
    child.parent_id = Some(partner.id);
    let other = new_org("Other", "other");
    let entry = |o: &orgbase_domain::Organization| {
        AuditEntry::new(
            Some(o.id),
            now(),
            Actor::new(ActorType::PlatformKey, "k", None),
            "organization.created",
            Target::new("organization", o.id),
            AuditSurface::Native,
            &Origin::default(),
        )
    };
    for o in [&partner, &child, &other] {
        record(vec![entry(o)], s.insert_organization(o))
            .await
            .unwrap();
    }
    let list = |org: Option<&orgbase_domain::Organization>, partner_of: bool| {
        let q = AuditQuery {
            organization_id: org.filter(|_| !partner_of).map(|o| o.id),
            partner_id: org.filter(|_| partner_of).map(|o| o.id),
            limit: 10,
            ..Default::default()
        };
        let s = &s;
        async move {
            s.list_audit_entries(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.target.id)
                .collect::<Vec<_>>()
        }
    };
    let before = (
        list(Some(&other), false).await,
        list(Some(&partner), true).await,
    );
    assert_eq!(before.0, [other.id.to_string()]);
    assert_eq!(before.1, [child.id.to_string(), partner.id.to_string()]);
    s.drain_search_index().await.unwrap();
    assert_eq!(
        (
            list(Some(&other), false).await,
            list(Some(&partner), true).await
        ),
        before
    );
    // A new entry, not indexed yet, joins the indexed ones, newest first.
    let mut renamed = child.clone();
    renamed.name = "Child 2".into();
    renamed.version += 1;
    record(vec![entry(&child)], s.update_organization(&renamed, &child))
        .await
        .unwrap();
    let expected = [
        child.id.to_string(),
        child.id.to_string(),
        partner.id.to_string(),
    ];
    assert_eq!(list(Some(&partner), true).await, expected);
    s.drain_search_index().await.unwrap();
    assert_eq!(list(Some(&partner), true).await, expected);
    assert_eq!(list(None, false).await.len(), 4);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_group_commit() {
    audit_reads_are_exact_whether_or_not_the_index_caught_up(WriteMode::GroupCommit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_pool_writers() {
    audit_reads_are_exact_whether_or_not_the_index_caught_up(WriteMode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit() {
    search_is_exact_whether_or_not_the_index_caught_up(WriteMode::GroupCommit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_writers() {
    search_is_exact_whether_or_not_the_index_caught_up(WriteMode::Pool).await;
}
