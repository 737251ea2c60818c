//! People: users and sessions, members, roles, workspaces, invitations.
use chrono::Duration;
use orgbase_domain::people::{FIRST_CUSTOM_ROLE_ID, INVITE_PREFIX, SESSION_PREFIX};
use orgbase_domain::{
    now, ApiKey, ApiKeyId, Email, Invitation, KeyKind, Member, NewSecret, Organization,
    OrganizationId, Permission, Permissions, SecretHash, Session, User, UserId, Workspace,
};
use orgbase_store::testing::TestDb;
use orgbase_store::{Acceptance, DynStore, MemberQuery, NewRole, StoreError, StoreResult};
use std::fmt::Debug;
use uuid::Uuid;

use crate::organizations::new_org;

#[track_caller]
fn assert_conflict<T: Debug>(r: StoreResult<T>, name: &str) {
    match r {
        Err(StoreError::Conflict { constraint }) if constraint == name => {}
        other => panic!("expected a conflict on {name}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: Debug>(r: StoreResult<T>) {
    match r {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn email(s: &str) -> Email {
    Email::parse("email", s).unwrap()
}

fn user(address: &str, name: &str, password_hash: Option<&str>) -> User {
    let t = now();
    User {
        id: UserId::new(),
        email: email(address),
        name: name.into(),
        password_hash: password_hash.map(Into::into),
        created_at: t,
        updated_at: t,
    }
}

fn invitation(org: OrganizationId, address: &str, roles: &[i64]) -> (Invitation, String) {
    let secret = NewSecret::generate(INVITE_PREFIX);
    let t = now();
    let inv = Invitation {
        id: Uuid::now_v7(),
        organization_id: org,
        email: email(address),
        name: None,
        roles: roles.to_vec(),
        hash: secret.hash,
        invited_by: "key:test".into(),
        created_at: t,
        expires_at: t + Duration::days(7),
        accepted_at: None,
        revoked_at: None,
        sends: 1,
    };
    (inv, secret.plain)
}

fn workspace(org: OrganizationId, name: &str) -> Workspace {
    let t = now();
    Workspace {
        id: Uuid::now_v7(),
        organization_id: org,
        name: name.into(),
        created_at: t,
        updated_at: t,
    }
}

fn new_role(org: OrganizationId, name: &str) -> NewRole {
    NewRole {
        organization_id: org,
        name: name.into(),
        description: Some(format!("the {name}s")),
        permissions: Permissions::of(&[Permission::OrgRead, Permission::MembersRead]),
        at: now(),
    }
}

fn set_password(u: User) -> Acceptance {
    Acceptance::SetPassword { user: u }
}

/// An organization with an owner who has a password.
async fn org_with_owner(s: &DynStore, slug: &str) -> (Organization, Member) {
    let owner = user(
        &format!("owner@{slug}.example"),
        "Owner",
        Some("owner-hash"),
    );
    s.insert_organization_with_owner(&new_org("Org", slug), &owner)
        .await
        .unwrap()
}

/// A member added the only way there is: invited, then accepting.
async fn join(
    s: &DynStore,
    org: OrganizationId,
    address: &str,
    name: &str,
    roles: &[i64],
) -> Member {
    let (inv, _) = invitation(org, address, roles);
    s.insert_invitation(&inv, false).await.unwrap();
    s.accept_invitation(
        inv.id,
        now(),
        &set_password(user(address, name, Some("hash"))),
    )
    .await
    .unwrap()
}

fn page(org: OrganizationId, offset: u64, limit: u32) -> MemberQuery {
    MemberQuery {
        organization_id: org,
        offset,
        limit,
        role: None,
        workspace: None,
        q: None,
    }
}

fn ids(members: &[Member]) -> Vec<i64> {
    members.iter().map(|m| m.id).collect()
}

async fn users_have_unique_emails(db: TestDb) {
    let s = &db.store;
    let u = user("ann@example.com", "Ann", Some("argon-hash"));
    s.insert_user(&u).await.unwrap();
    assert_eq!(s.get_user(u.id).await.unwrap(), u);
    assert_eq!(
        s.find_user_by_email(&u.email).await.unwrap().as_ref(),
        Some(&u)
    );
    assert!(s
        .find_user_by_email(&email("bob@example.com"))
        .await
        .unwrap()
        .is_none());
    assert_conflict(
        s.insert_user(&user("ANN@example.com", "Another Ann", None))
            .await,
        "user_email",
    );
    assert_not_found(s.get_user(UserId::new()).await);
    // Without a password (an owner named by the platform).
    let v = user("val@example.com", "Val", None);
    s.insert_user(&v).await.unwrap();
    assert_eq!(s.get_user(v.id).await.unwrap().password_hash, None);
}

async fn sessions_are_found_by_hash_with_their_user(db: TestDb) {
    let s = &db.store;
    let u = user("ann@example.com", "Ann", Some("h"));
    s.insert_user(&u).await.unwrap();
    let secret = NewSecret::generate(SESSION_PREFIX);
    let t = now();
    let session = Session {
        id: Uuid::now_v7(),
        user_id: u.id,
        hash: secret.hash.clone(),
        created_at: t,
        expires_at: t + Duration::days(30),
        revoked_at: None,
    };
    s.insert_session(&session).await.unwrap();
    let (found, found_user) = s
        .find_session(&SecretHash::of(&secret.plain))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, session.id);
    assert_eq!(found.user_id, u.id);
    assert_eq!(found.hash.as_str(), session.hash.as_str());
    assert_eq!(found.created_at, t);
    assert_eq!(found.expires_at, session.expires_at);
    assert_eq!(found.revoked_at, None);
    assert_eq!(found_user, u);
    assert!(s
        .find_session(&SecretHash::of("obs_nope"))
        .await
        .unwrap()
        .is_none());

    let first = now() + Duration::seconds(1);
    s.revoke_session(session.id, first).await.unwrap();
    // Revoking again keeps the first time; an unknown session is not an error.
    s.revoke_session(session.id, first + Duration::seconds(5))
        .await
        .unwrap();
    s.revoke_session(Uuid::now_v7(), first).await.unwrap();
    let (revoked, _) = s.find_session(&session.hash).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(first));
    assert!(!revoked.is_valid_at(now()));

    // A session belongs to an existing user.
    let orphan = Session {
        id: Uuid::now_v7(),
        user_id: UserId::new(),
        hash: NewSecret::generate(SESSION_PREFIX).hash,
        ..session
    };
    assert_conflict(s.insert_session(&orphan).await, "foreign_key");
}

/// Expired and revoked sessions are removed by the purge; live ones stay.
async fn old_sessions_are_purged(db: TestDb) {
    let s = &db.store;
    let u = user("ann@example.com", "Ann", Some("h"));
    s.insert_user(&u).await.unwrap();
    let t = now();
    let make = |expires: chrono::DateTime<chrono::Utc>| Session {
        id: Uuid::now_v7(),
        user_id: u.id,
        hash: NewSecret::generate(SESSION_PREFIX).hash,
        created_at: t - Duration::hours(2),
        expires_at: expires,
        revoked_at: None,
    };
    let expired = make(t - Duration::hours(1));
    let revoked = make(t + Duration::hours(1));
    let live = make(t + Duration::hours(1));
    for x in [&expired, &revoked, &live] {
        s.insert_session(x).await.unwrap();
    }
    s.revoke_session(revoked.id, t - Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(s.purge_sessions(t).await.unwrap(), 2);
    assert!(s.find_session(&expired.hash).await.unwrap().is_none());
    assert!(s.find_session(&revoked.hash).await.unwrap().is_none());
    assert!(s.find_session(&live.hash).await.unwrap().is_some());
    assert_eq!(s.purge_sessions(t).await.unwrap(), 0);
}

async fn a_new_owner_is_created_with_the_organization(db: TestDb) {
    let s = &db.store;
    let owner = user("founder@example.com", "Founder", Some("founder-hash"));
    let org = new_org("Acme", "acme");
    let (stored, member) = s
        .insert_organization_with_owner(&org, &owner)
        .await
        .unwrap();
    assert_eq!(stored.owner, Some(owner.id));
    assert_eq!(
        Organization {
            owner: None,
            ..stored.clone()
        },
        org
    );
    assert_eq!(s.get_organization(org.id).await.unwrap(), stored);
    assert_eq!(s.get_user(owner.id).await.unwrap(), owner);
    assert_eq!(member.organization_id, org.id);
    assert_eq!(member.user_id, owner.id);
    assert_eq!(member.name, "Founder");
    assert_eq!(member.email, owner.email);
    assert_eq!(member.roles, vec![1]);
    assert!(member.workspaces.is_empty());
    assert_eq!(member.created_at, org.created_at);
    assert_eq!(s.get_member(org.id, member.id).await.unwrap(), member);
    assert_eq!(
        s.find_member(org.id, owner.id).await.unwrap(),
        Some(member.clone())
    );
    assert_eq!(s.find_member(org.id, UserId::new()).await.unwrap(), None);
    assert_not_found(s.get_member(OrganizationId::new(), member.id).await);
}

async fn an_existing_person_becomes_the_owner(db: TestDb) {
    let s = &db.store;
    let (first, first_owner) = org_with_owner(s, "first").await;
    // The platform names the same address, with another id, name and no password.
    let mut named = user("owner@first.example", "Someone Else", None);
    named.id = UserId::new();
    let org = new_org("Second", "second");
    let (stored, member) = s
        .insert_organization_with_owner(&org, &named)
        .await
        .unwrap();
    assert_eq!(stored.owner, Some(first_owner.user_id));
    assert_eq!(
        s.get_organization(org.id).await.unwrap().owner,
        Some(first_owner.user_id)
    );
    assert_eq!(member.user_id, first_owner.user_id);
    assert_eq!(member.name, "Owner");
    assert_eq!(member.roles, vec![1]);
    let kept = s.get_user(first_owner.user_id).await.unwrap();
    assert_eq!(kept.password_hash.as_deref(), Some("owner-hash"));
    assert_not_found(s.get_user(named.id).await);
    // All or nothing: a taken slug leaves no new person behind.
    let late = user("late@example.com", "Late", None);
    assert_conflict(
        s.insert_organization_with_owner(&new_org("Again", "first"), &late)
            .await,
        "organization_slug",
    );
    assert!(s.find_user_by_email(&late.email).await.unwrap().is_none());
    assert_eq!(first.owner, Some(first_owner.user_id));
}

async fn ownership_moves_to_another_member(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "acme").await;
    let bob = join(s, org.id, "bob@example.com", "Bob", &[3, 4]).await;
    let before = s.get_organization(org.id).await.unwrap();
    let at = now() + Duration::seconds(3);
    let after = s.transfer_ownership(org.id, bob.id, at).await.unwrap();
    assert_eq!(after.owner, Some(bob.user_id));
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.updated_at, at);
    assert_eq!(s.get_organization(org.id).await.unwrap(), after);
    let old = s.get_member(org.id, owner.id).await.unwrap();
    assert_eq!(old.roles, vec![2]);
    assert_eq!(old.updated_at, at);
    let new = s.get_member(org.id, bob.id).await.unwrap();
    assert_eq!(new.roles, vec![1, 3, 4]);
    assert_eq!(new.updated_at, at);
    // Again to the owner: nothing changes.
    let same = s.transfer_ownership(org.id, bob.id, now()).await.unwrap();
    assert_eq!(same, after);
    // Back: the admin gets role 1 beside role 2.
    let back = s.transfer_ownership(org.id, owner.id, at).await.unwrap();
    assert_eq!(back.version, after.version + 1);
    assert_eq!(
        s.get_member(org.id, owner.id).await.unwrap().roles,
        vec![1, 2]
    );
    assert_eq!(
        s.get_member(org.id, bob.id).await.unwrap().roles,
        vec![2, 3, 4]
    );
    // Only a member of this organization can receive it.
    let (other, other_owner) = org_with_owner(s, "other").await;
    assert_not_found(s.transfer_ownership(org.id, other_owner.id, at).await);
    assert_not_found(s.transfer_ownership(org.id, 999_999, at).await);
    assert_not_found(
        s.transfer_ownership(OrganizationId::new(), bob.id, at)
            .await,
    );
    assert_eq!(s.get_organization(org.id).await.unwrap(), back);
    assert_eq!(
        s.get_organization(other.id).await.unwrap().owner,
        Some(other_owner.user_id)
    );
}

async fn members_are_paged_by_id(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "acme").await;
    let mut all = vec![owner];
    for (i, name) in ["Ann", "Bob", "Cid", "Dee"].iter().enumerate() {
        let address = format!("{}@example.com", name.to_lowercase());
        all.push(join(s, org.id, &address, name, &[3 + (i as i64 % 2)]).await);
    }
    // Another organization's members are not counted.
    let (other, _) = org_with_owner(s, "other").await;
    join(s, other.id, "ann@example.com", "Ann", &[3]).await;

    let first = s.list_members(&page(org.id, 0, 2)).await.unwrap();
    assert_eq!(first.total, 5);
    assert_eq!(first.members, all[..2].to_vec());
    let second = s.list_members(&page(org.id, 2, 2)).await.unwrap();
    assert_eq!(ids(&second.members), ids(&all[2..4]));
    let last = s.list_members(&page(org.id, 4, 2)).await.unwrap();
    assert_eq!(ids(&last.members), ids(&all[4..]));
    let beyond = s.list_members(&page(org.id, 10, 2)).await.unwrap();
    assert!(beyond.members.is_empty());
    assert_eq!(beyond.total, 5);
    let whole = s.list_members(&page(org.id, 0, 100)).await.unwrap();
    let mut sorted = ids(&whole.members);
    sorted.sort_unstable();
    assert_eq!(ids(&whole.members), sorted);
    assert_eq!(whole.members, all);
}

async fn members_are_filtered_by_role_workspace_and_text(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "acme").await;
    let alice = join(s, org.id, "alice@wonder.example", "Alice Liddell", &[3]).await;
    let bob = join(s, org.id, "bob@example.com", "Bob 100%", &[3, 4]).await;
    let carl = join(s, org.id, "carl@example.com", "Carl a_b", &[5]).await;
    let dora = join(s, org.id, "dora@example.com", "Dora axb", &[5]).await;
    let ws = workspace(org.id, "Sales");
    s.insert_workspace(&ws).await.unwrap();
    s.update_member(org.id, bob.id, &[3, 4], &[ws.id], now())
        .await
        .unwrap();
    s.update_member(org.id, dora.id, &[5], &[ws.id], now())
        .await
        .unwrap();

    let list = |role: Option<i64>, workspace: Option<Uuid>, q: Option<&str>| {
        let query = MemberQuery {
            role,
            workspace,
            q: q.map(Into::into),
            ..page(org.id, 0, 100)
        };
        async move {
            let p = s.list_members(&query).await.unwrap();
            assert_eq!(p.total as usize, p.members.len());
            ids(&p.members)
        }
    };
    assert_eq!(list(Some(3), None, None).await, vec![alice.id, bob.id]);
    assert_eq!(list(Some(1), None, None).await, vec![owner.id]);
    assert_eq!(list(Some(2), None, None).await, Vec::<i64>::new());
    assert_eq!(list(None, Some(ws.id), None).await, vec![bob.id, dora.id]);
    assert_eq!(list(Some(5), Some(ws.id), None).await, vec![dora.id]);
    assert_eq!(
        list(None, Some(Uuid::now_v7()), None).await,
        Vec::<i64>::new()
    );
    // Case-insensitive, on the name or the e-mail.
    assert_eq!(list(None, None, Some("LIDDELL")).await, vec![alice.id]);
    assert_eq!(
        list(None, None, Some("WONDER.example")).await,
        vec![alice.id]
    );
    assert_eq!(
        list(None, None, Some("example.com")).await,
        vec![bob.id, carl.id, dora.id]
    );
    // `%` and `_` are themselves, not wildcards.
    assert_eq!(list(None, None, Some("0%")).await, vec![bob.id]);
    assert_eq!(list(None, None, Some("%")).await, vec![bob.id]);
    assert_eq!(list(None, None, Some("a_b")).await, vec![carl.id]);
    assert_eq!(list(None, None, Some("_")).await, vec![carl.id]);
    assert_eq!(list(None, None, Some("\\")).await, Vec::<i64>::new());
    assert_eq!(
        list(Some(5), Some(ws.id), Some("DORA")).await,
        vec![dora.id]
    );
    assert_eq!(list(Some(3), None, Some("dora")).await, Vec::<i64>::new());
    // The total counts every match, not the page.
    let p = s
        .list_members(&MemberQuery {
            q: Some("EXAMPLE".into()),
            ..page(org.id, 1, 1)
        })
        .await
        .unwrap();
    assert_eq!(p.total, 5);
    assert_eq!(ids(&p.members), vec![alice.id]);
}

async fn updating_a_member_replaces_roles_and_workspaces(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "acme").await;
    let bob = join(s, org.id, "bob@example.com", "Bob", &[3]).await;
    let (a, b) = (workspace(org.id, "A"), workspace(org.id, "B"));
    s.insert_workspace(&a).await.unwrap();
    s.insert_workspace(&b).await.unwrap();
    let at = now() + Duration::seconds(2);
    let m = s
        .update_member(org.id, bob.id, &[5, 4, 4], &[b.id, a.id, b.id], at)
        .await
        .unwrap();
    let mut both = vec![a.id, b.id];
    both.sort_unstable();
    assert_eq!(m.roles, vec![4, 5]);
    assert_eq!(m.workspaces, both);
    assert_eq!(m.updated_at, at);
    assert_eq!(m.created_at, bob.created_at);
    assert_eq!(s.get_member(org.id, bob.id).await.unwrap(), m);
    let m2 = s
        .update_member(org.id, bob.id, &[3], &[a.id], at)
        .await
        .unwrap();
    assert_eq!((m2.roles, m2.workspaces), (vec![3], vec![a.id]));

    // Role 1 moves only by a transfer.
    assert_conflict(
        s.update_member(org.id, bob.id, &[1, 3], &[], at).await,
        "owner_role",
    );
    assert_conflict(
        s.update_member(org.id, owner.id, &[2], &[], at).await,
        "owner_role",
    );
    let o = s
        .update_member(org.id, owner.id, &[1, 4], &[b.id], at)
        .await
        .unwrap();
    assert_eq!(o.roles, vec![1, 4]);

    // Another organization's workspace: refused, and nothing changes.
    let (other, _) = org_with_owner(s, "other").await;
    let theirs = workspace(other.id, "Theirs");
    s.insert_workspace(&theirs).await.unwrap();
    let before = s.get_member(org.id, bob.id).await.unwrap();
    assert_conflict(
        s.update_member(org.id, bob.id, &[4], &[b.id, theirs.id], now())
            .await,
        "foreign_key",
    );
    assert_conflict(
        s.update_member(org.id, bob.id, &[4], &[Uuid::now_v7()], now())
            .await,
        "foreign_key",
    );
    assert_eq!(s.get_member(org.id, bob.id).await.unwrap(), before);

    assert_not_found(s.update_member(org.id, 999_999, &[3], &[], at).await);
    assert_not_found(s.update_member(other.id, bob.id, &[3], &[], at).await);
}

async fn removing_a_member_spares_the_owner(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "acme").await;
    let bob = join(s, org.id, "bob@example.com", "Bob", &[3]).await;
    let ws = workspace(org.id, "A");
    s.insert_workspace(&ws).await.unwrap();
    let bob = s
        .update_member(org.id, bob.id, &[3, 4], &[ws.id], now())
        .await
        .unwrap();
    assert_conflict(s.remove_member(org.id, owner.id).await, "owner_role");
    let (other, _) = org_with_owner(s, "other").await;
    assert_not_found(s.remove_member(other.id, bob.id).await);
    assert_eq!(s.remove_member(org.id, bob.id).await.unwrap(), bob);
    assert_not_found(s.get_member(org.id, bob.id).await);
    assert_eq!(s.find_member(org.id, bob.user_id).await.unwrap(), None);
    assert_not_found(s.remove_member(org.id, bob.id).await);
    // The person stays, and can be invited back.
    assert!(s.get_user(bob.user_id).await.is_ok());
    let back = join(s, org.id, "bob@example.com", "Bob", &[5]).await;
    assert_eq!(back.user_id, bob.user_id);
    assert_eq!(back.roles, vec![5]);
    assert!(back.workspaces.is_empty());
    let p = s.list_members(&page(org.id, 0, 10)).await.unwrap();
    assert_eq!(ids(&p.members), vec![owner.id, back.id]);
}

async fn custom_roles_are_stored_per_organization(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let (other, _) = org_with_owner(s, "other").await;
    let support = s.insert_role(&new_role(org.id, "support")).await.unwrap();
    assert!(support.id >= FIRST_CUSTOM_ROLE_ID, "{}", support.id);
    assert_eq!(support.organization_id, Some(org.id));
    assert_eq!(support.name, "support");
    assert_eq!(support.description.as_deref(), Some("the supports"));
    let sales = s.insert_role(&new_role(org.id, "sales")).await.unwrap();
    assert!(sales.id > support.id);
    assert_eq!(s.get_role(org.id, support.id).await.unwrap(), support);
    assert_eq!(
        s.list_roles(org.id).await.unwrap(),
        vec![support.clone(), sales.clone()]
    );
    assert_conflict(
        s.insert_role(&new_role(org.id, "support")).await,
        "role_name",
    );
    // The same name elsewhere is another role.
    let theirs = s.insert_role(&new_role(other.id, "support")).await.unwrap();
    assert_ne!(theirs.id, support.id);
    assert_eq!(s.list_roles(other.id).await.unwrap(), vec![theirs.clone()]);
    assert_not_found(s.get_role(other.id, support.id).await);
    assert_not_found(s.get_role(org.id, 1).await);

    let changed = orgbase_domain::Role {
        name: "helpdesk".into(),
        description: None,
        permissions: Permissions::all(),
        updated_at: Some(now() + Duration::seconds(1)),
        ..support.clone()
    };
    s.update_role(&changed).await.unwrap();
    assert_eq!(s.get_role(org.id, support.id).await.unwrap(), changed);
    assert_conflict(
        s.update_role(&orgbase_domain::Role {
            name: "sales".into(),
            ..changed.clone()
        })
        .await,
        "role_name",
    );
    assert_not_found(
        s.update_role(&orgbase_domain::Role {
            id: 999_999,
            ..changed.clone()
        })
        .await,
    );
    assert_not_found(
        s.update_role(&orgbase_domain::Role {
            organization_id: Some(other.id),
            ..changed.clone()
        })
        .await,
    );
    assert!(s
        .update_role(&orgbase_domain::people::system_role(3).unwrap())
        .await
        .is_err());

    s.delete_role(org.id, sales.id).await.unwrap();
    assert_not_found(s.get_role(org.id, sales.id).await);
    assert_not_found(s.delete_role(org.id, sales.id).await);
    assert_not_found(s.delete_role(other.id, support.id).await);
    assert_eq!(s.list_roles(org.id).await.unwrap(), vec![changed]);
}

async fn a_role_in_use_is_not_deleted(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let (other, _) = org_with_owner(s, "other").await;
    let held = s.insert_role(&new_role(org.id, "held")).await.unwrap();
    let keyed = s.insert_role(&new_role(org.id, "keyed")).await.unwrap();
    let invited = s.insert_role(&new_role(org.id, "invited")).await.unwrap();

    // Held by a member.
    let bob = join(s, org.id, "bob@example.com", "Bob", &[3, held.id]).await;
    assert_conflict(s.delete_role(org.id, held.id).await, "role_in_use");
    s.update_member(org.id, bob.id, &[3], &[], now())
        .await
        .unwrap();
    s.delete_role(org.id, held.id).await.unwrap();

    // Held by an active key of the organization; a revoked one does not count.
    let secret = NewSecret::generate("obk_");
    let key = ApiKey {
        id: ApiKeyId::new(),
        name: "ci".into(),
        kind: KeyKind::Organization,
        organization_id: Some(org.id),
        roles: vec![3, keyed.id],
        prefix: secret.prefix.clone(),
        hash: secret.hash.clone(),
        created_at: now(),
        revoked_at: None,
    };
    s.insert_api_key(&key).await.unwrap();
    assert_conflict(s.delete_role(org.id, keyed.id).await, "role_in_use");
    s.revoke_api_key(key.id, now()).await.unwrap();
    s.delete_role(org.id, keyed.id).await.unwrap();

    // Named by a pending invitation (expired ones too); not by a revoked one.
    let (inv, _) = invitation(org.id, "cid@example.com", &[invited.id]);
    s.insert_invitation(&inv, false).await.unwrap();
    assert_conflict(s.delete_role(org.id, invited.id).await, "role_in_use");
    s.revoke_invitation(org.id, inv.id, now()).await.unwrap();
    // Another organization holding the same number does not count.
    join(s, other.id, "dee@example.com", "Dee", &[invited.id]).await;
    s.delete_role(org.id, invited.id).await.unwrap();
    assert!(s.list_roles(org.id).await.unwrap().is_empty());

    // A system role is held by the owner, so it reads as in use rather than missing.
    assert_conflict(s.delete_role(org.id, 1).await, "role_in_use");
}

async fn workspaces_are_named_uniquely_and_leave_members_when_deleted(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "acme").await;
    let (other, _) = org_with_owner(s, "other").await;
    let a = workspace(org.id, "Alpha");
    let b = workspace(org.id, "Beta");
    s.insert_workspace(&a).await.unwrap();
    s.insert_workspace(&b).await.unwrap();
    assert_eq!(s.get_workspace(org.id, a.id).await.unwrap(), a);
    let mut both = vec![a.clone(), b.clone()];
    both.sort_by_key(|w| w.id);
    assert_eq!(s.list_workspaces(org.id).await.unwrap(), both);
    assert_conflict(
        s.insert_workspace(&workspace(org.id, "Alpha")).await,
        "workspace_name",
    );
    let theirs = workspace(other.id, "Alpha");
    s.insert_workspace(&theirs).await.unwrap();
    assert_not_found(s.get_workspace(other.id, a.id).await);
    assert_eq!(s.list_workspaces(other.id).await.unwrap(), vec![theirs]);

    let renamed = Workspace {
        name: "Gamma".into(),
        updated_at: now() + Duration::seconds(1),
        ..a.clone()
    };
    s.update_workspace(&renamed).await.unwrap();
    assert_eq!(s.get_workspace(org.id, a.id).await.unwrap(), renamed);
    assert_conflict(
        s.update_workspace(&Workspace {
            name: "Beta".into(),
            ..renamed.clone()
        })
        .await,
        "workspace_name",
    );
    assert_not_found(s.update_workspace(&workspace(org.id, "Nowhere")).await);
    assert_not_found(
        s.update_workspace(&Workspace {
            organization_id: other.id,
            ..renamed.clone()
        })
        .await,
    );

    let bob = join(s, org.id, "bob@example.com", "Bob", &[3]).await;
    s.update_member(org.id, bob.id, &[3], &[a.id, b.id], now())
        .await
        .unwrap();
    s.update_member(org.id, owner.id, &[1], &[a.id], now())
        .await
        .unwrap();
    assert_not_found(s.delete_workspace(other.id, a.id).await);
    s.delete_workspace(org.id, a.id).await.unwrap();
    assert_not_found(s.get_workspace(org.id, a.id).await);
    assert_not_found(s.delete_workspace(org.id, a.id).await);
    assert_eq!(
        s.get_member(org.id, bob.id).await.unwrap().workspaces,
        vec![b.id]
    );
    assert!(s
        .get_member(org.id, owner.id)
        .await
        .unwrap()
        .workspaces
        .is_empty());
    let in_a = s
        .list_members(&MemberQuery {
            workspace: Some(a.id),
            ..page(org.id, 0, 10)
        })
        .await
        .unwrap();
    assert_eq!(in_a.total, 0);
    assert_eq!(s.list_workspaces(org.id).await.unwrap(), vec![b]);
}

async fn invitations_hold_an_address_once(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "acme").await;
    let (other, _) = org_with_owner(s, "other").await;
    let (inv, plain) = invitation(org.id, "new@example.com", &[3, 4]);
    s.insert_invitation(&inv, false).await.unwrap();
    let found = s
        .find_invitation(&SecretHash::of(&plain))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, inv.id);
    assert_eq!(found.organization_id, org.id);
    assert_eq!(found.email, inv.email);
    assert_eq!(found.roles, vec![3, 4]);
    assert_eq!(found.invited_by, "key:test");
    assert_eq!(found.created_at, inv.created_at);
    assert_eq!(found.expires_at, inv.expires_at);
    assert_eq!((found.accepted_at, found.revoked_at), (None, None));
    assert_eq!(found.sends, 1);
    let got = s.get_invitation(org.id, inv.id).await.unwrap();
    assert_eq!(got.hash.as_str(), inv.hash.as_str());
    assert_not_found(s.get_invitation(other.id, inv.id).await);
    assert_not_found(s.get_invitation(org.id, Uuid::now_v7()).await);
    assert!(s
        .find_invitation(&SecretHash::of("obi_nope"))
        .await
        .unwrap()
        .is_none());

    // One pending invitation per address and organization.
    let (again, _) = invitation(org.id, "new@example.com", &[5]);
    assert_conflict(
        s.insert_invitation(&again, false).await,
        "invitation_pending",
    );
    let (elsewhere, _) = invitation(other.id, "new@example.com", &[5]);
    s.insert_invitation(&elsewhere, false).await.unwrap();

    // A member is not invited again, except the owner asked to set a password.
    let (member_inv, _) = invitation(org.id, owner.email.as_str(), &[3]);
    assert_conflict(
        s.insert_invitation(&member_inv, false).await,
        "member_exists",
    );
    s.insert_invitation(&member_inv, true).await.unwrap();

    // An expired invitation does not hold the address: it is revoked by the new one.
    let (mut old, _) = invitation(org.id, "late@example.com", &[3]);
    old.created_at = now() - Duration::days(8);
    old.expires_at = now() - Duration::days(1);
    s.insert_invitation(&old, false).await.unwrap();
    let (fresh, _) = invitation(org.id, "late@example.com", &[4]);
    s.insert_invitation(&fresh, false).await.unwrap();
    let old_now = s.get_invitation(org.id, old.id).await.unwrap();
    assert_eq!(old_now.revoked_at, Some(fresh.created_at));
    assert_eq!(old_now.accepted_at, None);

    // Pending only, or all; newest first.
    let pending = s.list_invitations(org.id, false).await.unwrap();
    let mut expected = vec![inv.id, member_inv.id, fresh.id];
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(pending.iter().map(|i| i.id).collect::<Vec<_>>(), expected);
    let all = s.list_invitations(org.id, true).await.unwrap();
    let mut expected = vec![inv.id, member_inv.id, fresh.id, old.id];
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(all.iter().map(|i| i.id).collect::<Vec<_>>(), expected);
    assert_eq!(
        s.list_invitations(other.id, true)
            .await
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        vec![elsewhere.id]
    );
}

async fn invitations_are_revoked_and_reissued_while_pending(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let (other, _) = org_with_owner(s, "other").await;
    let (inv, plain) = invitation(org.id, "new@example.com", &[3]);
    s.insert_invitation(&inv, false).await.unwrap();

    let fresh = NewSecret::generate(INVITE_PREFIX);
    let expires = now() + Duration::days(14);
    assert_not_found(
        s.reissue_invitation(other.id, inv.id, &fresh.hash, expires)
            .await,
    );
    let re = s
        .reissue_invitation(org.id, inv.id, &fresh.hash, expires)
        .await
        .unwrap();
    assert_eq!(re.sends, 2);
    assert_eq!(re.expires_at, expires);
    assert_eq!(re.hash.as_str(), fresh.hash.as_str());
    // The old token stops working at once.
    assert!(s
        .find_invitation(&SecretHash::of(&plain))
        .await
        .unwrap()
        .is_none());
    let found = s
        .find_invitation(&SecretHash::of(&fresh.plain))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id, found.sends, found.expires_at),
        (inv.id, 2, expires)
    );

    assert_not_found(s.revoke_invitation(other.id, inv.id, now()).await);
    assert_not_found(s.revoke_invitation(org.id, Uuid::now_v7(), now()).await);
    let at = now();
    let revoked = s.revoke_invitation(org.id, inv.id, at).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(revoked.sends, 2);
    assert_eq!(
        s.get_invitation(org.id, inv.id).await.unwrap().revoked_at,
        Some(at)
    );
    assert_conflict(
        s.revoke_invitation(org.id, inv.id, now()).await,
        "invitation_not_pending",
    );
    let another = NewSecret::generate(INVITE_PREFIX);
    assert_conflict(
        s.reissue_invitation(org.id, inv.id, &another.hash, expires)
            .await,
        "invitation_not_pending",
    );
    assert_conflict(
        s.accept_invitation(inv.id, now(), &Acceptance::ExistingAccount)
            .await,
        "invitation_not_pending",
    );

    // An expired one can still be revoked, or reissued.
    let (mut late, _) = invitation(org.id, "late@example.com", &[3]);
    late.expires_at = now() - Duration::seconds(1);
    s.insert_invitation(&late, false).await.unwrap();
    let renewed = s
        .reissue_invitation(org.id, late.id, &another.hash, expires)
        .await
        .unwrap();
    assert_eq!(renewed.expires_at, expires);
    assert!(s.revoke_invitation(org.id, late.id, now()).await.is_ok());
}

async fn accepting_creates_the_account_and_the_membership(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let (inv, _) = invitation(org.id, "new@example.com", &[5, 3]);
    s.insert_invitation(&inv, false).await.unwrap();
    let newcomer = user("new@example.com", "Newcomer", Some("new-hash"));
    let at = now();
    let m = s
        .accept_invitation(inv.id, at, &set_password(newcomer.clone()))
        .await
        .unwrap();
    assert_eq!(m.organization_id, org.id);
    assert_eq!(m.user_id, newcomer.id);
    assert_eq!(m.name, "Newcomer");
    assert_eq!(m.email, newcomer.email);
    assert_eq!(m.roles, vec![3, 5]);
    assert!(m.workspaces.is_empty());
    assert_eq!((m.created_at, m.updated_at), (at, at));
    assert_eq!(s.get_user(newcomer.id).await.unwrap(), newcomer);
    assert_eq!(
        s.find_member(org.id, newcomer.id).await.unwrap(),
        Some(m.clone())
    );
    let accepted = s.get_invitation(org.id, inv.id).await.unwrap();
    assert_eq!(accepted.accepted_at, Some(at));
    assert!(s.list_invitations(org.id, false).await.unwrap().is_empty());
    // Once only.
    assert_conflict(
        s.accept_invitation(inv.id, now(), &set_password(newcomer.clone()))
            .await,
        "invitation_not_pending",
    );
    assert_not_found(
        s.accept_invitation(Uuid::now_v7(), now(), &Acceptance::ExistingAccount)
            .await,
    );
}

/// The account made by an acceptance is at the invitation's address, whatever the acceptance
/// carried (the rule is the domain's, so both databases agree).
async fn a_new_account_takes_the_invitations_address(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let (inv, _) = invitation(org.id, "invited@example.com", &[3]);
    s.insert_invitation(&inv, false).await.unwrap();
    let other = user("someone-else@example.com", "Newcomer", Some("new-hash"));
    let m = s
        .accept_invitation(inv.id, now(), &set_password(other.clone()))
        .await
        .unwrap();
    assert_eq!(m.email, email("invited@example.com"));
    assert_eq!(
        s.get_user(other.id).await.unwrap().email,
        email("invited@example.com")
    );
    assert_eq!(
        s.find_user_by_email(&email("someone-else@example.com"))
            .await
            .unwrap(),
        None
    );
}

async fn accepting_with_an_account_keeps_its_password(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let (other, _) = org_with_owner(s, "other").await;
    let ann = user("ann@example.com", "Ann", Some("ann-hash"));
    s.insert_user(&ann).await.unwrap();
    // A new password offered for an account that has one is ignored.
    let (inv, _) = invitation(org.id, "ann@example.com", &[3]);
    s.insert_invitation(&inv, false).await.unwrap();
    let m = s
        .accept_invitation(
            inv.id,
            now(),
            &set_password(user("ann@example.com", "Impostor", Some("other-hash"))),
        )
        .await
        .unwrap();
    assert_eq!((m.user_id, m.name.as_str()), (ann.id, "Ann"));
    assert_eq!(s.get_user(ann.id).await.unwrap(), ann);
    // Signed in already.
    let (inv2, _) = invitation(other.id, "ann@example.com", &[4]);
    s.insert_invitation(&inv2, false).await.unwrap();
    let m2 = s
        .accept_invitation(inv2.id, now(), &Acceptance::ExistingAccount)
        .await
        .unwrap();
    assert_eq!((m2.user_id, m2.roles.clone()), (ann.id, vec![4]));
    assert_eq!(s.get_user(ann.id).await.unwrap(), ann);
}

async fn accepting_without_a_password_needs_one(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let val = user("val@example.com", "Val", None);
    s.insert_user(&val).await.unwrap();
    let (inv, _) = invitation(org.id, "val@example.com", &[4]);
    s.insert_invitation(&inv, false).await.unwrap();
    assert_conflict(
        s.accept_invitation(inv.id, now(), &Acceptance::ExistingAccount)
            .await,
        "password_required",
    );
    // The refusal consumed nothing.
    let still = s.get_invitation(org.id, inv.id).await.unwrap();
    assert_eq!((still.accepted_at, still.revoked_at), (None, None));
    assert_eq!(s.find_member(org.id, val.id).await.unwrap(), None);
    let m = s
        .accept_invitation(
            inv.id,
            now(),
            &set_password(user("val@example.com", "Val Again", Some("val-hash"))),
        )
        .await
        .unwrap();
    assert_eq!((m.user_id, m.roles.clone()), (val.id, vec![4]));
    let after = s.get_user(val.id).await.unwrap();
    assert_eq!(after.password_hash.as_deref(), Some("val-hash"));
    assert_eq!(after.name, "Val");

    // Nobody has the address: an existing account cannot be claimed.
    let (nobody, _) = invitation(org.id, "nobody@example.com", &[3]);
    s.insert_invitation(&nobody, false).await.unwrap();
    assert_conflict(
        s.accept_invitation(nobody.id, now(), &Acceptance::ExistingAccount)
            .await,
        "password_required",
    );
    assert!(s
        .find_user_by_email(&email("nobody@example.com"))
        .await
        .unwrap()
        .is_none());
}

async fn an_owner_named_by_the_platform_sets_a_password(db: TestDb) {
    let s = &db.store;
    let named = user("boss@example.com", "Boss", None);
    let (org, owner) = s
        .insert_organization_with_owner(&new_org("Acme", "acme"), &named)
        .await
        .unwrap();
    let (inv, _) = invitation(org.id, "boss@example.com", &[3]);
    s.insert_invitation(&inv, true).await.unwrap();
    let m = s
        .accept_invitation(
            inv.id,
            now(),
            &set_password(user("boss@example.com", "Boss", Some("boss-hash"))),
        )
        .await
        .unwrap();
    // Already a member: the membership stays as it was.
    assert_eq!(m, owner);
    assert_eq!(
        s.get_user(named.id).await.unwrap().password_hash.as_deref(),
        Some("boss-hash")
    );
}

async fn an_expired_invitation_is_not_accepted(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let (inv, _) = invitation(org.id, "new@example.com", &[3]);
    s.insert_invitation(&inv, false).await.unwrap();
    let u = user("new@example.com", "New", Some("h"));
    assert_conflict(
        s.accept_invitation(inv.id, inv.expires_at, &set_password(u.clone()))
            .await,
        "invitation_expired",
    );
    assert!(s.find_user_by_email(&u.email).await.unwrap().is_none());
    let still = s.get_invitation(org.id, inv.id).await.unwrap();
    assert_eq!(still.accepted_at, None);
    // Just before its expiry it still works.
    let m = s
        .accept_invitation(
            inv.id,
            inv.expires_at - Duration::microseconds(1),
            &set_password(u),
        )
        .await
        .unwrap();
    assert_eq!(m.roles, vec![3]);
}

async fn of_concurrent_accepts_one_wins(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "acme").await;
    let (inv, _) = invitation(org.id, "new@example.com", &[3]);
    s.insert_invitation(&inv, false).await.unwrap();
    let id = inv.id;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let u = user("new@example.com", &format!("Racer {i}"), Some("h"));
            tokio::spawn(async move { s.accept_invitation(id, now(), &set_password(u)).await })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(m) => won.push(m),
            Err(StoreError::Conflict {
                constraint: "invitation_not_pending",
            }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let p = s.list_members(&page(org.id, 0, 10)).await.unwrap();
    assert_eq!(p.total, 2);
    assert_eq!(p.members[1], won[0]);
    let winner = s.get_user(won[0].user_id).await.unwrap();
    assert_eq!(winner.email.as_str(), "new@example.com");
}

/// Purging an organization takes its members, roles, workspaces and invitations with it; the
/// people stay.
async fn a_purged_organization_takes_its_people_data_along(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "doomed").await;
    let (kept, _) = org_with_owner(s, "kept").await;
    let role = s.insert_role(&new_role(org.id, "support")).await.unwrap();
    let ws = workspace(org.id, "Sales");
    s.insert_workspace(&ws).await.unwrap();
    let bob = join(s, org.id, "bob@example.com", "Bob", &[3, role.id]).await;
    s.update_member(org.id, bob.id, &[3, role.id], &[ws.id], now())
        .await
        .unwrap();
    let bob_elsewhere = join(s, kept.id, "bob@example.com", "Bob", &[4]).await;
    let (pending, plain) = invitation(org.id, "cid@example.com", &[role.id]);
    s.insert_invitation(&pending, false).await.unwrap();

    let current = s.get_organization(org.id).await.unwrap();
    let deleted = Organization {
        deleted_at: Some(now() - Duration::days(40)),
        version: current.version + 1,
        ..current.clone()
    };
    s.update_organization(&deleted, &current).await.unwrap();
    let purged = s
        .purge_deleted(now() - Duration::days(30), 10)
        .await
        .unwrap();
    assert_eq!(purged, vec![org.id]);
    assert_not_found(s.get_organization(org.id).await);
    assert_not_found(s.get_member(org.id, bob.id).await);
    assert_not_found(s.get_member(org.id, owner.id).await);
    assert_eq!(s.list_members(&page(org.id, 0, 10)).await.unwrap().total, 0);
    assert!(s.list_roles(org.id).await.unwrap().is_empty());
    assert!(s.list_workspaces(org.id).await.unwrap().is_empty());
    assert!(s.list_invitations(org.id, true).await.unwrap().is_empty());
    assert!(s
        .find_invitation(&SecretHash::of(&plain))
        .await
        .unwrap()
        .is_none());
    // The people and their other memberships stay.
    assert!(s.get_user(owner.user_id).await.is_ok());
    assert_eq!(
        s.get_member(kept.id, bob_elsewhere.id).await.unwrap(),
        bob_elsewhere
    );
    let (again, again_owner) = s
        .insert_organization_with_owner(
            &new_org("Again", "again"),
            &user("owner@doomed.example", "Other", None),
        )
        .await
        .unwrap();
    assert_eq!(again.owner, Some(owner.user_id));
    assert_eq!(again_owner.user_id, owner.user_id);
}

/// The member directory's inputs: the count and version move with every join and leave (and
/// only then), the content version with everything a member list shows, the ids come in order,
/// and a look-up by ids stays inside the organization.
async fn member_stats_follow_joins_and_leaves(db: TestDb) {
    let s = &db.store;
    let (org, owner) = org_with_owner(s, "acme").await;
    let (other, other_owner) = org_with_owner(s, "other").await;
    let before = s.member_stats(org.id).await.unwrap();
    assert_eq!(before.members, 1);
    let a = join(s, org.id, "a@example.com", "A", &[3]).await;
    let b = join(s, org.id, "b@example.com", "B", &[3]).await;
    let after = s.member_stats(org.id).await.unwrap();
    assert_eq!(after.members, 3);
    assert!(after.version > before.version);
    assert!(after.content_version > before.content_version);
    let others = s.member_stats(other.id).await.unwrap();

    // A change of roles is not a join or a leave, but it is a change of content.
    s.update_member(org.id, a.id, &[5], &[], now())
        .await
        .unwrap();
    let roles_changed = s.member_stats(org.id).await.unwrap();
    assert_eq!(
        (roles_changed.members, roles_changed.version),
        (after.members, after.version)
    );
    assert!(roles_changed.content_version > after.content_version);
    // So are workspaces: given, and taken away by the workspace's deletion.
    let ws = workspace(org.id, "Ops");
    s.insert_workspace(&ws).await.unwrap();
    s.update_member(org.id, a.id, &[5], &[ws.id], now())
        .await
        .unwrap();
    let given = s.member_stats(org.id).await.unwrap();
    assert!(given.content_version > roles_changed.content_version);
    s.delete_workspace(org.id, ws.id).await.unwrap();
    let taken = s.member_stats(org.id).await.unwrap();
    assert!(taken.content_version > given.content_version);
    assert_eq!(
        s.get_member(org.id, a.id).await.unwrap().workspaces,
        Vec::<Uuid>::new()
    );
    // And a person's new e-mail, in every organization the person belongs to.
    let current = s.get_organization(other.id).await.unwrap();
    let mut next = current.clone();
    next.version += 1;
    s.update_organization_and_owner_email(
        &next,
        &current,
        Some((
            other_owner.user_id,
            Email::parse("email", "renamed@other.example").unwrap(),
        )),
    )
    .await
    .unwrap();
    assert!(s.member_stats(other.id).await.unwrap().content_version > others.content_version);
    assert_eq!(
        s.member_stats(org.id).await.unwrap(),
        taken,
        "not a member here"
    );

    assert_eq!(
        s.member_ids(org.id).await.unwrap(),
        vec![owner.id, a.id, b.id]
    );
    let got = s
        .members_by_ids(org.id, &[b.id, other_owner.id, a.id, 999_999])
        .await
        .unwrap();
    assert_eq!(ids(&got), vec![a.id, b.id]);
    assert_eq!(got[0].roles, vec![5]);
    assert!(s.members_by_ids(org.id, &[]).await.unwrap().is_empty());
    s.remove_member(org.id, a.id).await.unwrap();
    let left = s.member_stats(org.id).await.unwrap();
    assert_eq!(left.members, 2);
    assert!(left.version > taken.version);
    assert!(left.content_version > taken.content_version);
    assert_eq!(s.member_stats(other.id).await.unwrap().members, 1);
    assert_eq!(
        s.member_stats(orgbase_domain::OrganizationId::new())
            .await
            .unwrap(),
        orgbase_store::MemberStats::default()
    );
}

/// `q` folds case beyond ASCII, the same on both databases.
async fn member_search_folds_unicode_case(db: TestDb) {
    let s = &db.store;
    let (org, _) = org_with_owner(s, "unicode").await;
    let emile = join(s, org.id, "ez@example.com", "ÉMILE Zola", &[3]).await;
    for q in ["émile", "ÉMILE", "Émile", "mile z"] {
        let page = s
            .list_members(&MemberQuery {
                q: Some(q.into()),
                ..page(org.id, 0, 10)
            })
            .await
            .unwrap();
        assert_eq!(ids(&page.members), vec![emile.id], "{q}");
    }
}

crate::conformance!(
    member_search_folds_unicode_case,
    old_sessions_are_purged,
    member_stats_follow_joins_and_leaves,
    users_have_unique_emails,
    sessions_are_found_by_hash_with_their_user,
    a_new_owner_is_created_with_the_organization,
    an_existing_person_becomes_the_owner,
    ownership_moves_to_another_member,
    members_are_paged_by_id,
    members_are_filtered_by_role_workspace_and_text,
    updating_a_member_replaces_roles_and_workspaces,
    removing_a_member_spares_the_owner,
    custom_roles_are_stored_per_organization,
    a_role_in_use_is_not_deleted,
    workspaces_are_named_uniquely_and_leave_members_when_deleted,
    invitations_hold_an_address_once,
    invitations_are_revoked_and_reissued_while_pending,
    accepting_creates_the_account_and_the_membership,
    a_new_account_takes_the_invitations_address,
    accepting_with_an_account_keeps_its_password,
    accepting_without_a_password_needs_one,
    an_owner_named_by_the_platform_sets_a_password,
    an_expired_invitation_is_not_accepted,
    of_concurrent_accepts_one_wins,
    a_purged_organization_takes_its_people_data_along,
);
