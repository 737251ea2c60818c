//! Product plans: the platform manages them; anyone may read the public ones.
use orgbase_domain::{now, Plan, Target, DEFAULT_PLAN};
use orgbase_store::StoreError;

use super::audit;
use crate::access::PlatformAdmin;
use crate::{ServiceError, Services};

/// Every plan, cheapest first.
pub async fn list_all(state: &Services, _admin: &PlatformAdmin) -> Result<Vec<Plan>, ServiceError> {
    Ok(state.store.list_plans(false).await?)
}

/// The public plans, cheapest first: for anyone (a pricing page needs no credential).
pub async fn list_public(state: &Services) -> Result<Vec<Plan>, ServiceError> {
    Ok(state.store.list_plans(true).await?)
}

pub async fn get(state: &Services, _admin: &PlatformAdmin, id: &str) -> Result<Plan, ServiceError> {
    Ok(state.store.get_plan(id).await?)
}

pub async fn create(
    state: &Services,
    admin: &PlatformAdmin,
    plan: &Plan,
) -> Result<(), ServiceError> {
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
    state: &Services,
    admin: &PlatformAdmin,
    current: &Plan,
    mut next: Plan,
) -> Result<Plan, ServiceError> {
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
pub async fn delete(state: &Services, admin: &PlatformAdmin, id: &str) -> Result<(), ServiceError> {
    if id == DEFAULT_PLAN {
        return Err(ServiceError::Conflict {
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

fn plan_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict {
            constraint: "plan_id",
        } => ServiceError::Conflict {
            code: "plan_exists",
            detail: "a plan with this id exists".into(),
        },
        StoreError::Conflict {
            constraint: "plan_in_use",
        } => ServiceError::Conflict {
            code: "plan_in_use",
            detail: "organizations are on this plan or have it offered".into(),
        },
        other => other.into(),
    }
}
