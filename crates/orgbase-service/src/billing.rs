//! Billing: checkout for a plan at the provider that bills it, and the organization's account.
use orgbase_billing::{idempotency_key, CheckoutRequest, CheckoutSession, CustomerRef};
use orgbase_domain::{Permission, Target, ValidationErrors};
use orgbase_store::{BillingAccount, StoreError};
use serde_json::Value;

use super::audit;
use crate::access::OrgAccess;
use crate::{ServiceError, Services};

/// The organization's account with its billing provider, if it has one.
pub async fn account(
    state: &Services,
    access: &OrgAccess<'_>,
) -> Result<Option<BillingAccount>, ServiceError> {
    access.require(Permission::BillingManage)?;
    Ok(state.store.get_billing_account(access.org.id).await?)
}

/// Starts a checkout of `plan_id` (a public plan, or the one offered to the organization) at
/// the provider that bills it, for an organization without a live subscription. `errors` holds
/// what parsing the body found.
pub async fn checkout(
    state: &Services,
    access: &OrgAccess<'_>,
    plan_id: Option<String>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    mut errors: ValidationErrors,
) -> Result<CheckoutSession, ServiceError> {
    access.require(Permission::BillingManage)?;
    let org = &access.org;
    if let Some(sub) = org.subscription.as_ref().filter(|s| s.is_live()) {
        // A second checkout would make a second subscription billing beside the first.
        return Err(ServiceError::Conflict {
            code: "already_subscribed",
            detail: format!(
                "the organization has a live {} subscription: change its plan instead \
                 (productPlanId)",
                sub.provider.as_str()
            ),
        });
    }
    let plan = match plan_id {
        Some(pid) => match state.store.get_plan(&pid).await {
            Ok(p) => Some(p),
            Err(StoreError::NotFound) => {
                errors.add("planId", "unknown_plan", "no such plan");
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let mut billed = None;
    if let Some(plan) = &plan {
        let offered = org.offered_product_plan_id.as_deref() == Some(plan.id.as_str());
        if !plan.public && !offered {
            errors.add(
                "planId",
                "plan_not_offered",
                "a private plan is checked out only once it is offered to this organization",
            );
        } else {
            match (plan.provider, plan.provider_price_id.as_deref()) {
                (Some(provider), Some(price)) => match state.billing.client(provider) {
                    Ok(client) => billed = Some((client.clone(), price.to_owned())),
                    Err(e) => errors.add("planId", "provider_not_configured", e.to_string()),
                },
                _ => errors.add(
                    "planId",
                    "plan_not_billed",
                    "this plan is not billed through a provider: there is nothing to check out",
                ),
            }
        }
    }
    errors.into_result()?;
    let (Some(plan), Some((client, price_id)), Some(success_url), Some(cancel_url)) =
        (plan, billed, success_url, cancel_url)
    else {
        return Err(ServiceError::internal("checkout input checked"));
    };
    let provider = client.provider();
    let upstream = |e: orgbase_billing::BillingError| {
        tracing::warn!(organization_id = %org.id, error = %e, "checkout: the billing provider failed");
        ServiceError::Upstream {
            code: "billing_provider_error",
            detail: e.public_detail(),
        }
    };

    // The customer: made once per organization (the key makes a retried creation the same one).
    let customer_id = match state.store.get_billing_account(org.id).await? {
        Some(a) if a.provider == provider && !a.customer_id.is_empty() => a.customer_id,
        _ => {
            let made = client
                .ensure_customer(
                    &CustomerRef {
                        organization_id: org.id,
                        name: org.name.clone(),
                        email: None,
                        existing_customer_id: None,
                    },
                    &idempotency_key(&["customer", provider.as_str(), &org.id.to_string()]),
                )
                .await
                .map_err(upstream)?;
            state
                .store
                .attach_billing_customer(org.id, provider, &made)
                .await?
                .customer_id
        }
    };
    let request = CheckoutRequest {
        customer_id,
        price_id,
        organization_id: org.id,
        plan_id: plan.id.clone(),
        success_url,
        cancel_url,
    };
    // The same checkout asked for again (a retry) is the same session.
    let key = idempotency_key(&[
        "checkout",
        &org.id.to_string(),
        &plan.id,
        &request.price_id,
        &request.customer_id,
        &request.success_url,
        &request.cancel_url,
        &org.version.to_string(),
    ]);
    let session = client
        .create_checkout(&request, &key)
        .await
        .map_err(upstream)?;
    // The change is at the provider: its record here is the entry alone.
    let entry = audit::on_org(
        access,
        "billing.checkout_started",
        Target::new("organization", org.id),
    )
    .field("planId", Value::Null, Value::from(plan.id.as_str()))
    .field(
        "checkoutSessionId",
        Value::Null,
        Value::from(session.id.as_str()),
    )
    .field(
        "customerId",
        Value::Null,
        Value::from(request.customer_id.as_str()),
    );
    state.store.append_audit_entries(&[entry]).await?;
    Ok(session)
}
