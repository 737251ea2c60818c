//! Webhook signatures as Stripe specifies them, and the events Orgbase reads.

use chrono::{DateTime, Utc};
use orgbase_billing::stripe::webhook::{parse_event, verify_signature};
use orgbase_billing::{
    sign_webhook, BillingClient, StripeClient, SubscriptionState, WebhookError, WebhookEventKind,
};
use orgbase_domain::BillingProvider;
use serde_json::{json, Value};

use crate::support::{self, organization, subscription, WEBHOOK_SECRET};

const SIGNED_AT: i64 = 1_750_000_000;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn client() -> StripeClient {
    // No request is made: the base is never reached.
    support::client("http://127.0.0.1:9")
}

fn event(event_type: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "evt_1",
        "object": "event",
        "api_version": "2024-06-20",
        "created": SIGNED_AT,
        "livemode": false,
        "type": event_type,
        "data": { "object": object }
    }))
    .unwrap()
}

fn checkout_completed() -> Vec<u8> {
    event(
        "checkout.session.completed",
        json!({
            "id": "cs_test_1",
            "object": "checkout.session",
            "mode": "subscription",
            "customer": "cus_123",
            "subscription": "sub_1",
            "client_reference_id": organization().to_string(),
            "payment_status": "paid",
            "metadata": { "organization_id": organization().to_string(), "plan_id": "pro" }
        }),
    )
}

fn v1(header: &str) -> &str {
    header.split_once(",v1=").unwrap().1
}

#[test]
fn a_valid_signature_is_accepted_and_the_event_read() {
    let payload = checkout_completed();
    let header = sign_webhook(WEBHOOK_SECRET, SIGNED_AT, &payload);
    let event = client()
        .parse_webhook(&payload, &header, at(SIGNED_AT + 10))
        .unwrap();
    assert_eq!(event.id, "evt_1");
    assert_eq!(event.event_type, "checkout.session.completed");
    assert_eq!(event.created, at(SIGNED_AT));
    assert!(!event.livemode);
    let WebhookEventKind::CheckoutCompleted(completed) = event.kind else {
        panic!("{event:?}");
    };
    assert_eq!(completed.session_id, "cs_test_1");
    assert_eq!(completed.customer_id.as_deref(), Some("cus_123"));
    assert_eq!(completed.subscription_id.as_deref(), Some("sub_1"));
    assert_eq!(completed.organization_id, Some(organization()));
    assert_eq!(
        completed.client_reference_id,
        Some(organization().to_string())
    );
    assert_eq!(completed.plan_id.as_deref(), Some("pro"));
    assert_eq!(completed.payment_status.as_deref(), Some("paid"));
}

#[test]
fn any_one_of_several_v1_signatures_is_enough_and_other_schemes_are_ignored() {
    let payload = checkout_completed();
    let good = sign_webhook(WEBHOOK_SECRET, SIGNED_AT, &payload);
    let old_secret = sign_webhook("whsec_rolled_away", SIGNED_AT, &payload);
    let header = format!(
        "t={SIGNED_AT},v0={},v1={},v1={},v1=nothex,scheme=x",
        v1(&good),
        v1(&old_secret),
        v1(&good)
    );
    client()
        .parse_webhook(&payload, &header, at(SIGNED_AT))
        .unwrap();
    // A v0 alone is not checked, even when it would match.
    let only_v0 = format!("t={SIGNED_AT},v0={}", v1(&good));
    assert_eq!(
        client().parse_webhook(&payload, &only_v0, at(SIGNED_AT)),
        Err(WebhookError::NoSignature)
    );
}

#[test]
fn a_signature_with_another_secret_is_refused() {
    let payload = checkout_completed();
    let header = sign_webhook("whsec_someone_else", SIGNED_AT, &payload);
    assert_eq!(
        client().parse_webhook(&payload, &header, at(SIGNED_AT)),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn a_changed_body_or_timestamp_is_refused() {
    let payload = checkout_completed();
    let header = sign_webhook(WEBHOOK_SECRET, SIGNED_AT, &payload);
    let tampered = String::from_utf8(payload.clone())
        .unwrap()
        .replace("\"pro\"", "\"enterprise\"");
    assert_eq!(
        client().parse_webhook(tampered.as_bytes(), &header, at(SIGNED_AT)),
        Err(WebhookError::SignatureMismatch)
    );
    // The signature covers the timestamp: moving it forward does not refresh a delivery.
    let moved = header.replace(&format!("t={SIGNED_AT}"), &format!("t={}", SIGNED_AT + 600));
    assert_eq!(
        client().parse_webhook(&payload, &moved, at(SIGNED_AT + 600)),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn a_timestamp_outside_five_minutes_is_refused() {
    let payload = checkout_completed();
    let header = sign_webhook(WEBHOOK_SECRET, SIGNED_AT, &payload);
    let client = client();
    assert!(client
        .parse_webhook(&payload, &header, at(SIGNED_AT + 300))
        .is_ok());
    assert_eq!(
        client.parse_webhook(&payload, &header, at(SIGNED_AT + 301)),
        Err(WebhookError::Stale)
    );
    assert!(client
        .parse_webhook(&payload, &header, at(SIGNED_AT - 300))
        .is_ok());
    assert_eq!(
        client.parse_webhook(&payload, &header, at(SIGNED_AT - 301)),
        Err(WebhookError::FromTheFuture)
    );
}

#[test]
fn a_missing_header_is_refused() {
    let payload = checkout_completed();
    for header in ["", "   "] {
        assert_eq!(
            client().parse_webhook(&payload, header, at(SIGNED_AT)),
            Err(WebhookError::MissingSignature)
        );
    }
}

#[test]
fn a_malformed_header_is_refused() {
    let payload = checkout_completed();
    let good = sign_webhook(WEBHOOK_SECRET, SIGNED_AT, &payload);
    let signature = v1(&good);
    for header in [
        "garbage".to_owned(),
        format!("v1={signature}"),
        format!("t=yesterday,v1={signature}"),
        format!("t={SIGNED_AT},t={SIGNED_AT},v1={signature}"),
        format!("t={SIGNED_AT};v1={signature}"),
        format!("t={SIGNED_AT},,v1={signature}"),
    ] {
        assert_eq!(
            client().parse_webhook(&payload, &header, at(SIGNED_AT)),
            Err(WebhookError::MalformedSignature),
            "{header}"
        );
    }
    assert_eq!(
        client().parse_webhook(&payload, &format!("t={SIGNED_AT}"), at(SIGNED_AT)),
        Err(WebhookError::NoSignature)
    );
}

#[test]
fn without_a_webhook_secret_nothing_is_accepted() {
    let mut config = support::config("http://127.0.0.1:9");
    config.webhook_secret = None;
    let client = StripeClient::new(config).unwrap();
    let payload = checkout_completed();
    let header = sign_webhook(WEBHOOK_SECRET, SIGNED_AT, &payload);
    assert_eq!(
        client.parse_webhook(&payload, &header, at(SIGNED_AT)),
        Err(WebhookError::NotConfigured)
    );
}

#[test]
fn a_signed_body_that_is_not_an_event_is_refused() {
    let payload = b"{\"not\": \"an event\"}";
    let header = sign_webhook(WEBHOOK_SECRET, SIGNED_AT, payload);
    assert!(matches!(
        client().parse_webhook(payload, &header, at(SIGNED_AT)),
        Err(WebhookError::InvalidPayload(_))
    ));
    // Verification alone is available to callers that read the body themselves.
    verify_signature(WEBHOOK_SECRET, payload, &header, at(SIGNED_AT)).unwrap();
}

#[test]
fn subscription_events_carry_the_subscription_as_of_the_event() {
    let org = organization();
    for (event_type, status) in [
        ("customer.subscription.created", "incomplete"),
        ("customer.subscription.updated", "active"),
        ("customer.subscription.deleted", "canceled"),
    ] {
        let parsed = parse_event(&event(
            event_type,
            subscription("sub_1", status, "price_pro", org),
        ))
        .unwrap();
        let state = match parsed.kind {
            WebhookEventKind::SubscriptionCreated(s)
                if event_type == "customer.subscription.created" =>
            {
                s
            }
            WebhookEventKind::SubscriptionUpdated(s)
                if event_type == "customer.subscription.updated" =>
            {
                s
            }
            WebhookEventKind::SubscriptionDeleted(s)
                if event_type == "customer.subscription.deleted" =>
            {
                s
            }
            other => panic!("{event_type}: {other:?}"),
        };
        assert_eq!(state.provider, BillingProvider::Stripe);
        assert_eq!(state.status, status);
        assert_eq!(state.price_id.as_deref(), Some("price_pro"));
        assert_eq!(state.organization_id, Some(org));
        assert_eq!(state.customer_id, "cus_123");
        assert_eq!(state.as_of, at(SIGNED_AT));
        assert_eq!(
            state.current_period_end.map(|t| t.timestamp()),
            Some(1_702_592_000)
        );
    }
}

#[test]
fn invoice_events_name_the_subscription_and_organization() {
    let org = organization();
    let invoice = json!({
        "id": "in_1",
        "object": "invoice",
        "customer": "cus_123",
        "subscription": "sub_1",
        "status": "paid",
        "created": SIGNED_AT - 5,
        "metadata": {},
        "subscription_details": { "metadata": { "organization_id": org.to_string() } }
    });
    let paid = parse_event(&event("invoice.paid", invoice.clone())).unwrap();
    let WebhookEventKind::InvoicePaid(paid) = paid.kind else {
        panic!("{paid:?}");
    };
    assert_eq!(paid.invoice_id, "in_1");
    assert_eq!(paid.customer_id.as_deref(), Some("cus_123"));
    assert_eq!(paid.subscription_id.as_deref(), Some("sub_1"));
    assert_eq!(paid.organization_id, Some(org));
    assert_eq!(paid.status.as_deref(), Some("paid"));
    assert_eq!(paid.created, Some(at(SIGNED_AT - 5)));

    // Newer API versions keep the subscription under `parent`; an invoice without metadata
    // names no organization (the caller goes by subscription or customer).
    let failed = parse_event(&event(
        "invoice.payment_failed",
        json!({
            "id": "in_2",
            "object": "invoice",
            "customer": { "id": "cus_123", "object": "customer" },
            "status": "open",
            "parent": { "subscription_details": { "subscription": "sub_2" } }
        }),
    ))
    .unwrap();
    let WebhookEventKind::InvoicePaymentFailed(failed) = failed.kind else {
        panic!("{failed:?}");
    };
    assert_eq!(failed.customer_id.as_deref(), Some("cus_123"));
    assert_eq!(failed.subscription_id.as_deref(), Some("sub_2"));
    assert_eq!(failed.organization_id, None);
}

#[test]
fn other_events_are_named_and_left_alone() {
    let parsed = parse_event(&event(
        "customer.updated",
        json!({"id": "cus_1", "object": "customer"}),
    ))
    .unwrap();
    assert_eq!(
        parsed.kind,
        WebhookEventKind::Other {
            event_type: "customer.updated".into()
        }
    );
}

#[test]
fn an_older_or_reviving_state_does_not_supersede_the_stored_one() {
    let org = organization();
    let state = |status: &str, as_of: i64| -> SubscriptionState {
        let parsed = parse_event(&event(
            "customer.subscription.updated",
            subscription("sub_1", status, "price_pro", org),
        ))
        .unwrap();
        let WebhookEventKind::SubscriptionUpdated(mut s) = parsed.kind else {
            panic!()
        };
        s.as_of = at(as_of);
        s
    };
    let stored = state("past_due", SIGNED_AT);
    assert!(state("active", SIGNED_AT + 1).supersedes(&stored));
    assert!(state("active", SIGNED_AT).supersedes(&stored));
    assert!(!state("active", SIGNED_AT - 1).supersedes(&stored));
    let ended = state("canceled", SIGNED_AT);
    assert!(!state("active", SIGNED_AT + 60).supersedes(&ended));
    assert!(state("canceled", SIGNED_AT + 60).supersedes(&ended));
    assert_eq!(stored.to_domain().status, "past_due");
}
