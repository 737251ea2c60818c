//! Chargebee over its documented HTTP API v2 ("product catalog 2.0"), through
//! [`crate::transport`]: form-encoded requests in Chargebee's bracket notation
//! (`subscription_items[item_price_id][0]=…`), JSON answers, HTTP Basic with the API key as user
//! name, and `chargebee-idempotency-key` on every POST.
//!
//! Chargebee signs no webhook. Its documented protection is HTTP Basic on the webhook URL; on top
//! of that, [`ChargebeeClient::verify_webhook`] re-fetches every event by id from the events API
//! and reads the event from that answer, never from the body it was sent: a forged body can name
//! an event, not change one.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use orgbase_domain::BillingProvider;
use reqwest::header::HeaderMap;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::transport::{Provider, Refusal, Transport};
use crate::{
    BillingClient, BillingError, CheckoutRequest, CheckoutSession, CustomerRef, SubscriptionState,
    WebhookError, WebhookEvent,
};

mod wire;

/// How Orgbase reaches Chargebee. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct ChargebeeConfig {
    /// The site: `acme` for `https://acme.chargebee.com` (`ORGBASE_CHARGEBEE_SITE`).
    pub site: String,
    /// The full API key (`ORGBASE_CHARGEBEE_API_KEY`).
    pub api_key: SecretString,
    /// The Basic auth Chargebee is configured to send with its webhooks
    /// (`ORGBASE_CHARGEBEE_WEBHOOK_USERNAME` / `_PASSWORD`). Without them no delivery is accepted.
    pub webhook_username: Option<String>,
    pub webhook_password: Option<SecretString>,
    /// `ORGBASE_CHARGEBEE_API_BASE`: `https://{site}.chargebee.com` unless set (tests point it at
    /// a local stand-in).
    pub api_base: Option<String>,
    /// For one attempt of one request, connecting included.
    pub timeout: Duration,
    /// Attempts per request, the first included; only 429, 5xx and connection failures are
    /// attempted again.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles for each further one, with jitter.
    pub retry_base_delay: Duration,
}

impl ChargebeeConfig {
    /// The site's own API, a 10 s timeout and up to 3 attempts.
    pub fn new(site: impl Into<String>, api_key: SecretString) -> Self {
        Self {
            site: site.into(),
            api_key,
            webhook_username: None,
            webhook_password: None,
            api_base: None,
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            retry_base_delay: Duration::from_millis(250),
        }
    }

    /// Where the API is: `api_base`, else the site's.
    pub fn api_base(&self) -> String {
        match &self.api_base {
            Some(base) if !base.trim().is_empty() => base.trim().to_owned(),
            _ => format!("https://{}.chargebee.com", self.site.trim()),
        }
    }
}

/// [`BillingClient`] for Chargebee.
#[derive(Clone)]
pub struct ChargebeeClient {
    transport: Transport,
    /// The webhook's Basic auth, as the `Authorization` header must read.
    webhook_authorization: Option<SecretString>,
    /// A test site's (`…-test`) events are not live.
    livemode: bool,
}

impl fmt::Debug for ChargebeeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChargebeeClient")
            .field("api_base", &self.transport.base().as_str())
            .field("max_attempts", &self.transport.max_attempts())
            .finish_non_exhaustive()
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Chargebee's error answer: `{"message", "type"?, "api_error_code", …}`.
fn refusal(_: &HeaderMap, body: &[u8]) -> Refusal {
    match serde_json::from_slice::<wire::ErrorBody>(body) {
        Ok(e) => Refusal {
            kind: e.kind,
            code: e.api_error_code,
            message: e.message,
            retry: None,
        },
        Err(_) => Refusal {
            kind: None,
            code: None,
            message: None,
            retry: None,
        },
    }
}

/// Replaces the configured key with `[redacted]`.
fn scrub(message: &str, secret: &str) -> String {
    if secret.is_empty() {
        message.to_owned()
    } else {
        message.replace(secret, "[redacted]")
    }
}

/// Equal, in time that does not depend on where they differ (both are MACed with one key and
/// the MACs compared in constant time).
fn same_secret(given: &str, expected: &str) -> bool {
    let key = b"orgbase-chargebee-webhook-auth";
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(expected.as_bytes());
    let expected = mac.finalize().into_bytes();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(given.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

impl ChargebeeClient {
    /// Checks the configuration once, at start, so that a bad one fails there rather than at a
    /// customer's first checkout.
    pub fn new(config: ChargebeeConfig) -> Result<Self, BillingError> {
        if config.site.trim().is_empty() && config.api_base.is_none() {
            return Err(BillingError::NotConfigured(
                "the Chargebee site is not set".into(),
            ));
        }
        let webhook_authorization = match (&config.webhook_username, &config.webhook_password) {
            (Some(user), Some(password)) if !user.is_empty() => {
                Some(SecretString::from(basic(user, password.expose_secret())))
            }
            _ => None,
        };
        let transport = Transport::new(Provider {
            name: "Chargebee",
            authorization: basic(config.api_key.expose_secret(), ""),
            api_base: config.api_base(),
            prefix: &["api", "v2"],
            secret: config.api_key,
            idempotency_header: "chargebee-idempotency-key",
            request_id_header: None,
            default_headers: HeaderMap::new(),
            timeout: config.timeout,
            max_attempts: config.max_attempts,
            retry_base_delay: config.retry_base_delay,
            refusal,
            scrub,
        })?;
        Ok(Self {
            transport,
            webhook_authorization,
            livemode: !config.site.trim().ends_with("-test"),
        })
    }

    async fn subscription(&self, id: &str) -> Result<wire::SubscriptionEnvelope, BillingError> {
        self.transport.get(&["subscriptions", id]).await
    }

    fn state(&self, found: wire::SubscriptionEnvelope) -> Result<SubscriptionState, BillingError> {
        found
            .subscription
            .into_state(found.customer.as_ref(), Utc::now())
    }

    /// Reads the event a delivery names after checking its Basic auth, from the body itself:
    /// step one of [`Self::verify_webhook`], not to be acted on alone.
    fn delivered(&self, payload: &[u8], authorization: &str) -> Result<wire::Event, WebhookError> {
        let expected = self
            .webhook_authorization
            .as_ref()
            .ok_or(WebhookError::NotConfigured)?;
        if !same_secret(authorization.trim(), expected.expose_secret()) {
            return Err(WebhookError::Unauthorized);
        }
        serde_json::from_slice::<wire::Event>(payload)
            .map_err(|e| WebhookError::InvalidPayload(e.to_string()))
    }

    fn event(&self, e: wire::Event) -> Result<WebhookEvent, WebhookError> {
        let id = e.id.clone();
        let event_type = e.event_type.clone();
        let (kind, created) = e
            .meaning()
            .map_err(|e| WebhookError::InvalidPayload(e.to_string()))?;
        Ok(WebhookEvent {
            id,
            event_type,
            created,
            livemode: self.livemode,
            kind,
        })
    }
}

#[async_trait]
impl BillingClient for ChargebeeClient {
    fn provider(&self) -> BillingProvider {
        BillingProvider::Chargebee
    }

    async fn ensure_customer(
        &self,
        customer: &CustomerRef,
        idempotency_key: &str,
    ) -> Result<String, BillingError> {
        let organization_id = customer.organization_id.to_string();
        // The organization's customer is named after it: a lost answer, or a customer made
        // earlier, is found again by that id.
        for id in customer
            .existing_customer_id
            .iter()
            .map(String::as_str)
            .chain([organization_id.as_str()])
        {
            match self
                .transport
                .get::<wire::CustomerEnvelope>(&["customers", id])
                .await
            {
                Ok(found) if !found.customer.deleted => return Ok(found.customer.id),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let meta = serde_json::json!({ "organization_id": organization_id }).to_string();
        let mut form = vec![
            ("id", organization_id.as_str()),
            ("company", customer.name.as_str()),
            ("meta_data", meta.as_str()),
        ];
        if let Some(email) = customer.email.as_deref() {
            form.push(("email", email));
        }
        let created: wire::CustomerEnvelope = self
            .transport
            .post(&["customers"], &form, idempotency_key)
            .await?;
        Ok(created.customer.id)
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<CheckoutSession, BillingError> {
        // Chargebee shows this on the hosted page only (no webhook carries it): the webhooks
        // name the organization by its customer.
        let pass_thru = serde_json::json!({
            "organization_id": request.organization_id.to_string(),
            "plan_id": request.plan_id,
        })
        .to_string();
        let form = [
            (
                "subscription_items[item_price_id][0]",
                request.price_id.as_str(),
            ),
            ("subscription_items[quantity][0]", "1"),
            ("customer[id]", request.customer_id.as_str()),
            ("pass_thru_content", pass_thru.as_str()),
            ("redirect_url", request.success_url.as_str()),
            ("cancel_url", request.cancel_url.as_str()),
        ];
        let page: wire::HostedPageEnvelope = self
            .transport
            .post(
                &["hosted_pages", "checkout_new_for_items"],
                &form,
                idempotency_key,
            )
            .await?;
        let url = page
            .hosted_page
            .url
            .ok_or_else(|| BillingError::InvalidResponse("the hosted page has no url".into()))?;
        Ok(CheckoutSession {
            id: page.hosted_page.id,
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
        // Already there (a retry after the change went through, say): nothing to prorate.
        if current.subscription.plan_price() == Some(new_price_id) {
            return self.state(current);
        }
        // A plan item's price replaces the plan item; the add-ons stay.
        let form = [
            ("subscription_items[item_price_id][0]", new_price_id),
            ("subscription_items[quantity][0]", "1"),
            ("prorate", "true"),
        ];
        let updated: wire::SubscriptionEnvelope = self
            .transport
            .post(
                &["subscriptions", subscription_id, "update_for_items"],
                &form,
                idempotency_key,
            )
            .await?;
        self.state(updated)
    }

    async fn cancel(
        &self,
        subscription_id: &str,
        idempotency_key: &str,
    ) -> Result<SubscriptionState, BillingError> {
        let form = [("end_of_term", "false")];
        match self
            .transport
            .send::<wire::SubscriptionEnvelope>(
                Method::POST,
                &["subscriptions", subscription_id, "cancel_for_items"],
                &form,
                Some(idempotency_key),
            )
            .await
        {
            Ok(cancelled) => self.state(cancelled),
            // Cancelled already: answered with its state, so cancelling twice succeeds.
            Err(error @ BillingError::Provider { .. }) if matches!(&error, BillingError::Provider { code: Some(c), .. } if c == "invalid_state_for_request") =>
            {
                let state = self.state(self.subscription(subscription_id).await?)?;
                if state.is_ended() {
                    Ok(state)
                } else {
                    Err(error)
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn fetch_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<SubscriptionState, BillingError> {
        let found = self.subscription(subscription_id).await?;
        self.state(found)
    }

    fn webhook_signature_header(&self) -> &'static str {
        "Authorization"
    }

    /// Checks the Basic auth and reads the body. Chargebee signs nothing, so this alone proves
    /// nothing about the content: use [`Self::verify_webhook`], which re-fetches the event.
    fn parse_webhook(
        &self,
        payload: &[u8],
        signature_header: &str,
        _now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        let delivered = self.delivered(payload, signature_header)?;
        self.event(delivered)
    }

    /// Checks the Basic auth, then reads the event from Chargebee's events API by the id the
    /// body names: what is applied is Chargebee's event, whatever the body said. An id Chargebee
    /// does not know, or a type that differs, is refused.
    async fn verify_webhook(
        &self,
        payload: &[u8],
        signature_header: &str,
        _now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        let delivered = self.delivered(payload, signature_header)?;
        let fetched = match self
            .transport
            .get::<wire::EventEnvelope>(&["events", &delivered.id])
            .await
        {
            Ok(e) => e.event,
            Err(e) if e.is_not_found() => {
                return Err(WebhookError::Unverified(format!(
                    "Chargebee has no event {}",
                    delivered.id
                )))
            }
            Err(e) => return Err(WebhookError::ProviderUnavailable(e.to_string())),
        };
        if fetched.id != delivered.id || fetched.event_type != delivered.event_type {
            return Err(WebhookError::Unverified(format!(
                "the event {} is a {} at Chargebee, not a {}",
                delivered.id, fetched.event_type, delivered.event_type
            )));
        }
        self.event(fetched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ChargebeeConfig {
        let mut c = ChargebeeConfig::new("acme-test", SecretString::from("test_topsecret"));
        c.webhook_username = Some("cb".into());
        c.webhook_password = Some(SecretString::from("hook-topsecret"));
        c
    }

    #[test]
    fn configuration_is_checked_and_never_printed() {
        let c = config();
        assert!(!format!("{c:?}").contains("topsecret"));
        assert_eq!(c.api_base(), "https://acme-test.chargebee.com");
        let client = ChargebeeClient::new(c.clone()).unwrap();
        assert!(!format!("{client:?}").contains("topsecret"));
        assert!(!client.livemode);
        assert_eq!(
            client
                .transport
                .url(&["events", "ev_1/../x"])
                .unwrap()
                .as_str(),
            "https://acme-test.chargebee.com/api/v2/events/ev_1%2F..%2Fx"
        );
        let mut empty = c.clone();
        empty.api_key = SecretString::from("");
        assert!(matches!(
            ChargebeeClient::new(empty),
            Err(BillingError::NotConfigured(_))
        ));
        let mut nowhere = c;
        nowhere.site = String::new();
        assert!(matches!(
            ChargebeeClient::new(nowhere),
            Err(BillingError::NotConfigured(_))
        ));
    }

    #[test]
    fn webhook_auth_is_checked_before_the_body_is_read() {
        let client = ChargebeeClient::new(config()).unwrap();
        let body = br#"{"id": "ev_1", "event_type": "customer_created", "occurred_at": 1}"#;
        let right = basic("cb", "hook-topsecret");
        assert!(client.delivered(body, &right).is_ok());
        assert_eq!(
            client.delivered(body, &basic("cb", "wrong")).unwrap_err(),
            WebhookError::Unauthorized
        );
        assert_eq!(
            client.delivered(body, "").unwrap_err(),
            WebhookError::Unauthorized
        );
        assert!(matches!(
            client.delivered(b"{", &right).unwrap_err(),
            WebhookError::InvalidPayload(_)
        ));
        let mut unset = config();
        unset.webhook_password = None;
        let client = ChargebeeClient::new(unset).unwrap();
        assert_eq!(
            client.delivered(body, &right).unwrap_err(),
            WebhookError::NotConfigured
        );
    }
}
