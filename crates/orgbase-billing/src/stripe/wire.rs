//! Stripe's JSON, as far as Orgbase reads it. Fields are lenient (optional, either an id or an
//! expanded object) so that a field Stripe adds or expands does not break a payment flow.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use orgbase_domain::{BillingProvider, OrganizationId};
use serde::Deserialize;

use crate::{BillingError, CheckoutCompleted, InvoiceEvent, SubscriptionState};

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<String>,
}

/// A reference Stripe answers either as an id or, when expanded, as the object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    pub fn id(&self) -> &str {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}

fn id_of(reference: &Option<Expandable>) -> Option<String> {
    reference.as_ref().map(|r| r.id().to_owned())
}

/// Stripe's metadata values are strings; anything else is read as absent.
pub(crate) type Metadata = HashMap<String, serde_json::Value>;

fn metadata_str<'a>(metadata: &'a Option<Metadata>, key: &str) -> Option<&'a str> {
    metadata.as_ref()?.get(key)?.as_str()
}

fn organization_id(metadata: &Option<Metadata>) -> Option<OrganizationId> {
    metadata_str(metadata, "organization_id")?.parse().ok()
}

fn timestamp(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Customer {
    pub id: String,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
    pub customer: Option<Expandable>,
    pub subscription: Option<Expandable>,
    pub client_reference_id: Option<String>,
    pub metadata: Option<Metadata>,
    pub payment_status: Option<String>,
}

impl CheckoutSession {
    pub fn into_completed(self) -> CheckoutCompleted {
        let organization_id = organization_id(&self.metadata).or_else(|| {
            self.client_reference_id
                .as_deref()
                .and_then(|r| r.parse().ok())
        });
        CheckoutCompleted {
            customer_id: id_of(&self.customer),
            subscription_id: id_of(&self.subscription),
            plan_id: metadata_str(&self.metadata, "plan_id").map(str::to_owned),
            organization_id,
            client_reference_id: self.client_reference_id,
            payment_status: self.payment_status,
            session_id: self.id,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct List<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Subscription {
    pub id: String,
    pub customer: Expandable,
    pub status: String,
    pub created: i64,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: Option<bool>,
    pub metadata: Option<Metadata>,
    pub items: Option<List<SubscriptionItem>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SubscriptionItem {
    pub id: String,
    pub price: Option<Expandable>,
    /// The legacy name of the price, still answered for recurring prices (and the only one
    /// older stand-ins know).
    pub plan: Option<Expandable>,
    /// Where API versions from 2025 keep the period.
    pub current_period_end: Option<i64>,
}

impl SubscriptionItem {
    pub fn price_id(&self) -> Option<String> {
        id_of(&self.price).or_else(|| id_of(&self.plan))
    }
}

impl Subscription {
    pub fn first_item(&self) -> Option<&SubscriptionItem> {
        self.items.as_ref()?.data.first()
    }

    pub fn into_state(self, as_of: DateTime<Utc>) -> Result<SubscriptionState, BillingError> {
        let created = timestamp(self.created).ok_or_else(|| {
            BillingError::InvalidResponse(format!(
                "subscription {} has an invalid creation time",
                self.id
            ))
        })?;
        let item = self.first_item();
        let current_period_end = self
            .current_period_end
            .or_else(|| item.and_then(|i| i.current_period_end))
            .and_then(timestamp);
        Ok(SubscriptionState {
            provider: BillingProvider::Stripe,
            customer_id: self.customer.id().to_owned(),
            status: self.status.clone(),
            price_id: item.and_then(SubscriptionItem::price_id),
            item_id: item.map(|i| i.id.clone()),
            current_period_end,
            cancel_at_period_end: self.cancel_at_period_end.unwrap_or(false),
            organization_id: organization_id(&self.metadata),
            created,
            as_of,
            id: self.id,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Invoice {
    pub id: String,
    pub customer: Option<Expandable>,
    /// Up to API version 2025-03-31; later versions answer `parent.subscription_details`.
    pub subscription: Option<Expandable>,
    pub status: Option<String>,
    pub created: Option<i64>,
    pub metadata: Option<Metadata>,
    /// The subscription's metadata as it was when the invoice was made.
    pub subscription_details: Option<SubscriptionDetails>,
    pub parent: Option<InvoiceParent>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SubscriptionDetails {
    pub subscription: Option<Expandable>,
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct InvoiceParent {
    pub subscription_details: Option<SubscriptionDetails>,
}

impl Invoice {
    pub fn into_event(self) -> InvoiceEvent {
        let parent = self
            .parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref());
        let details = self.subscription_details.as_ref().or(parent);
        let subscription_id = id_of(&self.subscription)
            .or_else(|| details.and_then(|d| id_of(&d.subscription)))
            .or_else(|| parent.and_then(|d| id_of(&d.subscription)));
        let organization_id = details
            .and_then(|d| organization_id(&d.metadata))
            .or_else(|| parent.and_then(|d| organization_id(&d.metadata)))
            .or_else(|| organization_id(&self.metadata));
        InvoiceEvent {
            customer_id: id_of(&self.customer),
            subscription_id,
            organization_id,
            status: self.status,
            created: self.created.and_then(timestamp),
            invoice_id: self.id,
        }
    }
}

/// The envelope of every webhook delivery.
#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventData {
    pub object: serde_json::Value,
}
