//! Orgbase's billing providers.
//!
//! The services talk to a provider only through [`BillingClient`], in Orgbase's own terms
//! (organization ids, plan ids, a provider's price id), so a second provider (Chargebee) is one
//! more implementation and no caller changes. [`StripeClient`] is the first: a small client for
//! the handful of Stripe calls Orgbase makes, over Stripe's documented form-encoded API, rather
//! than a full Stripe SDK crate whose generated types cost minutes of build time for calls we
//! never make.
//!
//! Every call that changes something at the provider takes an idempotency key. Derive it from
//! what the call does ([`idempotency_key`]), never from a fresh random value: then a retry after
//! a crash or a timeout repeats the same request, and the provider answers it with the first
//! result instead of subscribing or charging twice.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::{BillingProvider, OrganizationId, Subscription};
use sha2::{Digest, Sha256};

pub mod chargebee;
mod error;
pub mod stripe;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;

pub use chargebee::{ChargebeeClient, ChargebeeConfig};
pub use error::{BillingError, WebhookError};
pub use stripe::webhook::sign_webhook;
pub use stripe::{StripeClient, StripeConfig, STRIPE_VERSION};

/// One billing provider's API, as the services use it.
#[async_trait]
pub trait BillingClient: Send + Sync + 'static {
    /// Which provider this is, so a registry can hold one client per provider and a plan's
    /// `provider` picks the client.
    fn provider(&self) -> BillingProvider;

    /// The provider's customer for an organization: `existing_customer_id` when it still exists
    /// there, otherwise a new one. The caller stores the answer and passes it back next time, so
    /// an organization has one customer for its life.
    async fn ensure_customer(
        &self,
        customer: &CustomerRef,
        idempotency_key: &str,
    ) -> Result<String, BillingError>;

    /// Opens a hosted checkout that subscribes `customer_id` to `price_id`. The organization
    /// learns of the result from the webhooks, not from this answer.
    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<CheckoutSession, BillingError>;

    /// Moves a subscription to another price (with proration). Answers the subscription as the
    /// provider now has it; a subscription already on `new_price_id` is left alone.
    async fn change_plan(
        &self,
        subscription_id: &str,
        new_price_id: &str,
        idempotency_key: &str,
    ) -> Result<SubscriptionState, BillingError>;

    /// Cancels a subscription now. Cancelling one that is already cancelled answers its state
    /// rather than an error, so a retry is harmless.
    async fn cancel(
        &self,
        subscription_id: &str,
        idempotency_key: &str,
    ) -> Result<SubscriptionState, BillingError>;

    /// The subscription as the provider has it now.
    async fn fetch_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<SubscriptionState, BillingError>;

    /// The request header that authenticates a webhook delivery from this provider
    /// (`Stripe-Signature`), so one webhook route can serve every provider.
    fn webhook_signature_header(&self) -> &'static str;

    /// Verifies a webhook delivery against the raw body, then parses it. `signature_header` is
    /// the value of [`webhook_signature_header`](Self::webhook_signature_header), or "" when the
    /// request had none. `now` is a parameter so tests and replays can check the timestamp
    /// tolerance deterministically. Nothing may be acted on unless this answered `Ok`.
    fn parse_webhook(
        &self,
        payload: &[u8],
        signature_header: &str,
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError>;

    /// What the webhook route calls: [`parse_webhook`](Self::parse_webhook), where the
    /// signature proves the body (Stripe); a provider that signs nothing (Chargebee) also
    /// re-fetches the event from its API and reads it from there.
    async fn verify_webhook(
        &self,
        payload: &[u8],
        signature_header: &str,
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        self.parse_webhook(payload, signature_header, now)
    }
}

/// An organization as a billing customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRef {
    pub organization_id: OrganizationId,
    /// Shown on the provider's invoices and dashboard.
    pub name: String,
    /// Where the provider sends receipts, when the organization has a billing address.
    pub email: Option<String>,
    /// The customer id stored from an earlier call, if any.
    pub existing_customer_id: Option<String>,
}

/// What a checkout subscribes to and where the customer's browser goes afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub customer_id: String,
    /// The plan's `provider_price_id`.
    pub price_id: String,
    /// Carried on the session and the subscription it creates, so the webhooks name the
    /// organization without a lookup by customer.
    pub organization_id: OrganizationId,
    /// Orgbase's plan id, carried in the session's metadata for the completion webhook.
    pub plan_id: String,
    pub success_url: String,
    pub cancel_url: String,
}

/// A checkout the customer's browser is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

/// A subscription as the provider reported it at `as_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub provider: BillingProvider,
    pub id: String,
    pub customer_id: String,
    /// The provider's status (`active`, `trialing`, `past_due`, `canceled`, …).
    pub status: String,
    /// The price of the subscription's first item: which plan it is on.
    pub price_id: Option<String>,
    /// The first item's id, which a plan change names.
    pub item_id: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    /// From the subscription's metadata, set at checkout.
    pub organization_id: Option<OrganizationId>,
    /// When the subscription was created at the provider.
    pub created: DateTime<Utc>,
    /// When the provider's view was taken: the event's `created` for a webhook, the time of the
    /// answer for an API call. Webhooks arrive out of order; a state whose `as_of` is older than
    /// the one stored must not replace it.
    pub as_of: DateTime<Utc>,
}

impl SubscriptionState {
    /// The provider will not bring this subscription back: a later "updated" for it is stale.
    pub fn is_ended(&self) -> bool {
        ended_status(&self.status)
    }

    /// Whether this state should replace `stored`, given webhooks arrive out of order: an older
    /// view never does, and nothing revives an ended subscription. At the same second (the
    /// providers' timestamps have no finer grain), the one that arrived later wins.
    pub fn supersedes(&self, stored: &SubscriptionState) -> bool {
        if self.id == stored.id && stored.is_ended() && !self.is_ended() {
            return false;
        }
        self.as_of >= stored.as_of
    }

    /// The domain's view, which is what an organization stores.
    pub fn to_domain(&self) -> Subscription {
        Subscription {
            provider: self.provider,
            id: self.id.clone(),
            status: self.status.clone(),
        }
    }
}

/// A subscription status the provider never brings back: Stripe's `canceled` and
/// `incomplete_expired`, Chargebee's `cancelled` and `transferred`.
pub fn ended_status(status: &str) -> bool {
    matches!(
        status,
        "canceled" | "incomplete_expired" | "cancelled" | "transferred"
    )
}

/// A subscription status that is paid for and running: Stripe's `active`, `trialing` and
/// `past_due` (still retrying), Chargebee's `active`, `in_trial` and `non_renewing` (running to
/// the end of its term).
pub fn live_status(status: &str) -> bool {
    matches!(
        status,
        "active" | "trialing" | "past_due" | "in_trial" | "non_renewing"
    )
}

/// A verified webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The provider's event id: the same event may be delivered more than once, and is to be
    /// processed once.
    pub id: String,
    /// The provider's type name (`invoice.paid`).
    pub event_type: String,
    /// When the provider created the event; the ordering key between deliveries.
    pub created: DateTime<Utc>,
    /// False for test-mode events, which a production deployment may want to refuse.
    pub livemode: bool,
    pub kind: WebhookEventKind,
}

/// What a webhook event means to Orgbase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEventKind {
    CheckoutCompleted(CheckoutCompleted),
    SubscriptionCreated(SubscriptionState),
    SubscriptionUpdated(SubscriptionState),
    SubscriptionDeleted(SubscriptionState),
    InvoicePaid(InvoiceEvent),
    InvoicePaymentFailed(InvoiceEvent),
    /// Not one Orgbase acts on: acknowledge it and do nothing.
    Other {
        event_type: String,
    },
}

/// A completed checkout: which organization subscribed, and to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCompleted {
    pub session_id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    /// The organization id as the session carries it (`client_reference_id`).
    pub client_reference_id: Option<String>,
    /// From the session's metadata, else from `client_reference_id`.
    pub organization_id: Option<OrganizationId>,
    /// Orgbase's plan id from the session's metadata.
    pub plan_id: Option<String>,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: Option<String>,
}

/// A paid or failed invoice: what sets or clears an organization's overdue flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceEvent {
    pub invoice_id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    /// From the subscription's metadata as copied onto the invoice, else the invoice's own.
    pub organization_id: Option<OrganizationId>,
    pub status: Option<String>,
    pub created: Option<DateTime<Utc>>,
}

/// An idempotency key for a provider call, derived from what the call does: the same parts give
/// the same key, so a retry is recognised as one. Name the operation and what makes it unique,
/// for example `["checkout", org_id, plan_id, request_idempotency_key]`,
/// `["customer", org_id]`, `["change-plan", subscription_id, new_price_id, request_key]`. The
/// parts are hashed, which keeps the key within the providers' length limits and keeps ids out
/// of it.
pub fn idempotency_key<S: AsRef<str>>(parts: &[S]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        let part = part.as_ref().as_bytes();
        // Length-prefixed, so ["ab", "c"] and ["a", "bc"] differ.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    format!("orgbase-{}", hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_follow_their_parts() {
        let a = idempotency_key(&["checkout", "org", "pro"]);
        assert_eq!(a, idempotency_key(&["checkout", "org", "pro"]));
        assert_ne!(a, idempotency_key(&["checkout", "org", "team"]));
        assert_ne!(idempotency_key(&["ab", "c"]), idempotency_key(&["a", "bc"]));
        assert!(a.len() <= 255);
    }
}
