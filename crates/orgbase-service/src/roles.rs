//! Roles named in a change: known in the organization, and never the owner role.
use orgbase_domain::people::{system_role, system_roles, FIRST_CUSTOM_ROLE_ID, ROLE_OWNER};
use orgbase_domain::{
    now, OrganizationId, Permission, Permissions, Role, Target, ValidationErrors,
};
use orgbase_store::NewRole;

use super::audit;
use crate::access::OrgAccess;
use crate::{ServiceError, Services};

/// The roles usable in the organization: the system roles, then its own.
pub async fn list(state: &Services, access: &OrgAccess<'_>) -> Result<Vec<Role>, ServiceError> {
    access.require(Permission::OrgRead)?;
    let mut roles = system_roles();
    roles.extend(state.store.list_roles(access.org.id).await?);
    Ok(roles)
}

/// A system role, or one of the organization's own.
pub async fn get(state: &Services, access: &OrgAccess<'_>, id: i64) -> Result<Role, ServiceError> {
    access.require(Permission::OrgRead)?;
    if id < FIRST_CUSTOM_ROLE_ID {
        return system_role(id).ok_or(ServiceError::NotFound);
    }
    Ok(state.store.get_role(access.org.id, id).await?)
}

/// Makes a custom role; nobody grants what they lack.
pub async fn create(
    state: &Services,
    access: &OrgAccess<'_>,
    name: String,
    description: Option<String>,
    permissions: Permissions,
) -> Result<Role, ServiceError> {
    access.require(Permission::RolesManage)?;
    access.may_grant(permissions, "permissions")?;
    let new = NewRole {
        organization_id: access.org.id,
        name,
        description,
        permissions,
        at: now(),
    };
    // The role's id is the database's: the store gives it to the entry.
    let entry = audit::on_org(access, "role.created", Target::new("role", "")).diff(
        None,
        Some(&Role {
            id: 0,
            organization_id: Some(new.organization_id),
            name: new.name.clone(),
            description: new.description.clone(),
            permissions: new.permissions,
            created_at: Some(new.at),
            updated_at: Some(new.at),
        }),
    );
    let role = audit::record(vec![entry], state.store.insert_role(&new)).await?;
    tracing::info!(organization_id = %access.org.id, role_id = role.id, actor = %access.principal.actor(), "role created");
    Ok(role)
}

/// What a change of a custom role names; `None` leaves a field as it is.
pub struct RoleChange {
    pub name: Option<String>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
    pub permissions: Option<Permissions>,
}

/// Changes a custom role. System roles do not change; changing a role changes what its holders
/// may do, so the caller must hold what it had and what it will have.
pub async fn update(
    state: &Services,
    access: &OrgAccess<'_>,
    current: Role,
    change: RoleChange,
) -> Result<Role, ServiceError> {
    access.require(Permission::RolesManage)?;
    if current.is_system() {
        return Err(ServiceError::Forbidden(
            "system roles cannot be changed".into(),
        ));
    }
    access.may_grant(current.permissions, "this role")?;
    let mut next = current.clone();
    if let Some(n) = change.name {
        next.name = n;
    }
    if let Some(d) = change.description {
        next.description = d.filter(|d| !d.is_empty());
    }
    if let Some(p) = change.permissions {
        access.may_grant(p, "permissions")?;
        next.permissions = p;
    }
    if next != current {
        next.updated_at = Some(now());
        let entry = audit::on_org(access, "role.updated", Target::new("role", next.id))
            .diff(Some(&current), Some(&next));
        audit::record(vec![entry], state.store.update_role(&next)).await?;
        tracing::info!(organization_id = %access.org.id, role_id = next.id, actor = %access.principal.actor(), "role updated");
    }
    Ok(next)
}

/// Deletes a custom role that nobody holds.
pub async fn delete(state: &Services, access: &OrgAccess<'_>, id: i64) -> Result<(), ServiceError> {
    access.require(Permission::RolesManage)?;
    let current = get(state, access, id).await?;
    if current.is_system() {
        return Err(ServiceError::Forbidden(
            "system roles cannot be deleted".into(),
        ));
    }
    access.may_grant(current.permissions, "this role")?;
    let entry = audit::on_org(access, "role.deleted", Target::new("role", current.id))
        .diff(Some(&current), None);
    audit::record(
        vec![entry],
        state.store.delete_role(access.org.id, current.id),
    )
    .await?;
    tracing::info!(organization_id = %access.org.id, role_id = current.id, actor = %access.principal.actor(), "role deleted");
    Ok(())
}

/// Checks role ids against this organization: system roles, or its own custom roles. Answers
/// the unknown ones.
pub async fn unknown_roles(
    state: &Services,
    org: OrganizationId,
    roles: &[i64],
) -> Result<Vec<i64>, ServiceError> {
    let custom: Vec<i64> = if roles.iter().any(|r| *r >= FIRST_CUSTOM_ROLE_ID) {
        state
            .store
            .list_roles(org)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect()
    } else {
        Vec::new()
    };
    Ok(roles
        .iter()
        .copied()
        .filter(|r| !((1..=5).contains(r) || custom.contains(r)))
        .collect())
}

/// Parses, dedupes and checks role ids given in `field`: known here, and not the owner role
/// (ownership moves only by transfer).
pub async fn checked_roles(
    state: &Services,
    org: OrganizationId,
    field: &str,
    roles: Option<Vec<i64>>,
    keep_owner: bool,
    errors: &mut ValidationErrors,
) -> Result<Option<Vec<i64>>, ServiceError> {
    let Some(mut roles) = roles else {
        return Ok(None);
    };
    roles.sort_unstable();
    roles.dedup();
    if roles.is_empty() {
        errors.add(field, "required", "must name at least one role");
        return Ok(None);
    }
    if roles.contains(&ROLE_OWNER) && !keep_owner {
        errors.add(
            field,
            "owner_role",
            "the owner role (1) moves only by an ownership transfer",
        );
        return Ok(None);
    }
    let unknown = unknown_roles(state, org, &roles).await?;
    if !unknown.is_empty() {
        errors.add(
            field,
            "unknown_role",
            format!(
                "no such role in this organization: {}",
                unknown
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return Ok(None);
    }
    Ok(Some(roles))
}
