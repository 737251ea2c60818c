//! The organization services, shared by every API surface. They take proofs of access from
//! [`crate::auth`], apply the domain's rules and talk to storage.

use orgbase_domain::{
    now, Email, Member, NewOrganization, OrgStatus, OrgType, Organization, OrganizationId,
    OrganizationPatch, Permission, Slug, Target, User, UserId, ValidationErrors,
};
use orgbase_store::{OrganizationQuery, StoreError};
use rand::Rng;

use crate::access::{OrgAccess, PlatformAdmin, Principal};
use crate::{audit, invitations};
use crate::{ServiceError, Services};

/// How often a made-up slug is retried with a new suffix when it is taken.
const SLUG_ATTEMPTS: usize = 6;
/// How often a change is re-applied when another writer got there first (no If-Match given).
/// Every round has a winner, so this many concurrent writers on one organization all land.
const UPDATE_ATTEMPTS: usize = 32;

/// A short random pause before retrying, so that losers of a race do not collide again in step.
async fn backoff(attempt: usize) {
    let max_us = 200 * (attempt as u64 + 1).min(10);
    let us = rand::thread_rng().gen_range(0..=max_us);
    tokio::time::sleep(std::time::Duration::from_micros(us)).await;
}

/// The parent vanished between its check and the write.
fn parent_vanished() -> ServiceError {
    ServiceError::field("parentId", "invalid_parent", "no such organization")
}

/// Every attempt lost a race with another writer.
fn kept_changing() -> ServiceError {
    ServiceError::Conflict {
        code: "concurrent_update",
        detail: "the organization kept changing under this request; try again".into(),
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Loads an organization the caller may reach, with the caller's permissions there; 404
/// otherwise.
pub async fn load<'p>(
    state: &Services,
    who: &'p Principal,
    id: OrganizationId,
) -> Result<OrgAccess<'p>, ServiceError> {
    let org = state.store.get_organization(id).await?;
    who.access(state, org).await
}

/// Loads an organization and requires a permission there (404 outside reach, then 403).
pub async fn load_with<'p>(
    state: &Services,
    who: &'p Principal,
    id: OrganizationId,
    p: Permission,
) -> Result<OrgAccess<'p>, ServiceError> {
    let access = load(state, who, id).await?;
    access.require(p)?;
    Ok(access)
}

/// Who creates an organization, and so who owns it.
pub enum Creator {
    /// The platform; the owner, if named, is found or made by e-mail.
    Platform(PlatformAdmin, Option<User>),
    /// A partner, creating one of its children; the owner as for the platform.
    Partner(OrganizationId, Option<User>),
    /// A person, who becomes the owner.
    Person(UserId),
}

/// A parent must be a live partner organization that is not itself a child.
async fn check_parent(
    state: &Services,
    parent_id: OrganizationId,
    errors: &mut ValidationErrors,
) -> Result<(), ServiceError> {
    match state.store.get_organization(parent_id).await {
        Ok(p) if p.is_deleted() => errors.add(
            "parentId",
            "invalid_parent",
            "the parent organization is deleted",
        ),
        Ok(p) if p.org_type != OrgType::Partner => errors.add(
            "parentId",
            "invalid_parent",
            "the parent must be an organization of type partner",
        ),
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            errors.add("parentId", "invalid_parent", "no such organization")
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Rules that need storage: the parent, and the two-level partner hierarchy.
async fn check_hierarchy(
    state: &Services,
    current: Option<&Organization>,
    next: &Organization,
    errors: &mut ValidationErrors,
) -> Result<(), ServiceError> {
    let parent_changed = current
        .map(|c| c.parent_id != next.parent_id)
        .unwrap_or(true);
    if let (Some(parent), true) = (next.parent_id, parent_changed) {
        check_parent(state, parent, errors).await?;
    }
    if next.org_type == OrgType::Partner && next.parent_id.is_some() {
        errors.add(
            "type",
            "partner_parent",
            "a partner organization cannot have a parent",
        );
    }
    if let Some(cur) = current {
        if cur.org_type == OrgType::Partner
            && next.org_type != OrgType::Partner
            && state.store.count_children(cur.id).await? > 0
        {
            return Err(ServiceError::Conflict {
                code: "has_children",
                detail: "a partner with child organizations cannot change its type".into(),
            });
        }
    }
    Ok(())
}

/// Creates an organization. An owner the platform or a partner named who has no password yet is
/// invited to set one; the organization exists even if that e-mail fails (it is logged, and the
/// invitation can be resent).
pub async fn create(
    state: &Services,
    who: &Principal,
    creator: Creator,
    new: NewOrganization,
    mut errors: ValidationErrors,
) -> Result<(Organization, Option<Member>), ServiceError> {
    who.may_change()?;
    let actor = who.audit_actor();
    let (owner, named) = match creator {
        Creator::Platform(_, owner) | Creator::Partner(_, owner) => (owner, true),
        Creator::Person(id) => (Some(state.store.get_user(id).await?), false),
    };
    let given_slug = new.slug.clone();
    let name = new.name.as_str().to_owned();
    let first_slug = given_slug
        .clone()
        .unwrap_or_else(|| Slug::from_name(&name, &random_suffix()));
    let org = match new.build(OrganizationId::new(), first_slug, now()) {
        Ok(o) => Some(o),
        Err(e) => {
            errors.0.extend(e.0);
            None
        }
    };
    if let Some(o) = &org {
        check_hierarchy(state, None, o, &mut errors).await?;
    }
    errors.clone().into_result()?;
    let mut org = org.expect("validated");
    for attempt in 0..SLUG_ATTEMPTS {
        let entry = audit::entry(
            actor.clone(),
            Some(org.id),
            "organization.created",
            Target::new("organization", org.id),
        )
        .diff(None, Some(&org));
        let inserted = match &owner {
            Some(u) => {
                let write = state.store.insert_organization_with_owner(&org, u);
                audit::record(vec![entry], write)
                    .await
                    .map(|(o, m)| (o, Some(m)))
            }
            None => audit::record(vec![entry], state.store.insert_organization(&org))
                .await
                .map(|()| (org.clone(), None)),
        };
        match inserted {
            Ok(done) => {
                if let Some(user) = owner
                    .as_ref()
                    .filter(|u| named && u.password_hash.is_none())
                {
                    if let Err(e) =
                        invitations::invite_owner(state, &done.0, user, who.actor()).await
                    {
                        tracing::warn!(organization_id = %done.0.id, error = %e,
                            "the owner's invitation was not sent; resend it from the invitations list");
                    }
                }
                return Ok(done);
            }
            Err(StoreError::Conflict {
                constraint: "organization_slug",
            }) if given_slug.is_none() && attempt + 1 < SLUG_ATTEMPTS => {
                let base = Slug::from_name(&name, "x");
                let base = base.as_str().trim_end_matches("-x");
                org.slug = Slug::with_suffix(base, &random_suffix()).into_inner();
            }
            Err(StoreError::Conflict {
                constraint: "foreign_key",
            }) => return Err(parent_vanished()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Internal("no free slug found".into()))
}

/// What only the platform may change on an organization: its standing (status and reason), its
/// place in the partner hierarchy, and what the platform decides for it.
pub fn platform_only_fields(p: &OrganizationPatch) -> Vec<&'static str> {
    let mut f = Vec::new();
    let mut check = |given: bool, name| {
        if given {
            f.push(name)
        }
    };
    check(p.status.is_some(), "status");
    check(p.status_reason.is_some(), "statusReason");
    check(p.org_type.is_some(), "type");
    check(p.parent_id.is_some(), "parentId");
    check(p.kyc_level.is_some(), "kycLevel");
    check(p.placement_group.is_some(), "placementGroup");
    check(p.rate_limit.is_some(), "rateLimit");
    check(p.entitlements.is_some(), "entitlements");
    check(p.product_plan_id.is_some(), "productPlanId");
    check(p.offered_product_plan_id.is_some(), "offeredProductPlanId");
    check(p.premium.is_some(), "premium");
    f
}

/// Who may make `patch`: `org:update`, and the platform for what only it decides, except what a
/// partner decides for its children (switching them on and off, their plans, their paid state).
fn authorize_patch(a: &OrgAccess<'_>, patch: &OrganizationPatch) -> Result<(), ServiceError> {
    a.require(Permission::OrgUpdate)?;
    let allowed: &[&str] = if a.is_parent_partner() {
        &[
            "status",
            "statusReason",
            "productPlanId",
            "offeredProductPlanId",
            "premium",
        ]
    } else {
        &[]
    };
    let refused: Vec<&str> = platform_only_fields(patch)
        .into_iter()
        .filter(|f| !allowed.contains(f))
        .collect();
    if !a.is_platform() && !refused.is_empty() {
        return Err(ServiceError::Forbidden(format!(
            "only the platform may change {}",
            refused.join(", ")
        )));
    }
    Ok(())
}

fn refuse_deleted(org: &Organization) -> Result<(), ServiceError> {
    if org.is_deleted() {
        return Err(ServiceError::Conflict {
            code: "organization_deleted",
            detail: "a deleted organization cannot be changed; restore it first".into(),
        });
    }
    Ok(())
}

/// `patch` applied on `base` (the stored organization, or it with earlier settings applied), with
/// the rules that span fields, and the suspension kept the platform's.
fn apply_patch(
    current: &Organization,
    base: &Organization,
    patch: &OrganizationPatch,
    is_platform: bool,
) -> Result<Organization, ServiceError> {
    let next = patch.clone().apply(base, now())?;
    let suspension_touched = next.status != current.status
        && (next.status == OrgStatus::Suspended || current.status == OrgStatus::Suspended);
    if suspension_touched && !is_platform {
        return Err(ServiceError::Forbidden(
            "only the platform suspends an organization or lifts a suspension".into(),
        ));
    }
    Ok(next)
}

/// Applies a change, retrying on a concurrent write unless the caller pinned a version.
/// Needs `org:update`; the platform-only fields need the platform.
pub async fn update(
    state: &Services,
    who: &Principal,
    id: OrganizationId,
    patch: OrganizationPatch,
    if_match: Option<IfMatch>,
) -> Result<(Organization, Organization), ServiceError> {
    let authorize = |a: &OrgAccess<'_>| authorize_patch(a, &patch);
    if patch.product_plan_id.is_some() || patch.offered_product_plan_id.is_some() {
        // Who may, before anything is looked up or sent to a provider.
        let access = load(state, who, id).await?;
        authorize(&access)?;
        check_plans(state, &access.org, &patch, if_match.as_ref()).await?;
    }
    let is_platform = matches!(who, Principal::Platform { .. });
    let change = |current: &Organization| {
        refuse_deleted(current)?;
        let next = apply_patch(current, current, &patch, is_platform)?;
        Ok((next != *current).then_some(next))
    };
    modify(
        state,
        who,
        id,
        if_match,
        authorize,
        change,
        "organization.updated",
        true,
    )
    .await
}

/// One setting of a change made setting by setting.
#[derive(Debug, Clone)]
pub enum SettingChange {
    /// A change of the organization, under the rules of the native PATCH.
    Organization(Box<OrganizationPatch>),
    /// The owner's e-mail address.
    OwnerEmail(Email),
}

/// What became of each setting, in the order given: `Ok` if it is in the committed change, its
/// refusal otherwise.
pub type SettingResults = Vec<(String, Result<(), ServiceError>)>;

/// Whether `e` refuses one setting (the rest go on), rather than the whole request (storage
/// unavailable, an internal failure).
fn refuses_one(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::Validation(_)
            | ServiceError::Forbidden(_)
            | ServiceError::Conflict { .. }
            | ServiceError::Upstream { .. }
            | ServiceError::PaymentRequired { .. }
    )
}

/// A platform or a partner changes a customer organization setting by setting (the partner
/// settings use case). Each setting is checked with the rules of [`update`] on the organization
/// with the settings before it that passed; those that pass are committed together, in one
/// change with one audit entry, and each that fails is answered with its own refusal. The
/// organization must be the caller's customer: any for the platform, its children for a partner
/// (others are 404). A deleted organization refuses the whole change (`organization_deleted`).
pub async fn update_settings(
    state: &Services,
    who: &Principal,
    id: OrganizationId,
    settings: &[(String, SettingChange)],
) -> Result<SettingResults, ServiceError> {
    for attempt in 0..UPDATE_ATTEMPTS {
        if attempt > 0 {
            backoff(attempt).await;
        }
        let access = load(state, who, id).await?;
        // A partner's key reaches its children here, not the partner itself: the target's
        // partner is the one that decides its settings, and a partner has none above it but
        // the platform.
        if !access.is_platform() && !access.is_parent_partner() {
            return Err(ServiceError::NotFound);
        }
        let current = &access.org;
        refuse_deleted(current)?;
        let mut next = current.clone();
        let mut email_change = None;
        // Each setting is tried on what passed before it; one refused by a rule that spans
        // fields (enabling SMS, removing an id SMS relies on) is tried again once others passed,
        // until a round passes nothing more: the outcome does not hang on the order given.
        let mut outcome: Vec<Option<Result<(), ServiceError>>> =
            settings.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..settings.len()).collect();
        while !pending.is_empty() {
            let mut passed = false;
            let mut again = Vec::new();
            for i in pending {
                let r = match &settings[i].1 {
                    SettingChange::Organization(patch) => setting(state, &access, &next, patch)
                        .await
                        .map(|n| next = n),
                    SettingChange::OwnerEmail(email) => owner_email(state, current, email)
                        .await
                        .map(|c| email_change = c.or(email_change.take())),
                };
                match &r {
                    Ok(()) => passed = true,
                    Err(ServiceError::Validation(_)) => again.push(i),
                    Err(e) if !refuses_one(e) => return Err(r.unwrap_err()),
                    Err(_) => {}
                }
                outcome[i] = Some(r);
            }
            pending = if passed { again } else { Vec::new() };
        }
        let results: SettingResults = settings
            .iter()
            .zip(outcome)
            .map(|((key, _), r)| (key.clone(), r.expect("every setting tried")))
            .collect();
        if next == *current && email_change.is_none() {
            return Ok(results);
        }
        next.version = current.version + 1;
        next.updated_at = now();
        let mut entry = audit::entry(
            who.audit_actor(),
            Some(id),
            "organization.updated",
            Target::new("organization", id),
        )
        .diff(Some(current), Some(&next));
        if let Some((user, email)) = &email_change {
            let before = state.store.get_user(*user).await?.email;
            entry = entry.field("ownerEmail", before.as_str().into(), email.as_str().into());
        }
        let write = state
            .store
            .update_organization_and_owner_email(&next, current, email_change);
        match audit::record(vec![entry], write).await {
            Ok(()) => return Ok(results),
            // Changed meanwhile, or the e-mail or the plan taken meanwhile: evaluate again.
            Err(StoreError::VersionMismatch)
            | Err(StoreError::Conflict {
                constraint: "user_email" | "organization_plan",
            }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(kept_changing())
}

/// One organization setting of [`update_settings`], on `base`.
async fn setting(
    state: &Services,
    access: &OrgAccess<'_>,
    base: &Organization,
    patch: &OrganizationPatch,
) -> Result<Organization, ServiceError> {
    authorize_patch(access, patch)?;
    if patch.product_plan_id.is_some() || patch.offered_product_plan_id.is_some() {
        check_plans(state, &access.org, patch, None).await?;
    }
    apply_patch(&access.org, base, patch, access.is_platform())
}

/// The owner's new e-mail address: `None` when it is theirs already.
async fn owner_email(
    state: &Services,
    org: &Organization,
    email: &Email,
) -> Result<Option<(UserId, Email)>, ServiceError> {
    let Some(owner) = org.owner else {
        return Err(ServiceError::Conflict {
            code: "no_owner",
            detail: "the organization has no owner".into(),
        });
    };
    match state.store.find_user_by_email(email).await? {
        Some(u) if u.id != owner => Err(ServiceError::Conflict {
            code: "email_taken",
            detail: "the e-mail is used by another person".into(),
        }),
        Some(_) => Ok(None),
        None => Ok(Some((owner, email.clone()))),
    }
}

/// The plans a patch names must exist; a new plan billed through a provider is set only on a
/// subscribed organization, and changes at the provider first (nothing is committed here if the
/// provider refuses).
async fn check_plans(
    state: &Services,
    current: &Organization,
    patch: &OrganizationPatch,
    if_match: Option<&IfMatch>,
) -> Result<(), ServiceError> {
    let mut errors = ValidationErrors::new();
    let get = |pid: String| async move {
        match state.store.get_plan(&pid).await {
            Ok(p) => Ok(Some(p)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(ServiceError::from(e)),
        }
    };
    if let Some(Some(offered)) = &patch.offered_product_plan_id {
        if get(offered.clone()).await?.is_none() {
            errors.add("offeredProductPlanId", "unknown_plan", "no such plan");
        }
    }
    let Some(pid) = &patch.product_plan_id else {
        return errors.into_result().map_err(Into::into);
    };
    let Some(plan) = get(pid.clone()).await? else {
        errors.add("productPlanId", "unknown_plan", "no such plan");
        return Err(errors.into());
    };
    errors.into_result()?;
    if current.product_plan_id == plan.id {
        return Ok(());
    }
    // What would refuse the change here is checked before the provider is asked.
    refuse_deleted(current)?;
    if if_match.is_some_and(|m| !m.matches(current.version)) {
        return Err(ServiceError::PreconditionFailed);
    }
    let subscribed = current.subscription.as_ref().filter(|s| s.is_live());
    let Some(provider) = plan.provider else {
        return match subscribed {
            None => Ok(()),
            Some(sub) => crate::providers::change_plan(state, current, sub, &plan)
                .await
                .map_err(|detail| {
                    ServiceError::field("productPlanId", "subscribed_elsewhere", detail)
                }),
        };
    };
    let live = subscribed.filter(|s| s.provider == provider);
    let Some(sub) = live else {
        return Err(ServiceError::field(
            "productPlanId",
            "not_subscribed",
            format!(
                "the plan is billed through {}, and the organization has not subscribed: offer \
                 it with offeredProductPlanId, and the customer completes checkout",
                provider.as_str()
            ),
        ));
    };
    if let Err(e) = state.billing.client(provider) {
        return Err(ServiceError::field(
            "productPlanId",
            "provider_not_configured",
            e.to_string(),
        ));
    }
    crate::providers::change_plan(state, current, sub, &plan)
        .await
        .map_err(|detail| ServiceError::Upstream {
            code: "billing_provider_error",
            detail,
        })
}

/// Sets or clears the organization's avatar URL (an upload, or its removal): whoever may update
/// the organization. Answers the organization before and after.
pub async fn set_avatar(
    state: &Services,
    who: &Principal,
    id: OrganizationId,
    url: Option<String>,
) -> Result<(Organization, Organization), ServiceError> {
    let authorize = |a: &OrgAccess<'_>| a.require(Permission::OrgUpdate);
    let change = |current: &Organization| {
        refuse_deleted(current)?;
        if current.avatar_url == url {
            return Ok(None);
        }
        let t = now();
        Ok(Some(Organization {
            avatar_url: url.clone(),
            updated_at: t,
            version: current.version + 1,
            ..current.clone()
        }))
    };
    modify(
        state,
        who,
        id,
        None,
        authorize,
        change,
        "organization.updated",
        false,
    )
    .await
}

/// The avatar URL an organization points at now (none once it is gone), read afresh: for
/// keeping the avatar files in step with it.
pub async fn stored_avatar_url(
    state: &Services,
    id: OrganizationId,
) -> Result<Option<String>, ServiceError> {
    match state.store.get_organization(id).await {
        Ok(o) => Ok(o.avatar_url),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Soft delete: the organization disappears for everyone but the platform, restorable. Only
/// its owner and the platform may delete it.
pub async fn delete(
    state: &Services,
    who: &Principal,
    id: OrganizationId,
    if_match: Option<IfMatch>,
) -> Result<(), ServiceError> {
    set_deleted(state, who, id, if_match, true)
        .await
        .map(|_| ())
}

pub async fn restore(
    state: &Services,
    admin: &PlatformAdmin,
    who: &Principal,
    id: OrganizationId,
) -> Result<Organization, ServiceError> {
    let _ = admin;
    set_deleted(state, who, id, None, false).await
}

async fn set_deleted(
    state: &Services,
    who: &Principal,
    id: OrganizationId,
    if_match: Option<IfMatch>,
    deleted: bool,
) -> Result<Organization, ServiceError> {
    let authorize = |a: &OrgAccess<'_>| {
        if a.is_owner_or_platform() {
            Ok(())
        } else {
            a.require(Permission::OrgRead)?;
            Err(ServiceError::Forbidden(
                "only the owner or the platform may delete an organization".into(),
            ))
        }
    };
    let change = |current: &Organization| {
        if current.is_deleted() == deleted {
            return Ok(None);
        }
        let t = now();
        Ok(Some(Organization {
            deleted_at: deleted.then_some(t),
            updated_at: t,
            version: current.version + 1,
            ..current.clone()
        }))
    };
    let action = if deleted {
        "organization.deleted"
    } else {
        "organization.restored"
    };
    modify(state, who, id, if_match, authorize, change, action, false)
        .await
        .map(|(_, next)| next)
}

/// Reads the organization, asks `change` for its next state (`None`: nothing to change), and
/// writes it, with its audit entry (`action`), if nobody changed the organization meanwhile.
/// Otherwise it reads again and retries, after a short random pause, unless the caller pinned a
/// version with If-Match.
#[allow(clippy::too_many_arguments)]
async fn modify(
    state: &Services,
    who: &Principal,
    id: OrganizationId,
    if_match: Option<IfMatch>,
    authorize: impl Fn(&OrgAccess<'_>) -> Result<(), ServiceError>,
    change: impl Fn(&Organization) -> Result<Option<Organization>, ServiceError>,
    action: &str,
    check_parent: bool,
) -> Result<(Organization, Organization), ServiceError> {
    for attempt in 0..UPDATE_ATTEMPTS {
        if attempt > 0 {
            backoff(attempt).await;
        }
        let access = load(state, who, id).await?;
        authorize(&access)?;
        let current = access.org;
        if let Some(m) = &if_match {
            if !m.matches(current.version) {
                return Err(ServiceError::PreconditionFailed);
            }
        }
        let Some(next) = change(&current)? else {
            return Ok((current.clone(), current));
        };
        if check_parent {
            let mut errors = ValidationErrors::new();
            check_hierarchy(state, Some(&current), &next, &mut errors).await?;
            errors.into_result()?;
        }
        let entry = audit::entry(
            who.audit_actor(),
            Some(id),
            action,
            Target::new("organization", id),
        )
        .diff(Some(&current), Some(&next));
        let write = state.store.update_organization(&next, &current);
        match audit::record(vec![entry], write).await {
            Ok(()) => return Ok((current, next)),
            Err(StoreError::VersionMismatch) if if_match.is_none() => continue,
            Err(StoreError::Conflict {
                constraint: "foreign_key",
            }) => return Err(parent_vanished()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(kept_changing())
}

/// Readiness: the database answers (and, on SQLite, takes writes) within two seconds. Answers
/// the database's kind, `sqlite` or `postgres`.
pub async fn readiness(state: &Services) -> Result<&'static str, ServiceError> {
    match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(state.store.backend()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ServiceError::DatabaseUnavailable(e.to_string()))
        }
        Err(_) => Err(ServiceError::DatabaseUnavailable(
            "the readiness check timed out".into(),
        )),
    }
}

/// The platform lists every organization; a person those they are a member of; an
/// organization key its own.
pub async fn list(
    state: &Services,
    who: &Principal,
    mut q: OrganizationQuery,
) -> Result<Vec<Organization>, ServiceError> {
    match who {
        Principal::Platform { .. } => {}
        Principal::User { user_id, .. } => q.member = Some(*user_id),
        Principal::OrgKey {
            organization_id, ..
        } => q.only = Some(*organization_id),
        Principal::Partner { partner_id, .. } => q.partner = Some(*partner_id),
    }
    if !matches!(who, Principal::Platform { .. })
        && (q.include_deleted || q.status == Some(orgbase_store::StatusFilter::Deleted))
    {
        return Err(ServiceError::Forbidden(
            "only the platform sees deleted organizations".into(),
        ));
    }
    q.limit = q.limit.clamp(1, 101);
    Ok(state.store.list_organizations(&q).await?)
}

/// An `If-Match` header: `*`, or a list of entity tags.
#[derive(Debug, Clone)]
pub enum IfMatch {
    Any,
    Versions(Vec<Option<i64>>),
}

impl IfMatch {
    pub fn parse(raw: &str) -> Self {
        if raw.trim() == "*" {
            return IfMatch::Any;
        }
        // If-Match compares strongly: a weak tag never matches (RFC 9110, 13.1.1).
        IfMatch::Versions(
            raw.split(',')
                .map(|t| parse_etag(t.trim(), false))
                .collect(),
        )
    }
    pub fn matches(&self, version: i64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(v) => v.contains(&Some(version)),
        }
    }
}

/// `"3"` → 3; the weak `W/"3"` too when `weak_ok` (If-None-Match compares weakly).
pub fn parse_etag(t: &str, weak_ok: bool) -> Option<i64> {
    let t = match t.strip_prefix("W/") {
        Some(rest) if weak_ok => rest,
        Some(_) => return None,
        None => t,
    };
    t.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// What the plan `plan_id` gives the organizations on it (nothing for a plan since deleted).
#[derive(Debug, Clone, Default)]
pub struct PlanTerms {
    pub entitlements: Vec<String>,
    /// Requests per second, for the organizations without a limit of their own.
    pub rate_limit: Option<i32>,
}

/// The terms of the plan `plan_id`.
pub async fn plan_terms(state: &Services, plan_id: &str) -> Result<PlanTerms, ServiceError> {
    match state.store.get_plan(plan_id).await {
        Ok(p) => Ok(PlanTerms {
            entitlements: p.entitlements,
            rate_limit: Some(p.rate_limit),
        }),
        Err(orgbase_store::StoreError::NotFound) => Ok(PlanTerms::default()),
        Err(e) => Err(e.into()),
    }
}

/// The entitlements of the plan `plan_id` (none for a plan since deleted).
pub async fn plan_entitlements(
    state: &Services,
    plan_id: &str,
) -> Result<Vec<String>, ServiceError> {
    Ok(plan_terms(state, plan_id).await?.entitlements)
}
