//! Chargebee's answers as this client reads them (API v2, product catalog 2.0): only the fields
//! Orgbase uses; every other field is ignored.
use chrono::{DateTime, TimeZone, Utc};
use orgbase_domain::{BillingProvider, OrganizationId};
use serde::Deserialize;

use crate::{BillingError, InvoiceEvent, SubscriptionState, WebhookEventKind};

/// `{"message", "type"?, "api_error_code", "param"?, …}`. Branch on `api_error_code`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub api_error_code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CustomerEnvelope {
    pub customer: Customer,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Customer {
    pub id: String,
    #[serde(default)]
    pub deleted: bool,
    /// Set by Orgbase at creation: `{"organization_id": "…"}`.
    pub meta_data: Option<serde_json::Value>,
}

impl Customer {
    /// The organization this customer is: its metadata, else its id (Orgbase names the
    /// customers it makes after their organization).
    fn organization_id(&self) -> Option<OrganizationId> {
        self.meta_data
            .as_ref()
            .and_then(|m| m.get("organization_id"))
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .or_else(|| self.id.parse().ok())
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct HostedPageEnvelope {
    pub hosted_page: HostedPage,
}

#[derive(Debug, Deserialize)]
pub(crate) struct HostedPage {
    pub id: String,
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SubscriptionEnvelope {
    pub subscription: Subscription,
    pub customer: Option<Customer>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Subscription {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    #[serde(default)]
    pub subscription_items: Vec<SubscriptionItem>,
    pub current_term_end: Option<i64>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// Milliseconds: changes with every change of the subscription, the ordering key Chargebee
    /// documents for its (unordered) webhooks.
    pub resource_version: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SubscriptionItem {
    pub item_price_id: String,
    pub item_type: Option<String>,
}

fn seconds(t: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(t, 0).single()
}

fn millis(t: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(t).single()
}

/// When a resource was as it is: its `resource_version` (ms), else its `updated_at` (s).
fn version_time(resource_version: Option<i64>, updated_at: Option<i64>) -> Option<DateTime<Utc>> {
    resource_version
        .and_then(millis)
        .or_else(|| updated_at.and_then(seconds))
}

impl Subscription {
    /// The item price of the subscription's plan item: which plan it is on.
    pub fn plan_price(&self) -> Option<&str> {
        self.subscription_items
            .iter()
            .find(|i| i.item_type.as_deref() == Some("plan"))
            .or_else(|| self.subscription_items.first())
            .map(|i| i.item_price_id.as_str())
    }

    /// Orgbase's view. `as_of` is the subscription's own version time (so that webhooks and
    /// answers order alike), `fallback` when it has none.
    pub fn into_state(
        self,
        customer: Option<&Customer>,
        fallback: DateTime<Utc>,
    ) -> Result<SubscriptionState, BillingError> {
        let as_of = version_time(self.resource_version, self.updated_at).unwrap_or(fallback);
        let price_id = self.plan_price().map(str::to_owned);
        let organization_id = customer
            .filter(|c| c.id == self.customer_id)
            .and_then(Customer::organization_id)
            .or_else(|| self.customer_id.parse().ok());
        Ok(SubscriptionState {
            provider: BillingProvider::Chargebee,
            created: self.created_at.and_then(seconds).unwrap_or(as_of),
            current_period_end: self.current_term_end.and_then(seconds),
            cancel_at_period_end: self.status == "non_renewing",
            // Chargebee's subscription items have no id of their own: the price names them.
            item_id: price_id.clone(),
            price_id,
            organization_id,
            customer_id: self.customer_id,
            id: self.id,
            status: self.status,
            as_of,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventEnvelope {
    pub event: Event,
}

/// An event, as delivered (the body of a webhook) and as the events API answers it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Event {
    pub id: String,
    pub event_type: String,
    pub occurred_at: i64,
    #[serde(default)]
    pub content: Content,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Content {
    pub subscription: Option<Subscription>,
    pub customer: Option<Customer>,
    pub invoice: Option<Invoice>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Invoice {
    pub id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    #[serde(default)]
    pub amount_due: i64,
    pub updated_at: Option<i64>,
    pub resource_version: Option<i64>,
}

impl Event {
    /// What the event means to Orgbase, and the time that orders it against others: the version
    /// of the resource it carries (ms), else when it occurred (s).
    pub fn meaning(self) -> Result<(WebhookEventKind, DateTime<Utc>), BillingError> {
        let occurred = seconds(self.occurred_at).unwrap_or_else(Utc::now);
        let Content {
            subscription,
            customer,
            invoice,
        } = self.content;
        let subscription_kind = |wrap: fn(SubscriptionState) -> WebhookEventKind| {
            let Some(s) = subscription.clone() else {
                return Err(BillingError::InvalidResponse(format!(
                    "the {} event carries no subscription",
                    self.event_type
                )));
            };
            let state = s.into_state(customer.as_ref(), occurred)?;
            let at = state.as_of;
            Ok((wrap(state), at))
        };
        let invoice_kind = |wrap: fn(InvoiceEvent) -> WebhookEventKind| {
            let Some(i) = invoice.clone() else {
                return Err(BillingError::InvalidResponse(format!(
                    "the {} event carries no invoice",
                    self.event_type
                )));
            };
            let at = version_time(i.resource_version, i.updated_at).unwrap_or(occurred);
            let organization_id = customer
                .as_ref()
                .and_then(Customer::organization_id)
                .or_else(|| i.customer_id.as_deref().and_then(|c| c.parse().ok()));
            Ok((
                wrap(InvoiceEvent {
                    invoice_id: i.id,
                    customer_id: i.customer_id,
                    subscription_id: i.subscription_id,
                    organization_id,
                    status: i.status,
                    created: Some(at),
                }),
                at,
            ))
        };
        match self.event_type.as_str() {
            "subscription_created" => subscription_kind(WebhookEventKind::SubscriptionCreated),
            "subscription_changed"
            | "subscription_activated"
            | "subscription_started"
            | "subscription_renewed"
            | "subscription_reactivated"
            | "subscription_paused"
            | "subscription_resumed"
            | "subscription_cancellation_scheduled"
            | "subscription_scheduled_cancellation_removed" => {
                subscription_kind(WebhookEventKind::SubscriptionUpdated)
            }
            "subscription_cancelled" | "subscription_deleted" => {
                subscription_kind(WebhookEventKind::SubscriptionDeleted)
            }
            "payment_succeeded" => invoice_kind(WebhookEventKind::InvoicePaid),
            "payment_failed" => invoice_kind(WebhookEventKind::InvoicePaymentFailed),
            // An invoice raised with money due: overdue until a payment succeeds.
            "invoice_generated"
                if invoice
                    .as_ref()
                    .is_some_and(|i| i.amount_due > 0 && i.status.as_deref() != Some("paid")) =>
            {
                invoice_kind(WebhookEventKind::InvoicePaymentFailed)
            }
            other => Ok((
                WebhookEventKind::Other {
                    event_type: other.to_owned(),
                },
                occurred,
            )),
        }
    }
}
