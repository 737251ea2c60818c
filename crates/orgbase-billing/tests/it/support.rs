//! What the tests share: a client for a stand-in, and Stripe-shaped JSON.

use std::time::Duration;

use orgbase_billing::{StripeClient, StripeConfig};
use orgbase_domain::OrganizationId;
use secrecy::SecretString;
use serde_json::{json, Value};

pub const SECRET_KEY: &str = "sk_test_51SuperSecretKeyThatMustNeverLeak";
pub const WEBHOOK_SECRET: &str = "whsec_test_secret";

pub fn config(api_base: &str) -> StripeConfig {
    let mut config = StripeConfig::new(SecretString::from(SECRET_KEY));
    config.webhook_secret = Some(SecretString::from(WEBHOOK_SECRET));
    config.api_base = api_base.to_owned();
    config.timeout = Duration::from_secs(5);
    config.retry_base_delay = Duration::from_millis(5);
    config
}

pub fn client(api_base: &str) -> StripeClient {
    StripeClient::new(config(api_base)).expect("a valid configuration")
}

pub fn organization() -> OrganizationId {
    "0190f2a4-7c1e-7d2b-9a3f-2f6a1b9c8d7e".parse().unwrap()
}

/// A subscription as Stripe answers it at API version 2024-06-20 (trimmed).
pub fn subscription(id: &str, status: &str, price: &str, organization: OrganizationId) -> Value {
    json!({
        "id": id,
        "object": "subscription",
        "customer": "cus_123",
        "status": status,
        "created": 1_700_000_000,
        "current_period_start": 1_700_000_000,
        "current_period_end": 1_702_592_000,
        "cancel_at_period_end": false,
        "livemode": false,
        "metadata": { "organization_id": organization.to_string() },
        "items": {
            "object": "list",
            "data": [{
                "id": "si_1",
                "object": "subscription_item",
                "price": { "id": price, "object": "price", "recurring": { "interval": "month" } },
                "plan": { "id": price, "object": "plan" },
                "quantity": 1
            }],
            "has_more": false
        }
    })
}

/// Form fields as a list of pairs, in the order sent.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
