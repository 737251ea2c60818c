//! Product plans: the platform manages them; anyone may read the public ones.
use orgbase_domain::{now, Plan, Target, DEFAULT_PLAN};
use orgbase_store::StoreError;

use super::audit;
use crate::auth::PlatformAdmin;
use crate::error::ApiError;
use crate::AppState;

/// Every plan, cheapest first.
pub async fn list_all(state: &AppState, _admin: &PlatformAdmin) -> Result<Vec<Plan>, ApiError> {
    Ok(state.store.list_plans(false).await?)
}

/// The public plans, cheapest first: for anyone (a pricing page needs no credential).
pub async fn list_public(state: &AppState) -> Result<Vec<Plan>, ApiError> {
    Ok(state.store.list_plans(true).await?)
}

pub async fn get(state: &AppState, _admin: &PlatformAdmin, id: &str) -> Result<Plan, ApiError> {
    Ok(state.store.get_plan(id).await?)
}

pub async fn create(state: &AppState, admin: &PlatformAdmin, plan: &Plan) -> Result<(), ApiError> {
    let entry = audit::entry(
        admin.audit_actor(),
        None,
        "plan.created",
        Target::new("plan", &plan.id),
    )
    .diff(None, Some(plan));
    audit::record(vec![entry], state.store.insert_plan(plan))
        .await
        .map_err(plan_error)?;
    tracing::info!(plan_id = %plan.id, actor = %admin.actor(), "plan created");
    Ok(())
}

/// Stores `next` over `current` when it differs; answers what is stored.
pub async fn update(
    state: &AppState,
    admin: &PlatformAdmin,
    current: &Plan,
    mut next: Plan,
) -> Result<Plan, ApiError> {
    if next != *current {
        next.updated_at = now();
        let entry = audit::entry(
            admin.audit_actor(),
            None,
            "plan.updated",
            Target::new("plan", &next.id),
        )
        .diff(Some(current), Some(&next));
        audit::record(vec![entry], state.store.update_plan(&next)).await?;
        tracing::info!(plan_id = %next.id, actor = %admin.actor(), "plan updated");
    }
    Ok(next)
}

/// Deletes a plan nobody is on; `starter`, every new organization's plan, stays.
pub async fn delete(state: &AppState, admin: &PlatformAdmin, id: &str) -> Result<(), ApiError> {
    if id == DEFAULT_PLAN {
        return Err(ApiError::Conflict {
            code: "default_plan",
            detail: "starter is every new organization's plan and cannot be deleted".into(),
        });
    }
    let current = state.store.get_plan(id).await?;
    let entry = audit::entry(
        admin.audit_actor(),
        None,
        "plan.deleted",
        Target::new("plan", id),
    )
    .diff(Some(&current), None);
    audit::record(vec![entry], state.store.delete_plan(id))
        .await
        .map_err(plan_error)?;
    tracing::info!(plan_id = %id, actor = %admin.actor(), "plan deleted");
    Ok(())
}

fn plan_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict {
            constraint: "plan_id",
        } => ApiError::Conflict {
            code: "plan_exists",
            detail: "a plan with this id exists".into(),
        },
        StoreError::Conflict {
            constraint: "plan_in_use",
        } => ApiError::Conflict {
            code: "plan_in_use",
            detail: "organizations are on this plan or have it offered".into(),
        },
        other => other.into(),
    }
}
