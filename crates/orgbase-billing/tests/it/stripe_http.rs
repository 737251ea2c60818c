//! The Stripe client against a wiremock stand-in: what it sends, and how it meets failures.

use std::time::Duration;

use orgbase_billing::{
    BillingClient, BillingError, CheckoutRequest, CustomerRef, StripeClient, STRIPE_VERSION,
};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{self, field, form, organization, subscription, SECRET_KEY};

fn checkout_request() -> CheckoutRequest {
    CheckoutRequest {
        customer_id: "cus_123".into(),
        price_id: "price_pro_monthly".into(),
        organization_id: organization(),
        plan_id: "pro".into(),
        success_url: "https://app.example.com/billing/done?session={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://app.example.com/billing".into(),
    }
}

fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": { "type": kind, "code": code, "message": message }
    }))
}

fn session_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "cs_test_1",
        "object": "checkout.session",
        "url": "https://checkout.stripe.com/c/pay/cs_test_1",
        "mode": "subscription"
    }))
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn checkout_sends_stripes_documented_form_with_version_key_and_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .and(header("Stripe-Version", STRIPE_VERSION))
        .and(header("Idempotency-Key", "checkout-key-1"))
        .and(header(
            "Authorization",
            format!("Bearer {SECRET_KEY}").as_str(),
        ))
        .and(header("Content-Type", "application/x-www-form-urlencoded"))
        .respond_with(session_answer())
        .expect(1)
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let session = client
        .create_checkout(&checkout_request(), "checkout-key-1")
        .await
        .unwrap();
    assert_eq!(session.id, "cs_test_1");
    assert_eq!(session.url, "https://checkout.stripe.com/c/pay/cs_test_1");

    let requests = received(&server).await;
    let sent = form(&requests[0].body);
    let org = organization().to_string();
    let expected = [
        ("mode", "subscription"),
        ("customer", "cus_123"),
        ("line_items[0][price]", "price_pro_monthly"),
        ("line_items[0][quantity]", "1"),
        ("client_reference_id", org.as_str()),
        ("metadata[organization_id]", org.as_str()),
        ("metadata[plan_id]", "pro"),
        ("subscription_data[metadata][organization_id]", org.as_str()),
        (
            "success_url",
            "https://app.example.com/billing/done?session={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "https://app.example.com/billing"),
    ];
    for (name, value) in expected {
        assert_eq!(field(&sent, name), Some(value), "{name} in {sent:?}");
    }
    assert_eq!(sent.len(), expected.len(), "{sent:?}");
    // Bracket notation on the wire, percent-encoded as a form encodes it.
    let raw = String::from_utf8(requests[0].body.clone()).unwrap();
    assert!(
        raw.contains("line_items%5B0%5D%5Bprice%5D=price_pro_monthly"),
        "{raw}"
    );
}

#[tokio::test]
async fn a_server_error_is_retried_with_the_same_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(stripe_error(500, "api_error", None, "Something went wrong"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(session_answer())
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let session = client
        .create_checkout(&checkout_request(), "checkout-key-2")
        .await
        .unwrap();
    assert_eq!(session.id, "cs_test_1");

    let requests = received(&server).await;
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.headers["Idempotency-Key"], "checkout-key-2");
    }
    assert_eq!(requests[0].body, requests[1].body);
}

#[tokio::test]
async fn a_rate_limit_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(stripe_error(
            429,
            "invalid_request_error",
            Some("rate_limit"),
            "Too many requests",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "cus_new", "object": "customer"})),
        )
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let customer = CustomerRef {
        organization_id: organization(),
        name: "Müller GmbH".into(),
        email: Some("billing@mueller.example".into()),
        existing_customer_id: None,
    };
    assert_eq!(
        client
            .ensure_customer(&customer, "customer-key")
            .await
            .unwrap(),
        "cus_new"
    );
    let requests = received(&server).await;
    assert_eq!(requests.len(), 2);
    let sent = form(&requests[1].body);
    assert_eq!(field(&sent, "name"), Some("Müller GmbH"));
    assert_eq!(field(&sent, "email"), Some("billing@mueller.example"));
    assert_eq!(
        field(&sent, "metadata[organization_id]"),
        Some(organization().to_string().as_str())
    );
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_carries_stripes_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(
            stripe_error(
                400,
                "invalid_request_error",
                Some("resource_missing"),
                "No such price: 'price_pro_monthly'",
            )
            .insert_header("Request-Id", "req_abc"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let error = client
        .create_checkout(&checkout_request(), "checkout-key-3")
        .await
        .unwrap_err();
    match &error {
        BillingError::Provider {
            status,
            kind,
            code,
            message,
            request_id,
        } => {
            assert_eq!(*status, 400);
            assert_eq!(kind.as_deref(), Some("invalid_request_error"));
            assert_eq!(code.as_deref(), Some("resource_missing"));
            assert_eq!(message, "No such price: 'price_pro_monthly'");
            assert_eq!(request_id.as_deref(), Some("req_abc"));
        }
        other => panic!("expected a provider error, got {other:?}"),
    }
    assert!(error.to_string().contains("No such price"), "{error}");
    assert!(error.is_not_found());
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_three_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let error = client.fetch_subscription("sub_1").await.unwrap_err();
    assert!(
        matches!(error, BillingError::Provider { status: 503, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn stripe_should_retry_false_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(ResponseTemplate::new(500).insert_header("Stripe-Should-Retry", "false"))
        .expect(1)
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    assert!(client.fetch_subscription("sub_1").await.is_err());
}

#[tokio::test]
async fn a_slow_answer_times_out_without_retrying() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(session_answer().set_delay(Duration::from_secs(3)))
        .expect(1)
        .mount(&server)
        .await;

    let mut config = support::config(&server.uri());
    config.timeout = Duration::from_millis(200);
    let client = StripeClient::new(config).unwrap();
    let started = std::time::Instant::now();
    let error = client
        .create_checkout(&checkout_request(), "checkout-key-4")
        .await
        .unwrap_err();
    assert!(matches!(error, BillingError::Timeout), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = support::client(&format!("http://127.0.0.1:{port}"));
    let error = client.fetch_subscription("sub_1").await.unwrap_err();
    assert!(matches!(error, BillingError::Transport(_)), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(SECRET_KEY), "{shown}");
}

#[tokio::test]
async fn the_secret_key_never_reaches_an_error() {
    let server = MockServer::start().await;
    // Stripe quotes the key it was given (masked); a stand-in may quote it whole.
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(stripe_error(
            401,
            "invalid_request_error",
            None,
            &format!("Invalid API Key provided: {SECRET_KEY}"),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(stripe_error(
            401,
            "invalid_request_error",
            None,
            "Invalid API Key provided: sk_test_********************Leak",
        ))
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let customer = CustomerRef {
        organization_id: organization(),
        name: "Acme".into(),
        email: None,
        existing_customer_id: None,
    };
    let errors = [
        client.ensure_customer(&customer, "k").await.unwrap_err(),
        client.fetch_subscription("sub_1").await.unwrap_err(),
    ];
    for error in errors {
        let shown = format!("{error} | {error:?}");
        assert!(!shown.contains(SECRET_KEY), "{shown}");
        assert!(!shown.contains("sk_test_"), "{shown}");
        assert!(
            shown.contains("Invalid API Key provided: [redacted]"),
            "{shown}"
        );
        assert!(matches!(error, BillingError::Provider { status: 401, .. }));
    }
    let shown = format!("{client:?} {:?}", support::config(&server.uri()));
    assert!(!shown.contains(SECRET_KEY), "{shown}");
    assert!(!shown.contains(support::WEBHOOK_SECRET), "{shown}");
}

#[tokio::test]
async fn change_plan_moves_the_first_item_to_the_new_price_with_proration() {
    let server = MockServer::start().await;
    let org = organization();
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            "sub_1",
            "active",
            "price_old",
            org,
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_1"))
        .and(header("Idempotency-Key", "change-key"))
        .and(body_string_contains("proration_behavior=create_prorations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            "sub_1",
            "active",
            "price_new",
            org,
        )))
        .expect(1)
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let state = client
        .change_plan("sub_1", "price_new", "change-key")
        .await
        .unwrap();
    assert_eq!(state.id, "sub_1");
    assert_eq!(state.customer_id, "cus_123");
    assert_eq!(state.status, "active");
    assert_eq!(state.price_id.as_deref(), Some("price_new"));
    assert_eq!(state.item_id.as_deref(), Some("si_1"));
    assert_eq!(state.organization_id, Some(org));
    assert_eq!(
        state.current_period_end.map(|t| t.timestamp()),
        Some(1_702_592_000)
    );
    assert_eq!(state.created.timestamp(), 1_700_000_000);

    let requests = received(&server).await;
    let post = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    let sent = form(&post.body);
    assert_eq!(field(&sent, "items[0][id]"), Some("si_1"));
    assert_eq!(field(&sent, "items[0][price]"), Some("price_new"));
    assert_eq!(
        field(&sent, "proration_behavior"),
        Some("create_prorations")
    );
    // GETs carry no idempotency key; Stripe ignores it there.
    let get = requests
        .iter()
        .find(|r| r.method.as_str() == "GET")
        .unwrap();
    assert!(!get.headers.contains_key("Idempotency-Key"));
    assert_eq!(get.headers["Stripe-Version"], STRIPE_VERSION);
}

#[tokio::test]
async fn change_plan_to_the_current_price_changes_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            "sub_1",
            "active",
            "price_new",
            organization(),
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let state = client.change_plan("sub_1", "price_new", "k").await.unwrap();
    assert_eq!(state.price_id.as_deref(), Some("price_new"));
}

#[tokio::test]
async fn cancelling_an_already_cancelled_subscription_answers_its_state() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(stripe_error(
            400,
            "invalid_request_error",
            None,
            "This subscription has already been canceled",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            "sub_1",
            "canceled",
            "price_new",
            organization(),
        )))
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let state = client.cancel("sub_1", "cancel-key").await.unwrap();
    assert_eq!(state.status, "canceled");
    assert!(state.is_ended());
}

#[tokio::test]
async fn a_refused_cancel_of_a_live_subscription_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(stripe_error(400, "invalid_request_error", None, "Nope"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            "sub_1",
            "active",
            "price_new",
            organization(),
        )))
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let error = client.cancel("sub_1", "cancel-key").await.unwrap_err();
    assert!(error.to_string().contains("Nope"), "{error}");
}

#[tokio::test]
async fn ensure_customer_reuses_a_live_customer_and_replaces_a_deleted_one() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_live"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "cus_live", "object": "customer"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_gone"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "cus_gone", "object": "customer", "deleted": true})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "cus_fresh", "object": "customer"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let client = support::client(&server.uri());
    let mut customer = CustomerRef {
        organization_id: organization(),
        name: "Acme".into(),
        email: None,
        existing_customer_id: Some("cus_live".into()),
    };
    assert_eq!(
        client.ensure_customer(&customer, "k").await.unwrap(),
        "cus_live"
    );
    customer.existing_customer_id = Some("cus_gone".into());
    assert_eq!(
        client.ensure_customer(&customer, "k").await.unwrap(),
        "cus_fresh"
    );
}
