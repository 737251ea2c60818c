//! Roles named in a change: known in the organization, and never the owner role.
use orgbase_domain::people::{FIRST_CUSTOM_ROLE_ID, ROLE_OWNER};
use orgbase_domain::{OrganizationId, ValidationErrors};

use crate::error::ApiError;
use crate::AppState;

/// Checks role ids against this organization: system roles, or its own custom roles. Answers
/// the unknown ones.
pub async fn unknown_roles(
    state: &AppState,
    org: OrganizationId,
    roles: &[i64],
) -> Result<Vec<i64>, ApiError> {
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
    state: &AppState,
    org: OrganizationId,
    field: &str,
    roles: Option<Vec<i64>>,
    keep_owner: bool,
    errors: &mut ValidationErrors,
) -> Result<Option<Vec<i64>>, ApiError> {
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
