//! The Stripe client against localstripe, which keeps real state: what the client changes is
//! read back from localstripe itself, not from the client's answer.

use std::time::{Duration, Instant};

use chrono::Utc;
use orgbase_billing::testing::{LocalStripe, WEBHOOK_SECRET};
use orgbase_billing::{BillingClient, CustomerRef, StripeClient, WebhookEventKind};
use reqwest::Method;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::organization;

fn client(stripe: &LocalStripe) -> StripeClient {
    StripeClient::new(stripe.config()).unwrap()
}

/// A live subscription of a paying customer to `price_basic`, with the organization in its
/// metadata, as a completed checkout leaves it. Answers (subscription id, customer id).
async fn subscribed(stripe: &LocalStripe) -> (String, String) {
    stripe.create_price("price_basic", 1000, "eur").await;
    stripe.create_price("price_pro", 5000, "eur").await;
    let customer = stripe.create_paying_customer("Acme").await;
    let org = organization().to_string();
    let subscription = stripe
        .create_subscription(&customer, "price_basic", &[("organization_id", &org)])
        .await;
    (subscription["id"].as_str().unwrap().to_owned(), customer)
}

#[tokio::test]
async fn ensure_customer_creates_one_then_reuses_it() {
    let stripe = LocalStripe::start();
    let client = client(&stripe);
    let mut customer = CustomerRef {
        organization_id: organization(),
        name: "Müller GmbH".into(),
        email: Some("billing@mueller.example".into()),
        existing_customer_id: None,
    };
    let id = client
        .ensure_customer(&customer, "customer-1")
        .await
        .unwrap();
    assert!(id.starts_with("cus_"), "{id}");

    let stored = stripe
        .call(Method::GET, &format!("/v1/customers/{id}"), &[])
        .await;
    assert_eq!(stored["name"], "Müller GmbH");
    assert_eq!(stored["email"], "billing@mueller.example");
    assert_eq!(
        stored["metadata"]["organization_id"],
        organization().to_string()
    );

    customer.existing_customer_id = Some(id.clone());
    assert_eq!(
        client
            .ensure_customer(&customer, "customer-1")
            .await
            .unwrap(),
        id
    );
    let all = stripe.call(Method::GET, "/v1/customers", &[]).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "{all}");

    // A customer that is gone at the provider is replaced.
    customer.existing_customer_id = Some("cus_doesnotexist".into());
    let replacement = client
        .ensure_customer(&customer, "customer-2")
        .await
        .unwrap();
    assert_ne!(replacement, id);
}

#[tokio::test]
async fn fetch_subscription_reads_status_price_period_and_organization() {
    let stripe = LocalStripe::start();
    let (subscription, customer) = subscribed(&stripe).await;
    let state = client(&stripe)
        .fetch_subscription(&subscription)
        .await
        .unwrap();
    assert_eq!(state.id, subscription);
    assert_eq!(state.customer_id, customer);
    assert_eq!(state.status, "active");
    assert_eq!(state.price_id.as_deref(), Some("price_basic"));
    assert!(state.item_id.as_deref().unwrap().starts_with("si_"));
    assert_eq!(state.organization_id, Some(organization()));
    assert!(state.current_period_end.unwrap() > Utc::now());
    assert!(state.to_domain().is_live());

    let missing = client(&stripe)
        .fetch_subscription("sub_doesnotexist")
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
}

#[tokio::test]
async fn change_plan_changes_the_subscription_at_the_provider() {
    let stripe = LocalStripe::start();
    let (subscription, _) = subscribed(&stripe).await;
    let client = client(&stripe);

    let state = client
        .change_plan(&subscription, "price_pro", "change-1")
        .await
        .unwrap();
    assert_eq!(state.price_id.as_deref(), Some("price_pro"));
    assert_eq!(state.status, "active");

    let stored = stripe
        .call(
            Method::GET,
            &format!("/v1/subscriptions/{subscription}"),
            &[],
        )
        .await;
    assert_eq!(
        stored["items"]["data"][0]["plan"]["id"], "price_pro",
        "{stored}"
    );
    assert_eq!(
        stored["metadata"]["organization_id"],
        organization().to_string()
    );

    // Again (a retry): already there, still there.
    let again = client
        .change_plan(&subscription, "price_pro", "change-1")
        .await
        .unwrap();
    assert_eq!(again.price_id.as_deref(), Some("price_pro"));

    // A price the provider does not know is refused, and nothing changes.
    let error = client
        .change_plan(&subscription, "price_unknown", "change-2")
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let stored = stripe
        .call(
            Method::GET,
            &format!("/v1/subscriptions/{subscription}"),
            &[],
        )
        .await;
    assert_eq!(stored["items"]["data"][0]["plan"]["id"], "price_pro");
}

#[tokio::test]
async fn cancel_ends_the_subscription_and_can_be_repeated() {
    let stripe = LocalStripe::start();
    let (subscription, _) = subscribed(&stripe).await;
    let client = client(&stripe);

    let state = client.cancel(&subscription, "cancel-1").await.unwrap();
    assert_eq!(state.status, "canceled");
    assert!(state.is_ended());
    let stored = stripe
        .call(
            Method::GET,
            &format!("/v1/subscriptions/{subscription}"),
            &[],
        )
        .await;
    assert_eq!(stored["status"], "canceled");

    let again = client.cancel(&subscription, "cancel-1").await.unwrap();
    assert_eq!(again.status, "canceled");
}

#[tokio::test]
async fn localstripes_signed_webhooks_verify_and_parse() {
    let stripe = LocalStripe::start();
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    stripe
        .register_webhook(
            &format!("{}/webhooks/stripe", receiver.uri()),
            WEBHOOK_SECRET,
            Some(&["customer.subscription.created"]),
        )
        .await;
    let (subscription, _) = subscribed(&stripe).await;

    // localstripe delivers about a second after the change, from its own event loop.
    let deadline = Instant::now() + Duration::from_secs(15);
    let delivery = loop {
        let requests = receiver.received_requests().await.unwrap_or_default();
        if let Some(request) = requests.into_iter().next() {
            break request;
        }
        assert!(Instant::now() < deadline, "localstripe sent no webhook");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let client = client(&stripe);
    let signature = delivery.headers[client.webhook_signature_header()]
        .to_str()
        .unwrap();
    let event = client
        .parse_webhook(&delivery.body, signature, Utc::now())
        .unwrap();
    assert_eq!(event.event_type, "customer.subscription.created");
    let WebhookEventKind::SubscriptionCreated(state) = event.kind else {
        panic!("{event:?}");
    };
    assert_eq!(state.id, subscription);
    assert_eq!(state.organization_id, Some(organization()));
    assert_eq!(state.price_id.as_deref(), Some("price_basic"));

    // The same delivery with another secret is refused.
    let mut other = stripe.config();
    other.webhook_secret = Some("whsec_other".into());
    assert!(StripeClient::new(other)
        .unwrap()
        .parse_webhook(&delivery.body, signature, Utc::now())
        .is_err());
}
