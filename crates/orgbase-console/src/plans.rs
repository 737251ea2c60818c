//! An organization's plan and offered plan on its page: shown to everyone who may read it, and
//! changed by those who may (the platform; a partner for its children) through the API's
//! organization update, so its rules apply: the plan must exist, a provider's plan changes at
//! the provider first, and taking the offered plan clears the offer.
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::service::access::OrgAccess;
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::{OrganizationPatch, ValidationErrors};
use serde::Deserialize;

use crate::organizations::{org_id, refused_page, Refused};
use crate::session::{self, Console};
use crate::views::PlanSection;
use crate::PageError;

/// The plan forms, for those who may change the plan: every plan for the platform, the public
/// ones for a partner.
pub(crate) async fn section(
    state: &AppState,
    access: &OrgAccess<'_>,
) -> Result<Option<PlanSection>, ServiceError> {
    let may_change =
        (access.is_platform() || access.is_parent_partner()) && !access.org.is_deleted();
    if !may_change {
        return Ok(None);
    }
    let plans = match access.principal.platform() {
        Ok(admin) => service::plans::list_all(state, &admin).await?,
        Err(_) => service::plans::list_public(state).await?,
    };
    let org = &access.org;
    let option = |p: &orgbase_domain::Plan, chosen: bool| {
        let billed = p
            .provider
            .map(|b| format!(", billed through {}", b.as_str()))
            .unwrap_or_default();
        (
            p.id.clone(),
            format!(
                "{}: {} {} (minor units) a {}{billed}",
                p.name,
                p.price,
                p.currency,
                p.interval.as_str()
            ),
            chosen,
        )
    };
    Ok(Some(PlanSection {
        plans: plans
            .iter()
            .map(|p| option(p, p.id == org.product_plan_id))
            .collect(),
        offers: plans
            .iter()
            .map(|p| option(p, Some(&p.id) == org.offered_product_plan_id.as_ref()))
            .collect(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct PlanForm {
    csrf: Option<String>,
    #[serde(default)]
    plan: String,
}

/// Sets the plan (`plan`) or the offered plan (`offer`; an empty choice withdraws the offer).
pub(crate) async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<PlanForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let plan = form.plan.trim().to_owned();
    let patch = match action.as_str() {
        "plan" => OrganizationPatch {
            product_plan_id: Some(plan),
            ..OrganizationPatch::default()
        },
        "offer" => OrganizationPatch {
            offered_product_plan_id: Some((!plan.is_empty()).then_some(plan)),
            ..OrganizationPatch::default()
        },
        _ => return Err(ServiceError::NotFound.into()),
    };
    match service::organizations::update(&state, &who.principal, id, patch, None).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/organizations/{id}")).into_response()),
        Err(ServiceError::Validation(errors)) => {
            refused_page(&state, &headers, &who, id, &errors, Refused::Plan).await
        }
        Err(ServiceError::Upstream { detail, .. }) => {
            let errors =
                ValidationErrors::single("productPlanId", "billing_provider_error", detail);
            refused_page(&state, &headers, &who, id, &errors, Refused::Plan).await
        }
        Err(e) => Err(e.into()),
    }
}
