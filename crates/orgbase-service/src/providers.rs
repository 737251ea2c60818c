//! The billing providers configured: reached through [`orgbase_billing::BillingClient`] only, so
//! Chargebee is one more client here and no caller changes.
//!
//! What their webhook events do to an organization: the provider is the source of truth for a
//! subscription; its signed webhooks move the organization's plan, `premium` and
//! `billingOverdue`. Deliveries come more than once and out of order: each event id is applied
//! once, and a state older than the one applied never replaces it.
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use orgbase_billing::{BillingClient, SubscriptionState, WebhookEvent, WebhookEventKind};
use orgbase_domain::{
    now, BillingProvider, Organization, OrganizationId, Plan, Subscription, DEFAULT_PLAN,
};
use orgbase_store::{BillingAccount, BillingChange, BillingEventRecord, StoreError};

pub use orgbase_billing::BillingError;

use crate::{ServiceError, Services};

/// The configured providers (shared: the services are cloned into tasks).
#[derive(Clone, Default)]
pub struct Billing {
    clients: Arc<HashMap<BillingProvider, Arc<dyn BillingClient>>>,
}

impl Billing {
    pub fn with(mut self, client: Arc<dyn BillingClient>) -> Self {
        Arc::make_mut(&mut self.clients).insert(client.provider(), client);
        self
    }

    pub fn client(&self, p: BillingProvider) -> Result<&Arc<dyn BillingClient>, BillingError> {
        self.clients.get(&p).ok_or_else(|| {
            BillingError::NotConfigured(format!(
                "{} is not set up here (ORGBASE_{}_…): its plans cannot be subscribed or \
                 changed",
                p.as_str(),
                p.as_str().to_ascii_uppercase()
            ))
        })
    }
}

/// Moves a live subscription to `plan`'s price at its provider, before the change is committed
/// here. The reason, when it fails, is safe to show.
pub async fn change_plan(
    state: &Services,
    org: &Organization,
    sub: &Subscription,
    plan: &Plan,
) -> Result<(), String> {
    let client = state
        .billing
        .client(sub.provider)
        .map_err(|e| e.public_detail())?;
    if plan.provider != Some(sub.provider) {
        return Err(format!(
            "the organization is subscribed through {}; a plan not billed there would leave the \
             subscription charging for the old one: cancel it at the provider first",
            sub.provider.as_str()
        ));
    }
    let Some(price) = plan.provider_price_id.as_deref() else {
        return Err("the plan has no price at its billing provider".into());
    };
    // Names this change: a retry (after a lost answer, or a concurrent write) cannot apply it
    // twice.
    let key = orgbase_billing::idempotency_key(&[
        "change-plan",
        &org.id.to_string(),
        &sub.id,
        price,
        &org.version.to_string(),
    ]);
    client
        .change_plan(&sub.id, price, &key)
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::warn!(organization_id = %org.id, error = %e, "plan change: the billing provider failed");
            e.public_detail()
        })
}

/// How often an event is re-applied when the organization changed under it.
const APPLY_ATTEMPTS: usize = 16;

/// What applying a webhook event came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded and applied (possibly changing nothing, when it was older than what is known).
    Applied,
    /// This event was applied before.
    Duplicate,
    /// No organization of ours: recorded, nothing to change.
    NoOrganization,
}

/// Applies a verified event once.
pub async fn apply_event(
    state: &Services,
    provider: BillingProvider,
    event: &WebhookEvent,
) -> Result<Outcome, ServiceError> {
    if state.store.billing_event_seen(provider, &event.id).await? {
        return Ok(Outcome::Duplicate);
    }
    let found = organization_of(state, provider, event).await?;
    let mut record = BillingEventRecord {
        provider,
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        organization_id: found.as_ref().map(|(id, _)| *id),
        received_at: now(),
    };
    let Some((org_id, customer)) = found else {
        if !matches!(event.kind, WebhookEventKind::Other { .. }) {
            tracing::warn!(event = %event.id, kind = %event.event_type, "a billing event names no organization of ours");
        }
        return Ok(
            match state.store.apply_billing_event(&record, None).await? {
                true => Outcome::NoOrganization,
                false => Outcome::Duplicate,
            },
        );
    };
    let plan = plan_of(state, provider, event).await?;
    for _ in 0..APPLY_ATTEMPTS {
        let org = state.store.get_organization(org_id).await?;
        let account = match state.store.get_billing_account(org_id).await? {
            Some(a) => a,
            None => BillingAccount {
                organization_id: org_id,
                provider,
                customer_id: customer.clone().unwrap_or_default(),
                subscription_as_of: None,
                invoice_as_of: None,
                current_period_end: None,
                price_id: None,
            },
        };
        let change =
            decide(&org, &account, provider, event, plan.as_ref()).map(|(next, account)| {
                BillingChange {
                    next,
                    previous: org.clone(),
                    account,
                }
            });
        record.received_at = now();
        let entries = change
            .as_ref()
            .map(|c| billing_entry(provider, event, c))
            .into_iter()
            .collect();
        let write = state.store.apply_billing_event(&record, change.as_ref());
        match crate::audit::record(entries, write).await {
            Ok(true) => return Ok(Outcome::Applied),
            Ok(false) => return Ok(Outcome::Duplicate),
            Err(StoreError::VersionMismatch) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Unavailable)
}

/// The audit entry of what an event changes: the plan, the overdue flag, or else the
/// subscription.
fn billing_entry(
    provider: BillingProvider,
    event: &WebhookEvent,
    c: &BillingChange,
) -> orgbase_domain::AuditEntry {
    let action = if c.next.product_plan_id != c.previous.product_plan_id {
        "plan.changed"
    } else if c.next.billing_overdue != c.previous.billing_overdue {
        "billing.overdue_changed"
    } else {
        "subscription.updated"
    };
    let mut entry = crate::audit::entry(
        orgbase_domain::Actor::new(
            orgbase_domain::ActorType::BillingProvider,
            provider.as_str(),
            Some(format!("{} {}", event.event_type, event.id)),
        ),
        Some(c.next.id),
        action,
        orgbase_domain::Target::new("organization", c.next.id),
    )
    .diff(Some(&c.previous), Some(&c.next));
    entry.surface = orgbase_domain::AuditSurface::BillingWebhook;
    entry
}

/// The organization an event is about, and the provider's customer id it names.
async fn organization_of(
    state: &Services,
    provider: BillingProvider,
    event: &WebhookEvent,
) -> Result<Option<(OrganizationId, Option<String>)>, ServiceError> {
    let (named, customer) = match &event.kind {
        WebhookEventKind::CheckoutCompleted(c) => (c.organization_id, c.customer_id.clone()),
        WebhookEventKind::SubscriptionCreated(s)
        | WebhookEventKind::SubscriptionUpdated(s)
        | WebhookEventKind::SubscriptionDeleted(s) => {
            (s.organization_id, Some(s.customer_id.clone()))
        }
        WebhookEventKind::InvoicePaid(i) | WebhookEventKind::InvoicePaymentFailed(i) => {
            (i.organization_id, i.customer_id.clone())
        }
        WebhookEventKind::Other { .. } => return Ok(None),
    };
    // The customer is ours once checkout made it: it names the organization for certain. The
    // metadata is the fallback (a subscription made in the provider's dashboard, say).
    if let Some(c) = customer.as_deref().filter(|c| !c.is_empty()) {
        if let Some(a) = state.store.find_billing_account(provider, c).await? {
            return Ok(Some((a.organization_id, customer)));
        }
    }
    let Some(id) = named else { return Ok(None) };
    match state.store.get_organization(id).await {
        Ok(_) => Ok(Some((id, customer))),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The plan an event subscribes to: by the price, or the plan the checkout named.
async fn plan_of(
    state: &Services,
    provider: BillingProvider,
    event: &WebhookEvent,
) -> Result<Option<Plan>, ServiceError> {
    let by_id = |id: String| async move {
        match state.store.get_plan(&id).await {
            Ok(p) => Ok(Some(p)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(ServiceError::from(e)),
        }
    };
    match &event.kind {
        WebhookEventKind::CheckoutCompleted(c) => match c.plan_id.clone() {
            Some(id) => by_id(id).await,
            None => Ok(None),
        },
        WebhookEventKind::SubscriptionCreated(s) | WebhookEventKind::SubscriptionUpdated(s) => {
            match s.price_id.as_deref() {
                Some(price) => Ok(state.store.find_plan_by_price(provider, price).await?),
                None => Ok(None),
            }
        }
        WebhookEventKind::SubscriptionDeleted(_) => by_id(DEFAULT_PLAN.to_owned()).await,
        _ => Ok(None),
    }
}

/// Final: the provider never brings such a subscription back. (`unpaid` and `paused` are not
/// final: paying the invoice, or resuming, makes them active again.)
fn ended(status: &str) -> bool {
    orgbase_billing::ended_status(status)
}

fn live(status: &str) -> bool {
    orgbase_billing::live_status(status)
}

/// The organization and account after `event`, or `None` when it changes nothing. Pure: the
/// rules of billing state, apart from storage.
pub fn decide(
    org: &Organization,
    account: &BillingAccount,
    provider: BillingProvider,
    event: &WebhookEvent,
    plan: Option<&Plan>,
) -> Option<(Organization, BillingAccount)> {
    let mut next = org.clone();
    let mut acct = account.clone();
    let at = event.created;
    match &event.kind {
        WebhookEventKind::CheckoutCompleted(c) => {
            if let Some(customer) = c.customer_id.clone().filter(|c| !c.is_empty()) {
                if acct.customer_id.is_empty() {
                    acct.customer_id = customer;
                }
            }
            if let Some(sub) = &c.subscription_id {
                // A checkout paid by a delayed method completes unpaid: the subscription is not
                // live until the provider says so.
                let paid = matches!(
                    c.payment_status.as_deref(),
                    None | Some("paid") | Some("no_payment_required")
                );
                let state = SubscriptionView {
                    id: sub,
                    status: if paid { "active" } else { "incomplete" },
                    price_id: plan.and_then(|p| p.provider_price_id.as_deref()),
                    current_period_end: None,
                };
                apply_subscription(&mut next, &mut acct, provider, at, &state, plan);
            }
        }
        WebhookEventKind::SubscriptionCreated(s)
        | WebhookEventKind::SubscriptionUpdated(s)
        | WebhookEventKind::SubscriptionDeleted(s) => {
            let deleted = matches!(event.kind, WebhookEventKind::SubscriptionDeleted(_));
            let state = view(s, deleted);
            apply_subscription(&mut next, &mut acct, provider, at, &state, plan);
        }
        WebhookEventKind::InvoicePaid(_) | WebhookEventKind::InvoicePaymentFailed(_) => {
            let newer = acct.invoice_as_of.is_none_or(|t| at >= t);
            if newer {
                next.billing_overdue =
                    matches!(event.kind, WebhookEventKind::InvoicePaymentFailed(_));
                acct.invoice_as_of = Some(at);
            }
        }
        WebhookEventKind::Other { .. } => {}
    }
    if next == *org && acct == *account {
        return None;
    }
    // Every change bumps the version, the account's clocks included: that is what serializes
    // two deliveries racing for one organization.
    next.version = org.version + 1;
    next.updated_at = now();
    Some((next, acct))
}

struct SubscriptionView<'a> {
    id: &'a str,
    status: &'a str,
    price_id: Option<&'a str>,
    current_period_end: Option<DateTime<Utc>>,
}

fn view(s: &SubscriptionState, deleted: bool) -> SubscriptionView<'_> {
    SubscriptionView {
        id: &s.id,
        // A deletion is final whatever status the object shows.
        status: if deleted && !ended(&s.status) {
            "canceled"
        } else {
            &s.status
        },
        price_id: s.price_id.as_deref(),
        current_period_end: s.current_period_end,
    }
}

fn apply_subscription(
    org: &mut Organization,
    acct: &mut BillingAccount,
    provider: BillingProvider,
    at: DateTime<Utc>,
    s: &SubscriptionView<'_>,
    plan: Option<&Plan>,
) {
    // Older than what was applied: it would roll the organization back.
    if acct.subscription_as_of.is_some_and(|t| at < t) {
        return;
    }
    let current = org.subscription.as_ref();
    let same = current.is_some_and(|c| c.id == s.id);
    // The providers' clocks have one-second grain: a subscription's `created` (incomplete) and
    // the checkout that made it live often share a second. At a tie, a live state is not
    // replaced by the incomplete one that came before it.
    let tie = acct.subscription_as_of == Some(at);
    if tie && same && current.is_some_and(|c| live(&c.status)) && s.status == "incomplete" {
        return;
    }
    // Nothing brings an ended subscription back.
    if same && current.is_some_and(|c| ended(&c.status)) && !ended(s.status) {
        return;
    }
    // The end of a subscription that is no longer the organization's changes nothing.
    if ended(s.status) && current.is_some_and(|c| !same && live(&c.status)) {
        return;
    }
    acct.subscription_as_of = Some(at);
    acct.current_period_end = s.current_period_end.or(acct.current_period_end);
    if let Some(price) = s.price_id {
        acct.price_id = Some(price.to_owned());
    }
    org.subscription = Some(Subscription {
        provider,
        id: s.id.to_owned(),
        status: s.status.to_owned(),
    });
    if live(s.status) {
        if let Some(plan) = plan {
            org.product_plan_id = plan.id.clone();
            org.offered_product_plan_id = None;
            org.premium = plan.price > 0;
        }
    } else if ended(s.status) {
        org.product_plan_id = DEFAULT_PLAN.to_owned();
        org.premium = false;
    } else {
        // Unpaid, paused, incomplete: the plan stays, its paid state does not.
        org.premium = false;
    }
}
