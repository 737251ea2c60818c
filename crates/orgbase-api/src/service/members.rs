//! Members of an organization: who may change whom, and the owner's protection.
use orgbase_domain::{now, Member, Organization, Permission};
use orgbase_store::StoreError;

use crate::auth::{role_permissions, OrgAccess};
use crate::error::ApiError;
use crate::AppState;

/// A member of the organization.
pub async fn get(state: &AppState, access: &OrgAccess<'_>, id: i64) -> Result<Member, ApiError> {
    Ok(state.store.get_member(access.org.id, id).await?)
}

/// The caller may act on `target` only if it holds every permission the target holds: nobody
/// changes someone more powerful than themselves.
pub async fn may_act_on(
    state: &AppState,
    access: &OrgAccess<'_>,
    target: &Member,
) -> Result<(), ApiError> {
    let theirs = role_permissions(state, access.org.id, &target.roles).await?;
    access.may_grant(theirs, "this change")
}

/// Removes a member. The owner is not removed (ownership moves first), and nobody removes
/// someone more powerful than themselves.
pub async fn remove(state: &AppState, access: &OrgAccess<'_>, id: i64) -> Result<(), ApiError> {
    access.require(Permission::MembersManage)?;
    let target = get(state, access, id).await?;
    if target.is_owner() {
        return Err(ApiError::Conflict {
            code: "owner_protected",
            detail: "the owner cannot be removed; transfer ownership first".into(),
        });
    }
    may_act_on(state, access, &target).await?;
    state.store.remove_member(access.org.id, target.id).await?;
    tracing::info!(organization_id = %access.org.id, member_id = target.id, actor = %access.principal.actor(), "member removed");
    Ok(())
}

/// Makes member `to` the owner. Only the owner, or those above it (the platform, the partner
/// of a child), may; the caller checks that before the body is judged.
pub async fn transfer_ownership(
    state: &AppState,
    access: &OrgAccess<'_>,
    to: i64,
) -> Result<Organization, ApiError> {
    if !access.is_owner_or_platform() {
        return Err(ApiError::Forbidden(
            "only the owner or the platform may transfer ownership".into(),
        ));
    }
    let org = access.org.id;
    match state.store.get_member(org, to).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            return Err(ApiError::field(
                "memberId",
                "unknown_member",
                "no such member of this organization",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let updated = state.store.transfer_ownership(org, to, now()).await?;
    tracing::info!(organization_id = %org, to_member = to, actor = %access.principal.actor(), "ownership transferred");
    Ok(updated)
}
