//! Webhooks: endpoints round-trip; a change writes its events to the outbox with it and only
//! with it, on every write path (PostgreSQL's transactions, batched statement and one-statement
//! wallet entry; SQLite's group commit), each with a message for every endpoint that takes it;
//! claiming leases; an attempt moves its message on; and messages list, requeue and
//! purge as the contract says.
use chrono::{DateTime, Duration, Utc};
use orgbase_domain::audit::{Actor, ActorType, AuditEntry, AuditSurface, Target};
use orgbase_domain::wallet::{EntryKind, NewEntry, Service};
use orgbase_domain::webhook::{
    new_secret, AttemptOutcome, EndpointOwner, EventType, MessageStatus, WebhookAttempt,
    WebhookEndpoint, WebhookMessage,
};
use orgbase_domain::{now, OrgStatus, OrgType, Organization, OrganizationId, Origin};
use orgbase_store::testing::TestDb;
use orgbase_store::{audit::record, Appended, DynStore, StoreError};
use serde_json::Value;
use uuid::Uuid;

use crate::organizations::new_org;

crate::conformance!(
    endpoints_round_trip_every_field,
    a_change_writes_its_events_with_it_and_a_failed_one_none,
    every_write_path_writes_its_events,
    no_event_is_written_while_no_endpoint_is_enabled,
    batched_settings_updates_write_the_events_of_the_rows_updated,
    an_event_is_written_with_a_message_for_each_endpoint_that_takes_it,
    a_claim_leases_its_messages,
    finishing_an_attempt_records_it_and_moves_the_message,
    a_round_of_attempts_is_recorded_at_once,
    messages_list_newest_first_with_a_cursor,
    messages_requeue_by_id_and_by_failed_since,
    failing_since_is_the_start_of_the_current_run_of_failures,
    the_purge_removes_old_events_all_finished,
);

fn entry(org: Option<OrganizationId>, action: &str, target: Target) -> AuditEntry {
    AuditEntry::new(
        org,
        now(),
        Actor::new(ActorType::PlatformKey, "key-1", None),
        action,
        target,
        AuditSurface::Native,
        &Origin::default(),
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

fn updated(before: &Organization, after: &Organization) -> AuditEntry {
    entry(
        Some(after.id),
        "organization.updated",
        Target::new("organization", after.id),
    )
    .diff(Some(before), Some(after))
}

/// `o` renamed, one version on.
fn renamed(o: &Organization, name: &str) -> Organization {
    let mut n = o.clone();
    n.name = name.into();
    n.version += 1;
    n.updated_at = now();
    n
}

/// An enabled endpoint for `types` (every type if empty), made an hour ago.
fn endpoint(owner: EndpointOwner, types: &[EventType]) -> WebhookEndpoint {
    let t = now() - Duration::hours(1);
    WebhookEndpoint {
        id: Uuid::now_v7(),
        owner,
        url: "https://hooks.example.com/orgbase".into(),
        description: String::new(),
        event_types: types.to_vec(),
        disabled: false,
        disabled_reason: None,
        secret: new_secret(),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: t,
        updated_at: t,
    }
}

/// A platform endpoint for every event, stored.
async fn platform(s: &DynStore) -> WebhookEndpoint {
    let e = endpoint(EndpointOwner::Platform, &[]);
    s.create_webhook_endpoint(&e).await.unwrap();
    e
}

async fn messages(s: &DynStore, e: &WebhookEndpoint) -> Vec<WebhookMessage> {
    s.list_webhook_messages(e.id, None, 100).await.unwrap()
}

/// The event types of an endpoint's messages, oldest first.
async fn types_of(s: &DynStore, e: &WebhookEndpoint) -> Vec<EventType> {
    let mut v: Vec<_> = messages(s, e).await.iter().map(|m| m.event_type).collect();
    v.reverse();
    v
}

/// `n` platform-wide events (an API key made, each), written the way a change elsewhere is.
async fn platform_events(s: &DynStore, n: usize) {
    let entries: Vec<_> = (0..n)
        .map(|i| entry(None, "api_key.created", Target::new("api_key", i)))
        .collect();
    s.append_audit_entries(&entries).await.unwrap();
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

fn attempt(m: &WebhookMessage, at: DateTime<Utc>, status: Option<u16>) -> WebhookAttempt {
    WebhookAttempt {
        id: format!("atm_{}", Uuid::new_v4().simple()),
        message_id: m.id.clone(),
        endpoint_id: m.endpoint_id,
        attempted_at: at,
        status_code: status,
        response: status.map(|s| format!("answer {s}")),
        duration_ms: 42,
        error: status.is_none().then(|| "connection refused".into()),
    }
}

fn outcome(status: MessageStatus, attempts: u32, next: Option<DateTime<Utc>>) -> AttemptOutcome {
    AttemptOutcome {
        status,
        attempts,
        next_attempt_at: next,
        disable_endpoint: None,
    }
}

async fn endpoints_round_trip_every_field(db: TestDb) {
    let s = &db.store;
    let o = new_org("Hooked", "hooked");
    s.insert_organization(&o).await.unwrap();
    let t = now();
    let mut p = endpoint(
        EndpointOwner::Platform,
        &[EventType::MemberAdded, EventType::OrganizationCreated],
    );
    p.description = "ops".into();
    p.disabled = true;
    p.disabled_reason = Some("gone (410)".into());
    p.previous_secret = Some(new_secret());
    p.previous_secret_expires_at = Some(t + Duration::hours(24));
    s.create_webhook_endpoint(&p).await.unwrap();
    assert_eq!(s.get_webhook_endpoint(p.id).await.unwrap(), Some(p.clone()));
    let first = endpoint(EndpointOwner::Organization(o.id), &[]);
    s.create_webhook_endpoint(&first).await.unwrap();
    let mut second = endpoint(
        EndpointOwner::Organization(o.id),
        &[EventType::WalletCharged],
    );
    second.created_at = first.created_at + Duration::seconds(1);
    s.create_webhook_endpoint(&second).await.unwrap();
    assert_eq!(
        s.list_webhook_endpoints(EndpointOwner::Platform)
            .await
            .unwrap(),
        vec![p.clone()]
    );
    assert_eq!(
        s.list_webhook_endpoints(EndpointOwner::Organization(o.id))
            .await
            .unwrap(),
        vec![first.clone(), second.clone()],
        "oldest first"
    );
    // Every field but the id, the owner and the creation time is stored.
    let mut next = p.clone();
    next.url = "https://elsewhere.example.com/".into();
    next.description = "moved".into();
    next.event_types = vec![];
    next.disabled = false;
    next.disabled_reason = None;
    next.secret = new_secret();
    next.previous_secret = None;
    next.previous_secret_expires_at = None;
    next.updated_at = t + Duration::seconds(5);
    let mut ignored = next.clone();
    ignored.owner = EndpointOwner::Organization(o.id);
    ignored.created_at = t - Duration::days(3);
    assert!(s.update_webhook_endpoint(&ignored).await.unwrap());
    assert_eq!(s.get_webhook_endpoint(p.id).await.unwrap(), Some(next));
    let ghost = endpoint(EndpointOwner::Platform, &[]);
    assert!(!s.update_webhook_endpoint(&ghost).await.unwrap());
    assert_eq!(s.get_webhook_endpoint(ghost.id).await.unwrap(), None);
    assert!(s.delete_webhook_endpoint(first.id).await.unwrap());
    assert!(!s.delete_webhook_endpoint(first.id).await.unwrap());
    assert_eq!(s.get_webhook_endpoint(first.id).await.unwrap(), None);
    // An organization's endpoint needs its organization.
    let orphan = endpoint(EndpointOwner::Organization(OrganizationId::new()), &[]);
    assert!(matches!(
        s.create_webhook_endpoint(&orphan).await,
        Err(StoreError::Conflict {
            constraint: "foreign_key"
        })
    ));
}

async fn a_change_writes_its_events_with_it_and_a_failed_one_none(db: TestDb) {
    let s = &db.store;
    let hook = platform(s).await;
    let o = new_org("Announced", "announced");
    record(vec![created(&o)], s.insert_organization(&o))
        .await
        .unwrap();
    assert_eq!(types_of(s, &hook).await, [EventType::OrganizationCreated]);
    let due = s
        .claim_webhook_messages(now(), now() + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].endpoint, hook);
    let body: Value = serde_json::from_str(&due[0].payload).unwrap();
    assert_eq!(body["id"], due[0].message.event_id.as_str());
    assert_eq!(body["type"], "organization.created");
    assert_eq!(body["organizationId"], o.id.to_string());
    assert_eq!(body["data"]["name"], "Announced");
    assert_eq!(body["previous"], Value::Null);
    assert!(due[0].message.event_id.starts_with("evt_"));
    assert!(due[0].message.id.starts_with("msg_") && due[0].message.id.len() == 36);

    // Refused changes: a slug taken, a stale version, a charge not covered. No event.
    let dup = new_org("Second", "announced");
    let refused = record(vec![created(&dup)], s.insert_organization(&dup)).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    let next = renamed(&o, "Renamed");
    let mut stale = o.clone();
    stale.version += 7;
    let refused = record(
        vec![updated(&o, &next)],
        s.update_organization(&next, &stale),
    )
    .await;
    assert!(
        matches!(refused, Err(StoreError::VersionMismatch)),
        "{refused:?}"
    );
    let charge = wallet_entry(o.id, EntryKind::Charge, 5, None);
    let e = entry(
        Some(o.id),
        "wallet.charged",
        Target::new("wallet_entry", charge.id),
    );
    assert!(record(vec![e], s.append_entry(&charge)).await.is_err());
    // A change that emits nothing.
    let e = entry(Some(o.id), "session.created", Target::new("session", "s1"));
    s.append_audit_entries(&[e]).await.unwrap();
    assert_eq!(messages(s, &hook).await.len(), 1);
}

async fn every_write_path_writes_its_events(db: TestDb) {
    let s = &db.store;
    let hook = platform(s).await;
    let o = new_org("Paths", "paths");
    record(vec![created(&o)], s.insert_organization(&o))
        .await
        .unwrap();
    // A settings change (PostgreSQL batches these), then one that decides access (its own
    // transaction): a status change is two events.
    let r = renamed(&o, "Paths 2");
    record(vec![updated(&o, &r)], s.update_organization(&r, &o))
        .await
        .unwrap();
    let mut suspended = r.clone();
    suspended.status = OrgStatus::Suspended;
    suspended.status_reason = Some("fraud".into());
    suspended.version += 1;
    record(
        vec![updated(&r, &suspended)],
        s.update_organization(&suspended, &r),
    )
    .await
    .unwrap();
    // The wallet's one statement; its replay emits nothing.
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
    // Entries of a change made elsewhere.
    platform_events(s, 1).await;

    assert_eq!(
        types_of(s, &hook).await,
        [
            EventType::OrganizationCreated,
            EventType::OrganizationUpdated,
            EventType::OrganizationUpdated,
            EventType::OrganizationStatusChanged,
            EventType::WalletCredited,
            EventType::ApiKeyCreated,
        ]
    );
    let due = s
        .claim_webhook_messages(now(), now() + Duration::minutes(1), 10)
        .await
        .unwrap();
    let bodies: Vec<Value> = due
        .iter()
        .map(|d| serde_json::from_str(&d.payload).unwrap())
        .collect();
    let renaming = bodies
        .iter()
        .find(|b| b["data"]["name"] == "Paths 2")
        .expect("the rename's event");
    assert_eq!(renaming["previous"]["name"], "Paths");
    let status = bodies
        .iter()
        .find(|b| b["type"] == "organization.status_changed")
        .expect("the status change's event");
    assert_eq!(status["data"]["status"], "suspended");
}

/// Changes on every write path, with no endpoint enabled, write no event (no message would be
/// made of it); once one is enabled, they do, even of a type it does not take. On PostgreSQL a
/// node makes a change's events only where its last write found an endpoint: each path is also
/// tried just after an endpoint was enabled behind that belief's back, and writes its events.
async fn no_event_is_written_while_no_endpoint_is_enabled(db: TestDb) {
    let s = &db.store;
    // Events of every age, as the purge counts them: each event written is purged here.
    let written = || async {
        s.purge_webhook_events(now() + Duration::days(1), 100)
            .await
            .unwrap()
    };
    let o = new_org("Unheard", "unheard");
    record(vec![created(&o)], s.insert_organization(&o))
        .await
        .unwrap();
    let mut o = o;
    // A settings change (PostgreSQL batches it), the organization's name counting up.
    async fn rename(s: &DynStore, o: &mut Organization) {
        let r = renamed(o, &format!("Unheard {}", o.version));
        record(vec![updated(o, &r)], s.update_organization(&r, o))
            .await
            .unwrap();
        *o = r;
    }
    let credit = |org: OrganizationId| {
        let credit = wallet_entry(org, EntryKind::Credit, 100, None);
        let e = entry(
            Some(org),
            "wallet.credited",
            Target::new("wallet_entry", credit.id),
        );
        async move { record(vec![e], s.append_entry(&credit)).await.map(|_| ()) }
    };
    // Every path, no endpoint: a settings change, a wallet entry, an organization made (one
    // statement on PostgreSQL, with its entries), entries of a change made elsewhere.
    rename(s, &mut o).await;
    credit(o.id).await.unwrap();
    let made = new_org("Unheard too", "unheard-too");
    record(vec![created(&made)], s.insert_organization(&made))
        .await
        .unwrap();
    platform_events(s, 1).await;
    assert_eq!(written().await, 0);

    // An endpoint switched off counts as none.
    let mut other = endpoint(EndpointOwner::Platform, &[EventType::MemberAdded]);
    other.disabled = true;
    s.create_webhook_endpoint(&other).await.unwrap();
    rename(s, &mut o).await;
    assert_eq!(written().await, 0);

    // Switched on, for another type: each path writes its events (the trigger decides who takes
    // them), each tried first after a change that found no endpoint.
    let switch = |disabled: bool| {
        let mut e = other.clone();
        e.disabled = disabled;
        async move { assert!(s.update_webhook_endpoint(&e).await.unwrap()) }
    };
    for path in ["batch", "wallet", "transaction", "elsewhere"] {
        switch(true).await;
        rename(s, &mut o).await;
        assert_eq!(written().await, 0, "{path}");
        switch(false).await;
        match path {
            "batch" => rename(s, &mut o).await,
            "wallet" => credit(o.id).await.unwrap(),
            "transaction" => {
                let made = new_org(&format!("Heard {path}"), &format!("heard-{path}"));
                record(vec![created(&made)], s.insert_organization(&made))
                    .await
                    .unwrap();
            }
            _ => platform_events(s, 1).await,
        }
        assert_eq!(written().await, 1, "{path}");
    }
    assert!(messages(s, &other).await.is_empty());
}

async fn batched_settings_updates_write_the_events_of_the_rows_updated(db: TestDb) {
    // Settings updates arriving together share one statement on PostgreSQL: the events of the
    // rows it updated go with it, those of the writes it refused (a stale version) do not; and
    // a batch that fails as a whole (a slug taken) and is written again one by one writes each
    // event once.
    let s = db.store.clone();
    let hook = platform(&s).await;
    s.insert_organization(&new_org("Taken", "taken"))
        .await
        .unwrap();
    let mut orgs = Vec::new();
    for i in 0..24 {
        let o = new_org(&format!("Org {i}"), &format!("org-{i}"));
        s.insert_organization(&o).await.unwrap();
        orgs.push(o);
    }
    // Renames at once, some of them refused; answers the ids of those made.
    let renames = |orgs: Vec<Organization>, refuse: fn(&mut Organization, &mut Organization)| {
        let s = s.clone();
        async move {
            let tasks: Vec<_> = orgs
                .into_iter()
                .enumerate()
                .map(|(i, o)| {
                    let s = s.clone();
                    let mut next = renamed(&o, &format!("{} renamed", o.name));
                    let mut previous = o;
                    let wins = i % 4 != 1;
                    if !wins {
                        refuse(&mut next, &mut previous);
                    }
                    tokio::spawn(async move {
                        let e = updated(&previous, &next);
                        let got = record(vec![e], s.update_organization(&next, &previous)).await;
                        assert_eq!(got.is_ok(), wins, "{}: {got:?}", next.name);
                        wins.then(|| next.id.to_string())
                    })
                })
                .collect();
            let mut made = Vec::new();
            for t in tasks {
                made.extend(t.await.unwrap());
            }
            made
        }
    };
    let stale: fn(&mut Organization, &mut Organization) = |_, previous| previous.version += 5;
    let taken: fn(&mut Organization, &mut Organization) = |next, _| next.slug = "taken".into();
    let mut made = renames(orgs[..12].to_vec(), stale).await;
    made.extend(renames(orgs[12..].to_vec(), taken).await);
    assert_eq!(made.len(), 18);
    let due = s
        .claim_webhook_messages(now(), now() + Duration::minutes(1), 100)
        .await
        .unwrap();
    let mut announced: Vec<String> = due
        .iter()
        .map(|d| {
            let body: Value = serde_json::from_str(&d.payload).unwrap();
            assert_eq!(body["type"], "organization.updated");
            assert!(body["data"]["name"].as_str().unwrap().ends_with(" renamed"));
            body["organizationId"].as_str().unwrap().to_owned()
        })
        .collect();
    announced.sort();
    made.sort();
    assert_eq!(announced, made);
    assert_eq!(messages(&s, &hook).await.len(), 18);
}

async fn an_event_is_written_with_a_message_for_each_endpoint_that_takes_it(db: TestDb) {
    let s = &db.store;
    let mut partner = new_org("Partner", "partner");
    partner.org_type = OrgType::Partner;
    let mut child = new_org("Child", "child");
    child.parent_id = Some(partner.id);
    let other = new_org("Other", "other");
    for o in [&partner, &child, &other] {
        s.insert_organization(o).await.unwrap();
    }
    let all = platform(s).await;
    let members_only = endpoint(EndpointOwner::Platform, &[EventType::MemberAdded]);
    let updates_only = endpoint(
        EndpointOwner::Platform,
        &[EventType::MemberAdded, EventType::OrganizationUpdated],
    );
    let mut disabled = endpoint(EndpointOwner::Platform, &[]);
    disabled.disabled = true;
    let of_partner = endpoint(EndpointOwner::Organization(partner.id), &[]);
    let of_child = endpoint(EndpointOwner::Organization(child.id), &[]);
    let of_other = endpoint(EndpointOwner::Organization(other.id), &[]);
    for e in [
        &members_only,
        &updates_only,
        &disabled,
        &of_partner,
        &of_child,
        &of_other,
    ] {
        s.create_webhook_endpoint(e).await.unwrap();
    }
    let next = renamed(&child, "Child 2");
    record(
        vec![updated(&child, &next)],
        s.update_organization(&next, &child),
    )
    .await
    .unwrap();
    // Made after the event, or enabled only after it: not for it.
    let late = endpoint(EndpointOwner::Platform, &[]);
    s.create_webhook_endpoint(&late).await.unwrap();
    let mut reenabled = disabled.clone();
    reenabled.disabled = false;
    assert!(s.update_webhook_endpoint(&reenabled).await.unwrap());

    let got = |e: WebhookEndpoint| async move { types_of(s, &e).await };
    let one = vec![EventType::OrganizationUpdated];
    assert_eq!(got(all.clone()).await, one);
    assert_eq!(got(updates_only.clone()).await, one);
    assert_eq!(got(of_partner.clone()).await, one);
    assert_eq!(got(of_child.clone()).await, one);
    for e in [&members_only, &disabled, &of_other, &late] {
        assert!(got(e.clone()).await.is_empty(), "{e:?}");
    }
    let m = &messages(s, &of_child).await[0];
    assert_eq!(m.status, MessageStatus::Pending);
    assert_eq!(m.attempts, 0);
    assert!(m.next_attempt_at.is_some_and(|t| t <= now()), "due at once");
    assert_eq!(messages(s, &all).await.len(), 1);

    // A soft-deleted organization's events still reach its partner.
    let mut deleted = next.clone();
    deleted.deleted_at = Some(now());
    deleted.version += 1;
    let e = entry(
        Some(child.id),
        "organization.deleted",
        Target::new("organization", child.id),
    );
    record(vec![e], s.update_organization(&deleted, &next))
        .await
        .unwrap();
    // One no longer stored reaches the platform only.
    let gone = OrganizationId::new();
    let e = entry(Some(gone), "member.added", Target::new("member", "m1"));
    s.append_audit_entries(&[e]).await.unwrap();
    assert_eq!(
        got(of_partner.clone()).await,
        [
            EventType::OrganizationUpdated,
            EventType::OrganizationDeleted
        ]
    );
    assert_eq!(got(members_only.clone()).await, [EventType::MemberAdded]);
    // Enabled after the first event, it receives the later ones only.
    assert_eq!(
        got(disabled.clone()).await,
        [EventType::OrganizationDeleted, EventType::MemberAdded]
    );
    assert_eq!(got(updates_only.clone()).await.len(), 2);
    assert_eq!(got(of_partner).await.len(), 2);
    assert_eq!(got(of_child).await.len(), 2);
    assert_eq!(got(all).await.len(), 3);
}

async fn a_claim_leases_its_messages(db: TestDb) {
    let s = &db.store;
    let hook = platform(s).await;
    platform_events(s, 3).await;
    let t = now();
    let lease = t + Duration::seconds(30);
    let first = s.claim_webhook_messages(t, lease, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    // Held: another worker at the same moment gets only the one left.
    let second = s.claim_webhook_messages(t, lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(s
        .claim_webhook_messages(t, lease, 10)
        .await
        .unwrap()
        .is_empty());
    let mut ids: Vec<_> = first.iter().chain(&second).map(|d| &d.message.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    // A worker that died: once its lease has passed, the messages are taken again.
    let after = lease + Duration::seconds(1);
    let again = s
        .claim_webhook_messages(after, after + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    // Not yet due: left alone until it is.
    let m = &again[0].message;
    let later = after + Duration::minutes(5);
    s.finish_webhook_attempt(
        &attempt(m, after, Some(500)),
        &outcome(MessageStatus::Pending, 1, Some(later)),
    )
    .await
    .unwrap();
    let before_due = later - Duration::seconds(1);
    let soon = s
        .claim_webhook_messages(before_due, later + Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(soon.len(), 2, "the other two, their lease passed");
    assert!(soon.iter().all(|d| d.message.id != m.id));
    let due = s
        .claim_webhook_messages(later, later + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].message.id, m.id);
    assert_eq!(due[0].message.attempts, 1);
    assert_eq!(due[0].endpoint.id, hook.id);
}

async fn finishing_an_attempt_records_it_and_moves_the_message(db: TestDb) {
    let s = &db.store;
    let hook = platform(s).await;
    platform_events(s, 2).await;
    let ms = messages(s, &hook).await;
    let (a, b) = (&ms[0], &ms[1]);
    let t = now();
    // A failure: pending again, with its next time.
    let failed = attempt(a, t, None);
    let next = t + Duration::seconds(5);
    s.finish_webhook_attempt(&failed, &outcome(MessageStatus::Pending, 1, Some(next)))
        .await
        .unwrap();
    let got = s.get_webhook_message(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.status,
            got.attempts,
            got.next_attempt_at,
            got.updated_at
        ),
        (MessageStatus::Pending, 1, Some(next), t)
    );
    assert_eq!(got.created_at, a.created_at);
    // Delivered.
    let ok = attempt(a, t + Duration::seconds(6), Some(204));
    s.finish_webhook_attempt(&ok, &outcome(MessageStatus::Delivered, 2, None))
        .await
        .unwrap();
    let got = s.get_webhook_message(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.attempts, got.next_attempt_at),
        (MessageStatus::Delivered, 2, None)
    );
    assert_eq!(
        s.list_webhook_attempts(&a.id).await.unwrap(),
        vec![failed.clone(), ok.clone()],
        "oldest first, every field"
    );
    // Attempts that outlived their lease (another worker took the message, and finished it):
    // recorded as made, alone and in a round, never moving the message back.
    let late = attempt(a, t + Duration::seconds(8), Some(500));
    s.finish_webhook_attempt(&late, &outcome(MessageStatus::Pending, 1, Some(next)))
        .await
        .unwrap();
    let later = attempt(a, t + Duration::seconds(9), None);
    s.finish_webhook_attempts(&[(later.clone(), outcome(MessageStatus::Failed, 2, None))])
        .await
        .unwrap();
    let got = s.get_webhook_message(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.attempts, got.next_attempt_at),
        (MessageStatus::Delivered, 2, None)
    );
    assert_eq!(
        s.list_webhook_attempts(&a.id).await.unwrap(),
        vec![failed, ok, late, later]
    );
    // Failed for good, and the endpoint disabled with it.
    let gone = attempt(b, t + Duration::seconds(7), Some(410));
    let mut last = outcome(MessageStatus::Failed, 1, None);
    last.disable_endpoint = Some("the endpoint answered 410 Gone".into());
    s.finish_webhook_attempt(&gone, &last).await.unwrap();
    let got = s.get_webhook_message(&b.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts), (MessageStatus::Failed, 1));
    let e = s.get_webhook_endpoint(hook.id).await.unwrap().unwrap();
    assert!(e.disabled);
    assert_eq!(
        e.disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone")
    );
    assert_eq!(e.updated_at, gone.attempted_at);
    assert_eq!(s.list_webhook_attempts(&b.id).await.unwrap(), vec![gone]);
    // A message gone meanwhile (its endpoint deleted during the attempt): nothing to record.
    assert!(s.delete_webhook_endpoint(hook.id).await.unwrap());
    s.finish_webhook_attempt(
        &attempt(b, t + Duration::seconds(8), Some(200)),
        &outcome(MessageStatus::Delivered, 2, None),
    )
    .await
    .unwrap();
    assert_eq!(s.get_webhook_message(&b.id).await.unwrap(), None);
    assert!(s.list_webhook_attempts(&b.id).await.unwrap().is_empty());
}

async fn messages_list_newest_first_with_a_cursor(db: TestDb) {
    let s = &db.store;
    let hook = platform(s).await;
    let other = platform(s).await;
    // Two writes: the second's messages are newer; within one, later events come first.
    platform_events(s, 2).await;
    platform_events(s, 3).await;
    let all = messages(s, &hook).await;
    assert_eq!(all.len(), 5);
    for pair in all.windows(2) {
        assert!(
            (pair[0].created_at, &pair[0].event_id) > (pair[1].created_at, &pair[1].event_id),
            "{pair:?}"
        );
    }
    assert!(all[0].created_at > all[4].created_at);
    assert!(all.iter().all(|m| m.endpoint_id == hook.id));
    let page = s.list_webhook_messages(hook.id, None, 2).await.unwrap();
    assert_eq!(page, all[..2]);
    let page = s
        .list_webhook_messages(hook.id, Some(&page[1].id), 2)
        .await
        .unwrap();
    assert_eq!(page, all[2..4]);
    let page = s
        .list_webhook_messages(hook.id, Some(&page[1].id), 2)
        .await
        .unwrap();
    assert_eq!(page, all[4..]);
    assert!(s
        .list_webhook_messages(hook.id, Some(&all[4].id), 2)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(messages(s, &other).await.len(), 5);
    assert_eq!(
        s.get_webhook_message(&all[0].id).await.unwrap(),
        Some(all[0].clone())
    );
    assert_eq!(s.get_webhook_message("msg_none").await.unwrap(), None);
}

async fn messages_requeue_by_id_and_by_failed_since(db: TestDb) {
    let s = &db.store;
    let hook = platform(s).await;
    let other = platform(s).await;
    platform_events(s, 3).await;
    let ms = messages(s, &hook).await;
    let t = now();
    // Two failed, an hour apart; one delivered.
    let finish = |m: &WebhookMessage, at: DateTime<Utc>, status: MessageStatus| {
        let (a, o) = (attempt(m, at, Some(500)), outcome(status, 8, None));
        async move { s.finish_webhook_attempt(&a, &o).await.unwrap() }
    };
    finish(&ms[0], t - Duration::hours(2), MessageStatus::Failed).await;
    finish(&ms[1], t - Duration::hours(1), MessageStatus::Failed).await;
    finish(&ms[2], t - Duration::hours(1), MessageStatus::Delivered).await;
    let theirs = messages(s, &other).await;
    finish(&theirs[0], t - Duration::hours(1), MessageStatus::Failed).await;

    // Failed since 90 minutes ago: the one failed an hour ago, of this endpoint only.
    let n = s
        .requeue_webhook_messages(hook.id, None, Some(t - Duration::minutes(90)), t)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let got = s.get_webhook_message(&ms[1].id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.status,
            got.attempts,
            got.next_attempt_at,
            got.updated_at
        ),
        (MessageStatus::Pending, 8, Some(t), t)
    );
    let still = s.get_webhook_message(&ms[0].id).await.unwrap().unwrap();
    assert_eq!(still.status, MessageStatus::Failed);
    let theirs_now = s.get_webhook_message(&theirs[0].id).await.unwrap().unwrap();
    assert_eq!(theirs_now.status, MessageStatus::Failed);
    // A replay of one message, delivered or not; due at once, and claimable again.
    let t2 = t + Duration::seconds(1);
    for m in [&ms[2], &ms[0]] {
        assert_eq!(
            s.requeue_webhook_messages(hook.id, Some(&m.id), None, t2)
                .await
                .unwrap(),
            1
        );
    }
    let got = s.get_webhook_message(&ms[2].id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.next_attempt_at, got.updated_at),
        (MessageStatus::Pending, Some(t2), t2)
    );
    let due = s
        .claim_webhook_messages(t2, t2 + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(due.iter().filter(|d| d.endpoint.id == hook.id).count(), 3);
    // Another endpoint's message is not this endpoint's to requeue.
    assert_eq!(
        s.requeue_webhook_messages(hook.id, Some(&theirs[0].id), None, t2)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.requeue_webhook_messages(hook.id, Some("msg_none"), None, t2)
            .await
            .unwrap(),
        0
    );
}

async fn failing_since_is_the_start_of_the_current_run_of_failures(db: TestDb) {
    let s = &db.store;
    let hook = platform(s).await;
    let other = platform(s).await;
    platform_events(s, 1).await;
    let m = messages(s, &hook).await.remove(0);
    let theirs = messages(s, &other).await.remove(0);
    assert_eq!(s.webhook_failing_since(hook.id).await.unwrap(), None);
    let t = now() - Duration::days(10);
    let at = |h: i64| t + Duration::hours(h);
    let record_attempt = |m: &WebhookMessage, h: i64, status: Option<u16>| {
        let (a, o) = (
            attempt(m, at(h), status),
            outcome(MessageStatus::Pending, 1, Some(at(h + 1))),
        );
        async move { s.finish_webhook_attempt(&a, &o).await.unwrap() }
    };
    record_attempt(&m, 1, Some(500)).await;
    assert_eq!(s.webhook_failing_since(hook.id).await.unwrap(), Some(at(1)));
    record_attempt(&m, 2, None).await;
    assert_eq!(s.webhook_failing_since(hook.id).await.unwrap(), Some(at(1)));
    record_attempt(&m, 3, Some(200)).await;
    assert_eq!(s.webhook_failing_since(hook.id).await.unwrap(), None);
    record_attempt(&m, 4, Some(302)).await;
    record_attempt(&m, 5, Some(503)).await;
    assert_eq!(s.webhook_failing_since(hook.id).await.unwrap(), Some(at(4)));
    // Another endpoint's attempts are its own.
    record_attempt(&theirs, 6, Some(299)).await;
    assert_eq!(s.webhook_failing_since(hook.id).await.unwrap(), Some(at(4)));
    assert_eq!(s.webhook_failing_since(other.id).await.unwrap(), None);
}

async fn the_purge_removes_old_events_all_finished(db: TestDb) {
    let s = &db.store;
    let mut hook = endpoint(EndpointOwner::Platform, &[EventType::ApiKeyCreated]);
    hook.created_at = now() - Duration::days(100);
    s.create_webhook_endpoint(&hook).await.unwrap();
    let old = now() - Duration::days(40);
    let event = |action: &str, at: DateTime<Utc>| {
        let mut e = entry(None, action, Target::new("api_key", "k"));
        e.occurred_at = at;
        e
    };
    // Old and delivered; old and failed; old with no message; recent and delivered.
    s.append_audit_entries(&[
        event("api_key.created", old),
        event("api_key.created", old),
        event("api_key.revoked", old),
        event("api_key.created", now()),
    ])
    .await
    .unwrap();
    // Older still, and not attempted yet.
    s.append_audit_entries(&[event("api_key.created", old - Duration::days(1))])
        .await
        .unwrap();
    let ms = messages(s, &hook).await;
    assert_eq!(ms.len(), 4);
    let (recent, failed, delivered, pending) = (&ms[0], &ms[1], &ms[2], &ms[3]);
    let t = now();
    for (m, status) in [
        (delivered, MessageStatus::Delivered),
        (failed, MessageStatus::Failed),
        (recent, MessageStatus::Delivered),
    ] {
        s.finish_webhook_attempt(&attempt(m, t, Some(200)), &outcome(status, 1, None))
            .await
            .unwrap();
    }
    let before = now() - Duration::days(30);
    assert_eq!(s.purge_webhook_events(before, 1).await.unwrap(), 1);
    assert_eq!(s.purge_webhook_events(before, 100).await.unwrap(), 2);
    assert_eq!(s.purge_webhook_events(before, 100).await.unwrap(), 0);
    // The delivered message went with its event, and its attempts with it.
    assert_eq!(s.get_webhook_message(&delivered.id).await.unwrap(), None);
    assert!(s
        .list_webhook_attempts(&delivered.id)
        .await
        .unwrap()
        .is_empty());
    let left: Vec<_> = messages(s, &hook).await.into_iter().map(|m| m.id).collect();
    assert_eq!(left, [recent.id.clone(), pending.id.clone()]);
}

/// A worker's round: several attempts recorded in one call, each as alone.
async fn a_round_of_attempts_is_recorded_at_once(db: TestDb) {
    let s = &db.store;
    let hook = platform(s).await;
    platform_events(s, 3).await;
    let ms = messages(s, &hook).await;
    let t = now();
    let next = t + Duration::seconds(5);
    let round = vec![
        (
            attempt(&ms[0], t, Some(204)),
            outcome(MessageStatus::Delivered, 1, None),
        ),
        (
            attempt(&ms[1], t, Some(500)),
            outcome(MessageStatus::Pending, 1, Some(next)),
        ),
        (
            attempt(&ms[2], t, None),
            outcome(MessageStatus::Failed, 1, None),
        ),
    ];
    s.finish_webhook_attempts(&round).await.unwrap();
    for (a, o) in &round {
        let got = s.get_webhook_message(&a.message_id).await.unwrap().unwrap();
        assert_eq!(
            (got.status, got.attempts, got.next_attempt_at),
            (o.status.clone(), o.attempts, o.next_attempt_at)
        );
        assert_eq!(
            s.list_webhook_attempts(&a.message_id).await.unwrap(),
            vec![a.clone()]
        );
    }
    s.finish_webhook_attempts(&[]).await.unwrap();
}
