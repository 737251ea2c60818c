//! Stripe over its documented HTTP API (through [`crate::transport`]): form-encoded requests
//! (`metadata[organization_id]=…`), JSON answers, a pinned API version, an idempotency key on
//! every POST, a timeout, and a few jittered retries where Stripe says a retry can help.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::BillingProvider;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::transport::{Provider, Refusal, Transport};
use crate::{
    BillingClient, BillingError, CheckoutRequest, CheckoutSession, CustomerRef, SubscriptionState,
    WebhookError, WebhookEvent,
};

pub mod webhook;
mod wire;

/// The Stripe API version every request is made with, so a change of the account's default
/// version in Stripe's dashboard cannot change the shape of the answers. Webhook payloads follow
/// the version set on the webhook endpoint in Stripe: set it to this one too.
pub const STRIPE_VERSION: &str = "2024-06-20";

/// Stripe's own API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// How Orgbase reaches Stripe. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `sk_live_…` / `sk_test_…` (`ORGBASE_STRIPE_SECRET_KEY`).
    pub secret_key: SecretString,
    /// `whsec_…`, the signing secret of the webhook endpoint (`ORGBASE_STRIPE_WEBHOOK_SECRET`).
    /// Without it no webhook delivery is accepted.
    pub webhook_secret: Option<SecretString>,
    /// `ORGBASE_STRIPE_API_BASE`: Stripe's own by default; tests point it at a local stand-in.
    pub api_base: String,
    /// For one attempt of one request, connecting included.
    pub timeout: Duration,
    /// Attempts per request, the first included; only 429, 5xx and connection failures are
    /// attempted again.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles for each further one, with jitter.
    pub retry_base_delay: Duration,
}

impl StripeConfig {
    /// Stripe's own API, a 10 s timeout and up to 3 attempts.
    pub fn new(secret_key: SecretString) -> Self {
        Self {
            secret_key,
            webhook_secret: None,
            api_base: DEFAULT_API_BASE.to_owned(),
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            retry_base_delay: Duration::from_millis(250),
        }
    }
}

/// [`BillingClient`] for Stripe.
#[derive(Clone)]
pub struct StripeClient {
    transport: Transport,
    webhook_secret: Option<SecretString>,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.transport.base().as_str())
            .field("max_attempts", &self.transport.max_attempts())
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// Checks the configuration once, at start, so that a bad one fails there rather than at a
    /// customer's first checkout.
    pub fn new(config: StripeConfig) -> Result<Self, BillingError> {
        let mut default_headers = HeaderMap::new();
        default_headers.insert("Stripe-Version", HeaderValue::from_static(STRIPE_VERSION));
        let transport = Transport::new(Provider {
            name: "Stripe",
            authorization: format!("Bearer {}", config.secret_key.expose_secret()),
            api_base: config.api_base,
            prefix: &["v1"],
            secret: config.secret_key,
            idempotency_header: "Idempotency-Key",
            request_id_header: Some("Request-Id"),
            default_headers,
            timeout: config.timeout,
            max_attempts: config.max_attempts,
            retry_base_delay: config.retry_base_delay,
            refusal,
            scrub,
        })?;
        Ok(Self {
            transport,
            webhook_secret: config.webhook_secret,
        })
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, BillingError> {
        self.transport.get(segments).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<T, BillingError> {
        self.transport.post(segments, form, idempotency_key).await
    }

    async fn subscription(&self, id: &str) -> Result<wire::Subscription, BillingError> {
        self.get(&["subscriptions", id]).await
    }

    fn webhook_secret(&self) -> Result<&str, WebhookError> {
        self.webhook_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
            .ok_or(WebhookError::NotConfigured)
    }
}

/// A Stripe error answer: `{"error": {type, code, message}}`, and its advice on retrying
/// (`Stripe-Should-Retry`).
fn refusal(headers: &HeaderMap, body: &[u8]) -> Refusal {
    let detail = serde_json::from_slice::<wire::ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let retry = headers
        .get("Stripe-Should-Retry")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.eq_ignore_ascii_case("true"));
    match detail {
        Some(d) => Refusal {
            kind: d.kind,
            code: d.code,
            message: d.message,
            retry,
        },
        None => Refusal {
            kind: None,
            code: None,
            message: None,
            retry,
        },
    }
}

/// Replaces the configured key, and anything shaped like a Stripe secret (`sk_…`, `rk_…`,
/// `whsec_…`, masked or not), with `[redacted]`: Stripe's own messages may quote a key.
fn scrub(message: &str, secret_key: &str) -> String {
    let mut message = if secret_key.is_empty() {
        message.to_owned()
    } else {
        message.replace(secret_key, "[redacted]")
    };
    for prefix in ["sk_", "rk_", "whsec_"] {
        let mut out = String::with_capacity(message.len());
        let mut rest = message.as_str();
        while let Some(at) = rest.find(prefix) {
            let starts_word = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '*'))
                .unwrap_or(tail.len());
            if starts_word {
                out.push_str("[redacted]");
            } else {
                out.push_str(&tail[..end]);
            }
            rest = &tail[end..];
        }
        out.push_str(rest);
        message = out;
    }
    message
}

#[async_trait]
impl BillingClient for StripeClient {
    fn provider(&self) -> BillingProvider {
        BillingProvider::Stripe
    }

    async fn ensure_customer(
        &self,
        customer: &CustomerRef,
        idempotency_key: &str,
    ) -> Result<String, BillingError> {
        if let Some(existing) = customer.existing_customer_id.as_deref() {
            // A customer deleted in Stripe's dashboard is answered as `deleted: true` (or 404 on
            // stand-ins): then a new one is made rather than failing every checkout from now on.
            match self.get::<wire::Customer>(&["customers", existing]).await {
                Ok(found) if !found.deleted => return Ok(found.id),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let organization_id = customer.organization_id.to_string();
        let mut form = vec![
            ("name", customer.name.as_str()),
            ("metadata[organization_id]", organization_id.as_str()),
        ];
        if let Some(email) = customer.email.as_deref() {
            form.push(("email", email));
        }
        let created: wire::Customer = self.post(&["customers"], &form, idempotency_key).await?;
        Ok(created.id)
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<CheckoutSession, BillingError> {
        let organization_id = request.organization_id.to_string();
        let form = [
            ("mode", "subscription"),
            ("customer", request.customer_id.as_str()),
            ("line_items[0][price]", request.price_id.as_str()),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", organization_id.as_str()),
            ("metadata[organization_id]", organization_id.as_str()),
            ("metadata[plan_id]", request.plan_id.as_str()),
            (
                "subscription_data[metadata][organization_id]",
                organization_id.as_str(),
            ),
            ("success_url", request.success_url.as_str()),
            ("cancel_url", request.cancel_url.as_str()),
        ];
        let session: wire::CheckoutSession = self
            .post(&["checkout", "sessions"], &form, idempotency_key)
            .await?;
        let url = session.url.ok_or_else(|| {
            BillingError::InvalidResponse("the checkout session has no url".into())
        })?;
        Ok(CheckoutSession {
            id: session.id,
            url,
        })
    }

    async fn change_plan(
        &self,
        subscription_id: &str,
        new_price_id: &str,
        idempotency_key: &str,
    ) -> Result<SubscriptionState, BillingError> {
        let current = self.subscription(subscription_id).await?;
        let item = current.first_item().ok_or_else(|| {
            BillingError::InvalidResponse(format!("subscription {subscription_id} has no items"))
        })?;
        // Already there (a retry after the change went through, say): nothing to prorate.
        if item.price_id().as_deref() == Some(new_price_id) {
            return current.into_state(Utc::now());
        }
        let item_id = item.id.clone();
        let form = [
            ("items[0][id]", item_id.as_str()),
            ("items[0][price]", new_price_id),
            ("proration_behavior", "create_prorations"),
        ];
        let updated: wire::Subscription = self
            .post(&["subscriptions", subscription_id], &form, idempotency_key)
            .await?;
        updated.into_state(Utc::now())
    }

    async fn cancel(
        &self,
        subscription_id: &str,
        _idempotency_key: &str,
    ) -> Result<SubscriptionState, BillingError> {
        // Stripe ignores idempotency keys on DELETE (it is idempotent by definition); instead a
        // refusal is checked against the subscription's state, so cancelling twice succeeds.
        match self
            .transport
            .send::<wire::Subscription>(
                Method::DELETE,
                &["subscriptions", subscription_id],
                &[],
                None,
            )
            .await
        {
            Ok(cancelled) => cancelled.into_state(Utc::now()),
            Err(error @ BillingError::Provider { status, .. }) if (400..500).contains(&status) => {
                match self.subscription(subscription_id).await {
                    Ok(found) => {
                        let state = found.into_state(Utc::now())?;
                        if state.is_ended() {
                            Ok(state)
                        } else {
                            Err(error)
                        }
                    }
                    Err(_) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn fetch_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<SubscriptionState, BillingError> {
        self.subscription(subscription_id)
            .await?
            .into_state(Utc::now())
    }

    fn webhook_signature_header(&self) -> &'static str {
        "Stripe-Signature"
    }

    fn parse_webhook(
        &self,
        payload: &[u8],
        signature_header: &str,
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        let secret = self.webhook_secret()?;
        webhook::verify_signature(secret, payload, signature_header, now)?;
        webhook::parse_event(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        let key = "sk_test_51abcDEF";
        assert_eq!(
            scrub("Invalid API Key provided: sk_test_51abcDEF", key),
            "Invalid API Key provided: [redacted]"
        );
        assert_eq!(
            scrub(
                "Invalid API Key provided: sk_live_********************1234.",
                ""
            ),
            "Invalid API Key provided: [redacted]."
        );
        assert_eq!(
            scrub("whsec_abc and rk_live_x", ""),
            "[redacted] and [redacted]"
        );
        assert_eq!(scrub("task_sk_1 is fine", ""), "task_sk_1 is fine");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        use crate::transport::is_retryable;
        use reqwest::StatusCode;
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS, None));
        assert!(is_retryable(StatusCode::INTERNAL_SERVER_ERROR, None));
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE, None));
        assert!(!is_retryable(StatusCode::BAD_REQUEST, None));
        assert!(!is_retryable(StatusCode::NOT_FOUND, None));
        assert!(!is_retryable(StatusCode::CONFLICT, None));
        assert!(is_retryable(StatusCode::CONFLICT, Some(true)));
        assert!(!is_retryable(StatusCode::BAD_REQUEST, Some(true)));
        assert!(!is_retryable(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(false)
        ));
    }

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let mut config = StripeConfig::new(SecretString::from("sk_test_x"));
        config.retry_base_delay = Duration::from_millis(100);
        let client = StripeClient::new(config).unwrap();
        for _ in 0..20 {
            let first = client.transport.retry_delay(1);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let second = client.transport.retry_delay(2);
            assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&second));
            assert!(client.transport.retry_delay(30) <= crate::transport::MAX_RETRY_DELAY);
        }
    }

    #[test]
    fn configuration_is_checked_and_never_printed() {
        let mut config = StripeConfig::new(SecretString::from("sk_test_topsecret"));
        config.webhook_secret = Some(SecretString::from("whsec_topsecret"));
        assert!(!format!("{config:?}").contains("topsecret"));
        let client = StripeClient::new(config.clone()).unwrap();
        assert!(!format!("{client:?}").contains("topsecret"));

        config.api_base = "not a url".into();
        assert!(matches!(
            StripeClient::new(config.clone()),
            Err(BillingError::NotConfigured(_))
        ));
        let empty = StripeConfig::new(SecretString::from(""));
        assert!(matches!(
            StripeClient::new(empty),
            Err(BillingError::NotConfigured(_))
        ));
    }

    #[test]
    fn urls_keep_ids_in_their_segment() {
        let mut config = StripeConfig::new(SecretString::from("sk_test_x"));
        config.api_base = "http://127.0.0.1:1234/prefix/".into();
        let client = StripeClient::new(config).unwrap();
        let url = client
            .transport
            .url(&["subscriptions", "sub_1/../../customers"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1234/prefix/v1/subscriptions/sub_1%2F..%2F..%2Fcustomers"
        );
    }
}
