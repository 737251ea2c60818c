//! The Chargebee client against the Chargebee stand-in (`tools/chargebee-standin.py`), which
//! keeps state and records every request: what the client sends is read back from the stand-in.

use base64::Engine as _;
use chrono::Utc;
use orgbase_billing::testing::{
    LocalChargebee, CHARGEBEE_API_KEY, CHARGEBEE_HOOK_PASSWORD, CHARGEBEE_HOOK_USER,
};
use orgbase_billing::{
    BillingClient, BillingError, ChargebeeClient, CheckoutRequest, CustomerRef, WebhookError,
    WebhookEvent, WebhookEventKind,
};
use serde_json::Value;

use crate::support::organization;

fn client(cb: &LocalChargebee) -> ChargebeeClient {
    ChargebeeClient::new(cb.config()).unwrap()
}

fn hook_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{CHARGEBEE_HOOK_USER}:{CHARGEBEE_HOOK_PASSWORD}"))
    )
}

/// The form of the last request to `path`, as the stand-in recorded it.
async fn last_form(cb: &LocalChargebee, path: &str) -> Value {
    let requests = cb.requests().await;
    let r = requests
        .iter()
        .rev()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no request to {path} in {requests:?}"));
    assert_eq!(r["user"], CHARGEBEE_API_KEY, "Basic auth user of {r}");
    assert!(
        r["idempotency_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("orgbase-") || k.starts_with("k-")),
        "{r}"
    );
    r["form"].clone()
}

/// A checkout of the organization's `customer` on item price `price_id`, for the plan `basic`.
fn checkout_request(customer: &str, price_id: &str) -> CheckoutRequest {
    CheckoutRequest {
        customer_id: customer.into(),
        price_id: price_id.into(),
        organization_id: organization(),
        plan_id: "basic".into(),
        success_url: "https://app.example/ok".into(),
        cancel_url: "https://app.example/cancel".into(),
    }
}

/// What the client makes of `event`, delivered with the right Basic auth.
async fn verify(client: &ChargebeeClient, event: &Value) -> Result<WebhookEvent, WebhookError> {
    client
        .verify_webhook(
            &serde_json::to_vec(event).unwrap(),
            &hook_auth(),
            Utc::now(),
        )
        .await
}

/// An organization subscribed to `basic` through a completed checkout: (customer id,
/// subscription id, the `subscription_created` event as Chargebee stored it).
async fn subscribed(cb: &LocalChargebee, client: &ChargebeeClient) -> (String, String, Value) {
    cb.create_item_price("basic-USD-monthly", 1000, "USD").await;
    cb.create_item_price("pro-USD-monthly", 5000, "USD").await;
    let org = organization();
    let customer = client
        .ensure_customer(
            &CustomerRef {
                organization_id: org,
                name: "Acme".into(),
                email: Some("billing@acme.example".into()),
                existing_customer_id: None,
            },
            "k-customer",
        )
        .await
        .unwrap();
    let page = client
        .create_checkout(
            &checkout_request(&customer, "basic-USD-monthly"),
            "k-checkout",
        )
        .await
        .unwrap();
    let done = cb.complete_checkout(&page.id).await;
    let (sub, event) = LocalChargebee::subscription_created(&done);
    (customer, sub, event)
}

#[tokio::test]
async fn checkout_names_the_organization_and_its_customer() {
    let cb = LocalChargebee::start();
    let client = client(&cb);
    cb.create_item_price("basic-USD-monthly", 1000, "USD").await;
    let org = organization();
    let customer = CustomerRef {
        organization_id: org,
        name: "Müller GmbH".into(),
        email: Some("billing@mueller.example".into()),
        existing_customer_id: None,
    };
    let id = client.ensure_customer(&customer, "k-c1").await.unwrap();
    assert_eq!(
        id,
        org.to_string(),
        "the customer is named after the organization"
    );
    let form = last_form(&cb, "/api/v2/customers").await;
    assert_eq!(form["company"], "Müller GmbH");
    assert_eq!(form["email"], "billing@mueller.example");
    let meta: Value = serde_json::from_str(form["meta_data"].as_str().unwrap()).unwrap();
    assert_eq!(meta["organization_id"], org.to_string());
    // Again (a lost answer, a second checkout): found, not made twice.
    let posts = cb.requests().await.len();
    assert_eq!(client.ensure_customer(&customer, "k-c2").await.unwrap(), id);
    let after = cb.requests().await;
    assert!(
        after[posts..].iter().all(|r| r["method"] == "GET"),
        "{after:?}"
    );

    let page = client
        .create_checkout(&checkout_request(&id, "basic-USD-monthly"), "k-checkout")
        .await
        .unwrap();
    assert!(page.url.starts_with("http"), "{page:?}");
    let form = last_form(&cb, "/api/v2/hosted_pages/checkout_new_for_items").await;
    assert_eq!(
        form["subscription_items[item_price_id][0]"],
        "basic-USD-monthly"
    );
    assert_eq!(form["subscription_items[quantity][0]"], "1");
    assert_eq!(form["customer[id]"], id);
    assert_eq!(form["redirect_url"], "https://app.example/ok");
    let pass: Value = serde_json::from_str(form["pass_thru_content"].as_str().unwrap()).unwrap();
    assert_eq!(pass["organization_id"], org.to_string());
    assert_eq!(pass["plan_id"], "basic");

    // An item price Chargebee does not have: refused, with Chargebee's words.
    let e = client
        .create_checkout(&checkout_request(&id, "nope"), "k-checkout-2")
        .await
        .unwrap_err();
    assert!(matches!(e, BillingError::Provider { .. }), "{e:?}");
}

#[tokio::test]
async fn a_plan_change_replaces_the_item_price_or_is_refused() {
    let cb = LocalChargebee::start();
    let client = client(&cb);
    let (customer, sub, _) = subscribed(&cb, &client).await;
    let before = client.fetch_subscription(&sub).await.unwrap();
    assert_eq!(before.price_id.as_deref(), Some("basic-USD-monthly"));
    assert_eq!(before.customer_id, customer);
    assert_eq!(before.organization_id, Some(organization()));
    assert_eq!(before.status, "active");

    let after = client
        .change_plan(&sub, "pro-USD-monthly", "k-change")
        .await
        .unwrap();
    assert_eq!(after.price_id.as_deref(), Some("pro-USD-monthly"));
    assert!(after.as_of >= before.as_of);
    let form = last_form(
        &cb,
        &format!("/api/v2/subscriptions/{sub}/update_for_items"),
    )
    .await;
    assert_eq!(
        form["subscription_items[item_price_id][0]"],
        "pro-USD-monthly"
    );
    // Already there: nothing is sent.
    let n = cb.requests().await.len();
    client
        .change_plan(&sub, "pro-USD-monthly", "k-change-2")
        .await
        .unwrap();
    let after_again = cb.requests().await;
    assert!(after_again[n..].iter().all(|r| r["method"] == "GET"));

    let e = client
        .change_plan(&sub, "no-such-price", "k-change-3")
        .await
        .unwrap_err();
    assert!(matches!(e, BillingError::Provider { .. }), "{e:?}");
    assert_eq!(
        client
            .fetch_subscription(&sub)
            .await
            .unwrap()
            .price_id
            .as_deref(),
        Some("pro-USD-monthly")
    );

    // Cancelled, then cancelled again: both answer the ended subscription.
    let ended = client.cancel(&sub, "k-cancel").await.unwrap();
    assert_eq!(ended.status, "cancelled");
    assert!(ended.is_ended());
    assert!(client.cancel(&sub, "k-cancel-2").await.unwrap().is_ended());
    let e = client
        .change_plan(&sub, "basic-USD-monthly", "k-change-4")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BillingError::Provider { code: Some(c), .. } if c == "invalid_state_for_request"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_webhook_is_read_from_chargebee_never_from_its_body() {
    let cb = LocalChargebee::start();
    let client = client(&cb);
    let (_, sub, event) = subscribed(&cb, &client).await;
    let body = serde_json::to_vec(&event).unwrap();
    let verified = client
        .verify_webhook(&body, &hook_auth(), Utc::now())
        .await
        .unwrap();
    assert_eq!(verified.event_type, "subscription_created");
    let WebhookEventKind::SubscriptionCreated(state) = &verified.kind else {
        panic!("{verified:?}");
    };
    assert_eq!(state.id, sub);
    assert_eq!(state.organization_id, Some(organization()));
    assert_eq!(state.price_id.as_deref(), Some("basic-USD-monthly"));

    // A forged body: Chargebee's own event is what counts.
    let mut forged = event.clone();
    forged["content"]["subscription"]["subscription_items"][0]["item_price_id"] =
        "pro-USD-monthly".into();
    let read = verify(&client, &forged).await.unwrap();
    let WebhookEventKind::SubscriptionCreated(state) = &read.kind else {
        panic!("{read:?}");
    };
    assert_eq!(state.price_id.as_deref(), Some("basic-USD-monthly"));
    // An id Chargebee never made, and a type it does not confirm: refused.
    for (field, value) in [
        ("id", "ev_forged"),
        ("event_type", "subscription_cancelled"),
    ] {
        let mut tampered = event.clone();
        tampered[field] = value.into();
        let e = verify(&client, &tampered).await.unwrap_err();
        assert!(matches!(e, WebhookError::Unverified(_)), "{e:?}");
    }
    // Wrong Basic auth: refused before Chargebee is asked.
    let n = cb.requests().await.len();
    let e = client
        .verify_webhook(&body, "Basic b3JnYmFzZTp3cm9uZw==", Utc::now())
        .await
        .unwrap_err();
    assert_eq!(e, WebhookError::Unauthorized);
    assert_eq!(cb.requests().await.len(), n);
    // Invoices: a failed payment, then one that succeeded.
    let failed = cb.event("payment_failed", &sub, None, false).await;
    let read = verify(&client, &failed["event"]).await.unwrap();
    assert!(
        matches!(&read.kind, WebhookEventKind::InvoicePaymentFailed(i) if i.organization_id == Some(organization())),
        "{read:?}"
    );
}
