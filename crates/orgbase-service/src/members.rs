//! Members of an organization: who may change whom, and the owner's protection.
use orgbase_domain::people::ROLE_OWNER;
use orgbase_domain::{now, Member, Organization, Permission, Target, ValidationErrors};
use orgbase_store::{MemberPage, MemberQuery, MemberStats, StoreError};
use uuid::Uuid;

use super::audit;
use super::roles::checked_roles;
use crate::access::{role_permissions, OrgAccess};
use crate::{ServiceError, Services};

/// A member of the organization.
pub async fn get(
    state: &Services,
    access: &OrgAccess<'_>,
    id: i64,
) -> Result<Member, ServiceError> {
    Ok(state.store.get_member(access.org.id, id).await?)
}

/// The organization's member numbers: how many, and the version of what they hold (a listing
/// made at that version is still right).
pub async fn stats(state: &Services, access: &OrgAccess<'_>) -> Result<MemberStats, ServiceError> {
    Ok(state.store.member_stats(access.org.id).await?)
}

/// One page of the members, as `q` asks (its organization is the one reached). An unfiltered
/// page of a large organization comes from the member directory (see `crate::directory`).
pub async fn list(
    state: &Services,
    access: &OrgAccess<'_>,
    q: &MemberQuery,
    stats: MemberStats,
) -> Result<MemberPage, ServiceError> {
    access.require(Permission::MembersRead)?;
    debug_assert_eq!(q.organization_id, access.org.id);
    if q.role.is_none() && q.workspace.is_none() && q.q.is_none() {
        let page = state
            .members
            .page(
                &state.store,
                access.org.id,
                stats,
                q.offset,
                q.limit,
                state.config.member_directory_min,
            )
            .await?;
        if let Some(p) = page {
            return Ok(p);
        }
    }
    Ok(state.store.list_members(q).await?)
}

/// The caller may act on `target` only if it holds every permission the target holds: nobody
/// changes someone more powerful than themselves.
pub async fn may_act_on(
    state: &Services,
    access: &OrgAccess<'_>,
    target: &Member,
) -> Result<(), ServiceError> {
    let theirs = role_permissions(state, access.org.id, &target.roles).await?;
    access.may_grant(theirs, "this change")
}

/// Removes a member. The owner is not removed (ownership moves first), and nobody removes
/// someone more powerful than themselves.
pub async fn remove(state: &Services, access: &OrgAccess<'_>, id: i64) -> Result<(), ServiceError> {
    access.require(Permission::MembersManage)?;
    let target = get(state, access, id).await?;
    if target.is_owner() {
        return Err(ServiceError::Conflict {
            code: "owner_protected",
            detail: "the owner cannot be removed; transfer ownership first".into(),
        });
    }
    may_act_on(state, access, &target).await?;
    let entry = audit::on_org(access, "member.removed", Target::new("member", target.id))
        .diff(Some(&target), None);
    audit::record(
        vec![entry],
        state.store.remove_member(access.org.id, target.id),
    )
    .await?;
    tracing::info!(organization_id = %access.org.id, member_id = target.id, actor = %access.principal.actor(), "member removed");
    Ok(())
}

/// Makes member `to` the owner. Only the owner, or those above it (the platform, the partner
/// of a child), may; the caller checks that before the body is judged.
pub async fn transfer_ownership(
    state: &Services,
    access: &OrgAccess<'_>,
    to: i64,
) -> Result<Organization, ServiceError> {
    if !access.is_owner_or_platform() {
        return Err(ServiceError::Forbidden(
            "only the owner or the platform may transfer ownership".into(),
        ));
    }
    let org = access.org.id;
    let new_owner = match state.store.get_member(org, to).await {
        Ok(m) => m,
        Err(StoreError::NotFound) => {
            return Err(ServiceError::field(
                "memberId",
                "unknown_member",
                "no such member of this organization",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let entry = audit::on_org(
        access,
        "organization.ownership_transferred",
        Target::new("organization", org),
    )
    .field(
        "owner",
        serde_json::json!(access.org.owner),
        serde_json::json!(new_owner.user_id),
    );
    let updated =
        audit::record(vec![entry], state.store.transfer_ownership(org, to, now())).await?;
    tracing::info!(organization_id = %org, to_member = to, actor = %access.principal.actor(), "ownership transferred");
    Ok(updated)
}

/// Replaces a member's roles and workspaces (as given: checked here). The owner keeps the owner
/// role (ownership moves only by transfer), and nobody grants roles beyond their own or changes
/// someone more powerful than themselves.
pub async fn update(
    state: &Services,
    access: &OrgAccess<'_>,
    target: Member,
    roles: Option<Vec<i64>>,
    workspaces: Option<Vec<String>>,
    mut errors: ValidationErrors,
) -> Result<Member, ServiceError> {
    access.require(Permission::MembersManage)?;
    let org = access.org.id;
    let roles = checked_roles(state, org, "roles", roles, target.is_owner(), &mut errors).await?;
    if let Some(r) = &roles {
        if target.is_owner() && !r.contains(&ROLE_OWNER) {
            return Err(ServiceError::Conflict {
                code: "owner_protected",
                detail: "the owner cannot be demoted; transfer ownership first".into(),
            });
        }
    }
    let workspaces = match workspaces {
        Some(ws) => {
            let mut ids = Vec::with_capacity(ws.len());
            let mut bad = Vec::new();
            for w in ws {
                match w.parse::<Uuid>() {
                    Ok(u) => ids.push(u),
                    Err(_) => bad.push(w),
                }
            }
            ids.sort_unstable();
            ids.dedup();
            let known: Vec<Uuid> = state
                .store
                .list_workspaces(org)
                .await?
                .into_iter()
                .map(|w| w.id)
                .collect();
            bad.extend(
                ids.iter()
                    .filter(|u| !known.contains(u))
                    .map(|u| u.to_string()),
            );
            if bad.is_empty() {
                Some(ids)
            } else {
                errors.add(
                    "workspaces",
                    "unknown_workspace",
                    format!("no such workspace in this organization: {}", bad.join(", ")),
                );
                None
            }
        }
        None => None,
    };
    errors.clone().into_result()?;
    let (Some(roles), Some(workspaces)) = (roles, workspaces) else {
        return Err(errors.into());
    };
    may_act_on(state, access, &target).await?;
    let granted = role_permissions(state, org, &roles).await?;
    access.may_grant(granted, "roles")?;
    let next = Member {
        roles: roles.clone(),
        workspaces: workspaces.clone(),
        ..target.clone()
    };
    let entry = audit::on_org(access, "member.updated", Target::new("member", target.id))
        .diff(Some(&target), Some(&next));
    let updated = state
        .store
        .update_member(org, target.id, &roles, &workspaces, now());
    let m = match audit::record(vec![entry], updated).await {
        Err(orgbase_store::StoreError::Conflict {
            constraint: "foreign_key",
        }) => {
            return Err(ServiceError::field(
                "workspaces",
                "unknown_workspace",
                "a workspace was deleted meanwhile",
            ))
        }
        other => other?,
    };
    tracing::info!(organization_id = %org, member_id = m.id, actor = %access.principal.actor(), "member updated");
    Ok(m)
}
