//! The audit log: entries commit with their change and only with it, on every write path
//! (SQLite's group commit, PostgreSQL's transactions, batched statement and one-statement
//! wallet entry); they read back as written, filter and page; and the database refuses to
//! change or remove them except through the retention purge.
use chrono::Duration;
use orgbase_domain::audit::{self, Actor, ActorType, AuditEntry, AuditQuery, AuditSurface, Target};
use orgbase_domain::wallet::{EntryKind, NewEntry, Service};
use orgbase_domain::{now, OrgStatus, Organization, OrganizationId, Origin, Permissions};
use orgbase_store::testing::TestDb;
use orgbase_store::{audit::record, Appended, NewRole, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::organizations::new_org;

crate::conformance!(
    an_entry_commits_with_its_change_and_reads_back_as_written,
    a_change_that_fails_writes_no_entry,
    every_write_path_writes_its_entries,
    entries_filter_and_page_newest_first,
    the_log_is_append_only_but_for_the_retention_purge,
);

fn entry(org: Option<OrganizationId>, action: &str, target: Target) -> AuditEntry {
    AuditEntry::new(
        org,
        now(),
        Actor::new(ActorType::PlatformKey, "key-1", Some("ops".into())),
        action,
        target,
        AuditSurface::Native,
        &Origin {
            request_id: Some("req-1".into()),
            client_address: Some("203.0.113.7".into()),
            user_agent: Some("curl/8".into()),
        },
    )
}

fn created(o: &Organization) -> AuditEntry {
    entry(
        Some(o.id),
        "organization.created",
        Target::new("organization", o.id),
    )
    .diff(None, Some(o))
}

async fn all(db: &TestDb) -> Vec<AuditEntry> {
    db.store
        .list_audit_entries(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn an_entry_commits_with_its_change_and_reads_back_as_written(db: TestDb) {
    let o = new_org("Audited", "audited");
    let e = created(&o);
    record(vec![e.clone()], db.store.insert_organization(&o))
        .await
        .unwrap();
    assert_eq!(all(&db).await, vec![e.clone()]);
    assert_eq!(e.changes["name"].after, json!("Audited"));
    assert_eq!(e.changes["name"].before, json!(null));
}

async fn a_change_that_fails_writes_no_entry(db: TestDb) {
    let o = new_org("First", "taken");
    db.store.insert_organization(&o).await.unwrap();
    let dup = new_org("Second", "taken");
    let refused = record(vec![created(&dup)], db.store.insert_organization(&dup)).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    // A stale version: refused, nothing recorded.
    let mut next = o.clone();
    next.name = "Renamed".into();
    next.version += 1;
    let mut stale = o.clone();
    stale.version += 7;
    let e = entry(
        Some(o.id),
        "organization.updated",
        Target::new("organization", o.id),
    );
    let refused = record(vec![e], db.store.update_organization(&next, &stale)).await;
    assert!(
        matches!(refused, Err(StoreError::VersionMismatch)),
        "{refused:?}"
    );
    // A charge the balance does not cover.
    let charge = wallet_entry(o.id, EntryKind::Charge, 5, None);
    let e = entry(
        Some(o.id),
        "wallet.charged",
        Target::new("wallet_entry", charge.id),
    );
    let refused = record(vec![e], db.store.append_entry(&charge)).await;
    assert!(refused.is_err());
    assert!(all(&db).await.is_empty());
}

fn wallet_entry(org: OrganizationId, kind: EntryKind, amount: i64, key: Option<&str>) -> NewEntry {
    NewEntry {
        id: Uuid::now_v7(),
        organization_id: org,
        kind,
        service: (kind == EntryKind::Charge).then_some(Service::Voice),
        amount,
        sms_points: 0,
        reason: None,
        actor: "key:test".into(),
        idempotency_key: key.map(str::to_owned),
        currency: "USD".into(),
        created_at: now(),
    }
}

async fn every_write_path_writes_its_entries(db: TestDb) {
    let s = &db.store;
    let o = new_org("Paths", "paths");
    record(vec![created(&o)], s.insert_organization(&o))
        .await
        .unwrap();
    // A settings change (PostgreSQL batches these), then one that decides access (its own
    // transaction).
    let mut renamed = o.clone();
    renamed.name = "Paths 2".into();
    renamed.version += 1;
    let e = entry(
        Some(o.id),
        "organization.updated",
        Target::new("organization", o.id),
    )
    .diff(Some(&o), Some(&renamed));
    record(vec![e], s.update_organization(&renamed, &o))
        .await
        .unwrap();
    let mut suspended = renamed.clone();
    suspended.status = OrgStatus::Suspended;
    suspended.status_reason = Some("fraud".into());
    suspended.version += 1;
    let e = entry(
        Some(o.id),
        "organization.updated",
        Target::new("organization", o.id),
    )
    .diff(Some(&renamed), Some(&suspended));
    record(vec![e], s.update_organization(&suspended, &renamed))
        .await
        .unwrap();
    // The wallet's one statement; its replay records nothing.
    let credit = wallet_entry(o.id, EntryKind::Credit, 100, Some("k1"));
    let e = entry(
        Some(o.id),
        "wallet.credited",
        Target::new("wallet_entry", credit.id),
    );
    let Appended::New(_) = record(vec![e], s.append_entry(&credit)).await.unwrap() else {
        panic!("a new entry")
    };
    let again = wallet_entry(o.id, EntryKind::Credit, 100, Some("k1"));
    let e = entry(
        Some(o.id),
        "wallet.credited",
        Target::new("wallet_entry", again.id),
    );
    let Appended::Existing(_) = record(vec![e], s.append_entry(&again)).await.unwrap() else {
        panic!("the same entry")
    };
    // A role: its id is the database's, given to the entry that was staged without one.
    let role = NewRole {
        organization_id: o.id,
        name: "support".into(),
        description: None,
        permissions: Permissions::default(),
        at: now(),
    };
    let e = entry(Some(o.id), "role.created", Target::new("role", ""));
    let made = record(vec![e], s.insert_role(&role)).await.unwrap();
    // A platform-wide change.
    let t = now();
    let plan = orgbase_domain::Plan {
        id: "gold".into(),
        name: "Gold".into(),
        price: 1,
        currency: "EUR".into(),
        interval: orgbase_domain::PlanInterval::Month,
        entitlements: vec![],
        rate_limit: 10,
        public: true,
        provider: None,
        provider_price_id: None,
        created_at: t,
        updated_at: t,
    };
    let e = entry(None, "plan.created", Target::new("plan", "gold")).diff(None, Some(&plan));
    record(vec![e], s.insert_plan(&plan)).await.unwrap();

    let log = all(&db).await;
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "plan.created",
            "role.created",
            "wallet.credited",
            "organization.updated",
            "organization.updated",
            "organization.created"
        ]
    );
    assert_eq!(log[1].target.id, made.id.to_string());
    assert_eq!(log[0].organization_id, None);
    assert_eq!(log[3].changes["status"].after, json!("suspended"));
    assert_eq!(log[4].changes["name"].before, json!("Paths"));
    assert_eq!(log[4].changes.len(), 1, "{:?}", log[4].changes);
    // What an entry shows of a plan.
    assert_eq!(
        audit::changes(None, Some(&plan))["price"].after,
        log[0].changes["price"].after
    );
}

async fn entries_filter_and_page_newest_first(db: TestDb) {
    let s = &db.store;
    let partner = {
        let mut p = new_org("Partner", "partner");
        p.org_type = orgbase_domain::OrgType::Partner;
        p
    };
    let mut child = new_org("Child", "child");
    child.parent_id = Some(partner.id);
    let other = new_org("Other", "other");
    for o in [&partner, &child, &other] {
        record(vec![created(o)], s.insert_organization(o))
            .await
            .unwrap();
    }
    let mut by_user = entry(
        Some(other.id),
        "organization.updated",
        Target::new("organization", other.id),
    );
    by_user.actor = Actor::new(ActorType::User, "u-1", None);
    let mut next = other.clone();
    next.name = "Other 2".into();
    next.version += 1;
    record(vec![by_user.clone()], s.update_organization(&next, &other))
        .await
        .unwrap();
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 10,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let ids = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.target.id).collect::<Vec<_>>();
    let list = |q: AuditQuery| async move { s.list_audit_entries(&q).await.unwrap() };
    assert_eq!(list(q(|_| {})).await.len(), 4);
    let mut one = q(|_| {});
    one.organization_id = Some(other.id);
    assert_eq!(list(one).await.len(), 2);
    let mut reach = q(|_| {});
    reach.partner_id = Some(partner.id);
    assert_eq!(
        ids(list(reach).await),
        [child.id.to_string(), partner.id.to_string()]
    );
    let mut action = q(|_| {});
    action.action = Some("organization.updated".into());
    assert_eq!(list(action).await, vec![by_user.clone()]);
    let mut actor = q(|_| {});
    actor.actor_id = Some("u-1".into());
    assert_eq!(list(actor).await.len(), 1);
    let mut target = q(|_| {});
    target.target_id = Some(child.id.to_string());
    assert_eq!(list(target).await.len(), 1);
    let mut later = q(|_| {});
    later.since = Some(now() + Duration::minutes(1));
    assert!(list(later).await.is_empty());
    let mut earlier = q(|_| {});
    earlier.until = Some(now() + Duration::minutes(1));
    assert_eq!(list(earlier).await.len(), 4);
    // Paging: two, then the two before the last one seen.
    let mut page = q(|_| {});
    page.limit = 2;
    let first = list(page.clone()).await;
    assert_eq!(first[0], by_user);
    page.before = Some(first[1].id);
    let second = list(page).await;
    assert_eq!(second.len(), 2);
    assert!(second[0].id < first[1].id);
}

async fn the_log_is_append_only_but_for_the_retention_purge(db: TestDb) {
    let s = &db.store;
    let old = new_org("Old", "old");
    let mut e = created(&old);
    e.occurred_at = now() - Duration::days(400);
    record(vec![e], s.insert_organization(&old)).await.unwrap();
    let young = new_org("Young", "young");
    record(vec![created(&young)], s.insert_organization(&young))
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
    ] {
        let refused = db.execute_raw(sql).await;
        assert!(
            refused.as_ref().is_err_and(|m| m.contains("append-only")),
            "{sql}: {refused:?}"
        );
    }
    if db.url.starts_with("postgres") {
        let refused = db.execute_raw("TRUNCATE audit_log").await;
        assert!(refused.is_err_and(|m| m.contains("append-only")));
    }
    assert_eq!(all(&db).await.len(), 2);
    let purged = s
        .purge_audit_entries(now() - Duration::days(365), 100)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let left = all(&db).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].organization_id, Some(young.id));
    // The purge closed its gate behind it.
    assert!(db.execute_raw("DELETE FROM audit_log").await.is_err());
}
