//! Billing routes: checkout for a plan, the organization's billing state, and the provider's
//! signed webhooks.
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use orgbase_billing::WebhookError;
use orgbase_domain::{now, BillingProvider, Permission, ValidationErrors};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::billing::{apply_event, Outcome};
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::extract::{Field, JsonBody};
use crate::native::views::rfc3339;
use crate::{service, AppState};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckoutInput {
    /// A public plan, or the plan offered to this organization, billed through a provider.
    #[schema(required = true, value_type = String, example = "pro")]
    pub plan_id: Field<String>,
    /// Where the customer's browser goes after paying (`https`, or `http` for local use).
    #[schema(required = true, value_type = String, max_length = 2048, example = "https://app.example.com/billing/done")]
    pub success_url: Field<String>,
    /// Where it goes when the customer gives up.
    #[schema(required = true, value_type = String, max_length = 2048, example = "https://app.example.com/billing")]
    pub cancel_url: Field<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutAnswer {
    /// The provider's checkout session.
    pub session_id: String,
    /// Send the customer's browser here.
    pub url: String,
}

/// An organization's billing state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingView {
    pub plan_id: String,
    pub offered_plan_id: Option<String>,
    /// `stripe` or `chargebee`, once there is a subscription or a customer.
    pub provider: Option<String>,
    pub subscription_id: Option<String>,
    /// The provider's status (`active`, `trialing`, `past_due`, `canceled`, …).
    pub status: Option<String>,
    /// RFC 3339.
    pub current_period_end: Option<String>,
    pub overdue: bool,
    pub premium: bool,
}

fn url_field(name: &str, f: Field<String>, errors: &mut ValidationErrors) -> Option<String> {
    let raw = f.required(name, errors)?;
    errors.check(orgbase_domain::organization::parse_web_url(
        name, &raw, true,
    ))
}

/// Open a checkout for a plan.
///
/// For a public plan or the plan offered to this organization, billed through a provider. The
/// organization's customer at the provider is made once and reused. The organization changes
/// when the provider's webhook says the checkout completed.
#[utoipa::path(
    post, path = "/api/organizations/{organizationId}/billing/checkout", operation_id = "createCheckout", tag = "Billing",
    params(("organizationId" = uuid::Uuid, Path, description = "The organization ID")),
    request_body = CheckoutInput,
    responses(
        (status = 201, description = "A checkout to send the customer to", body = CheckoutAnswer),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs billing:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a plan this organization cannot check out", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The billing provider failed; nothing changed here", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn checkout(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body, mut errors): JsonBody<CheckoutInput>,
) -> Result<Response, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::BillingManage).await?;
    let plan_id = body.plan_id.required("planId", &mut errors);
    let success_url = url_field("successUrl", body.success_url, &mut errors);
    let cancel_url = url_field("cancelUrl", body.cancel_url, &mut errors);
    let session =
        service::billing::checkout(&state, &access, plan_id, success_url, cancel_url, errors)
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(CheckoutAnswer {
            session_id: session.id,
            url: session.url,
        }),
    )
        .into_response())
}

/// An organization's billing state.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/billing", operation_id = "getBilling", tag = "Billing",
    params(("organizationId" = uuid::Uuid, Path, description = "The organization ID")),
    responses(
        (status = 200, description = "Plan, offered plan, subscription and overdue state", body = BillingView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs billing:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<BillingView>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::BillingManage).await?;
    let account = service::billing::account(&state, &access).await?;
    let org = access.org;
    let sub = org.subscription.as_ref();
    Ok(Json(BillingView {
        plan_id: org.product_plan_id.clone(),
        offered_plan_id: org.offered_product_plan_id.clone(),
        provider: sub
            .map(|s| s.provider)
            .or(account.as_ref().map(|a| a.provider))
            .map(|p| p.as_str().to_owned()),
        subscription_id: sub.map(|s| s.id.clone()),
        status: sub.map(|s| s.status.clone()),
        current_period_end: account
            .as_ref()
            .and_then(|a| a.current_period_end)
            .map(|t| rfc3339(&t)),
        overdue: org.billing_overdue,
        premium: org.premium,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    pub received: bool,
    /// True when this event was applied before (a redelivery): nothing was done now.
    pub duplicate: bool,
}

/// Stripe's webhook deliveries.
///
/// Give Stripe `{ORGBASE_PUBLIC_URL}/api/billing/webhooks/stripe`. The `Stripe-Signature`
/// header authenticates a delivery (HMAC-SHA256 with the endpoint's signing secret, at most
/// 5 minutes old); each event id is applied once.
#[utoipa::path(
    post, path = "/api/billing/webhooks/stripe", operation_id = "receiveStripeWebhook", tag = "Billing",
    params(("Stripe-Signature" = String, Header, description = "t=…,v1=…")),
    request_body(content = Object, description = "A Stripe event"),
    responses(
        (status = 200, description = "Received (applied now, or before)", body = WebhookAnswer),
        (status = 400, description = "A missing, bad or stale signature, or not an event; nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Stripe is not configured here", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    receive(&state, BillingProvider::Stripe, &headers, &body).await
}

/// Chargebee's webhook deliveries.
///
/// Give Chargebee `{ORGBASE_PUBLIC_URL}/api/billing/webhooks/chargebee`, with "Protect webhook
/// URL with basic authentication" set to `ORGBASE_CHARGEBEE_WEBHOOK_USERNAME` / `_PASSWORD`,
/// and API version v2. Chargebee signs nothing: besides the Basic auth, each event is re-fetched
/// by its id from Chargebee's events API, and what is applied is that answer, never the body.
/// Each event id is applied once; a subscription's `resource_version` orders its events.
#[utoipa::path(
    post, path = "/api/billing/webhooks/chargebee", operation_id = "receiveChargebeeWebhook", tag = "Billing",
    request_body(content = Object, description = "A Chargebee event (API version v2)"),
    responses(
        (status = 200, description = "Received (applied now, or before)", body = WebhookAnswer),
        (status = 400, description = "Not an event, or one Chargebee does not confirm (unknown id, another type); nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong Basic auth (`invalid_credentials`); nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Chargebee is not configured here", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Chargebee could not be asked to confirm the event; it delivers again later", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn chargebee_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    receive(&state, BillingProvider::Chargebee, &headers, &body).await
}

/// A provider's delivery: verified by its client, then applied once.
async fn receive(
    state: &AppState,
    provider: BillingProvider,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<WebhookAnswer>, ApiError> {
    let client = state
        .billing
        .client(provider)
        .map_err(|_| ApiError::NotFound)?;
    let signature = headers
        .get(client.webhook_signature_header())
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let event = client
        .verify_webhook(body, signature, now())
        .await
        .map_err(|e| match e {
            WebhookError::NotConfigured => ApiError::NotFound,
            WebhookError::Unauthorized => ApiError::Unauthorized {
                code: "invalid_credentials",
                detail: "the webhook's credentials are wrong",
            },
            WebhookError::ProviderUnavailable(why) => {
                tracing::warn!(provider = provider.as_str(), %why, "a webhook could not be confirmed");
                ApiError::Unavailable
            }
            e => ApiError::BadRequest {
                code: "invalid_webhook",
                detail: format!("the webhook was refused: {e}"),
            },
        })?;
    let outcome = apply_event(state, provider, &event).await?;
    Ok(Json(WebhookAnswer {
        received: true,
        duplicate: outcome == Outcome::Duplicate,
    }))
}
