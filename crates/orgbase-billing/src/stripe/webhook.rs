//! Stripe's webhook signatures, checked as Stripe specifies them: the header
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>,…` (other schemes, such as `v0`, are
//! ignored); each `v1` is HMAC-SHA256, keyed with the endpoint's signing secret, over
//! `"{t}.{raw body}"`; any one matching is enough, so a secret can be rolled with both active.
//! The timestamp bounds how long a captured delivery can be replayed.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::wire;
use crate::{WebhookError, WebhookEvent, WebhookEventKind};

type HmacSha256 = Hmac<Sha256>;

/// How far a signature's timestamp may be from now, either way: Stripe's libraries' default.
pub const TOLERANCE_SECONDS: i64 = 300;

/// The MAC over `"{timestamp}.{payload}"`. `None` cannot happen (HMAC takes keys of any
/// length); it is a value rather than a panic so no caller has to trust that.
fn mac(secret: &str, timestamp: &str, payload: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    Some(mac)
}

/// A valid `Stripe-Signature` header for `payload` signed at `timestamp` (unix seconds), as
/// Stripe would send it: for tests, the benchmark and local tooling.
pub fn sign_webhook(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let t = timestamp.to_string();
    match mac(secret, &t, payload) {
        Some(mac) => format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes())),
        None => format!("t={t}"),
    }
}

/// Checks `header` against the raw `payload`: well formed, a `v1` that matches, and a timestamp
/// within [`TOLERANCE_SECONDS`] of `now`. The signature is checked before the time, so a forged
/// delivery is reported as a mismatch whatever its timestamp.
pub fn verify_signature(
    secret: &str,
    payload: &[u8],
    header: &str,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(WebhookError::MissingSignature);
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<&str> = Vec::new();
    for pair in header.split(',') {
        let (key, value) = pair
            .split_once('=')
            .ok_or(WebhookError::MalformedSignature)?;
        match key.trim() {
            "t" if timestamp.is_none() => timestamp = Some(value.trim()),
            "t" => return Err(WebhookError::MalformedSignature),
            "v1" => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedSignature)?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| WebhookError::MalformedSignature)?;
    if signatures.is_empty() {
        return Err(WebhookError::NoSignature);
    }

    let expected = mac(secret, timestamp, payload).ok_or(WebhookError::NotConfigured)?;
    // Every candidate is compared (in constant time, by `verify_slice`), not just up to the
    // first match.
    let mut matched = false;
    for signature in signatures {
        let Ok(bytes) = hex::decode(signature) else {
            continue;
        };
        matched |= expected.clone().verify_slice(&bytes).is_ok();
    }
    if !matched {
        return Err(WebhookError::SignatureMismatch);
    }

    let age = now.timestamp().saturating_sub(seconds);
    if age > TOLERANCE_SECONDS {
        return Err(WebhookError::Stale);
    }
    if age < -TOLERANCE_SECONDS {
        return Err(WebhookError::FromTheFuture);
    }
    Ok(())
}

/// Reads a verified delivery. Only call this on a payload [`verify_signature`] accepted.
pub fn parse_event(payload: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let event: wire::Event =
        serde_json::from_slice(payload).map_err(|e| WebhookError::InvalidPayload(e.to_string()))?;
    let created = DateTime::from_timestamp(event.created, 0)
        .ok_or_else(|| WebhookError::InvalidPayload("invalid `created`".into()))?;
    let object = event.data.object;
    let invalid = |e: serde_json::Error| {
        WebhookError::InvalidPayload(format!("{} data.object: {e}", event.event_type))
    };
    let subscription = |object: serde_json::Value| -> Result<_, WebhookError> {
        serde_json::from_value::<wire::Subscription>(object)
            .map_err(invalid)?
            .into_state(created)
            .map_err(|e| WebhookError::InvalidPayload(e.to_string()))
    };
    let kind = match event.event_type.as_str() {
        "checkout.session.completed" => WebhookEventKind::CheckoutCompleted(
            serde_json::from_value::<wire::CheckoutSession>(object)
                .map_err(invalid)?
                .into_completed(),
        ),
        "customer.subscription.created" => {
            WebhookEventKind::SubscriptionCreated(subscription(object)?)
        }
        "customer.subscription.updated" => {
            WebhookEventKind::SubscriptionUpdated(subscription(object)?)
        }
        "customer.subscription.deleted" => {
            WebhookEventKind::SubscriptionDeleted(subscription(object)?)
        }
        "invoice.paid" => WebhookEventKind::InvoicePaid(
            serde_json::from_value::<wire::Invoice>(object)
                .map_err(invalid)?
                .into_event(),
        ),
        "invoice.payment_failed" => WebhookEventKind::InvoicePaymentFailed(
            serde_json::from_value::<wire::Invoice>(object)
                .map_err(invalid)?
                .into_event(),
        ),
        other => WebhookEventKind::Other {
            event_type: other.to_owned(),
        },
    };
    Ok(WebhookEvent {
        id: event.id,
        event_type: event.event_type,
        created,
        livemode: event.livemode,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_matches_an_independent_hmac() {
        // HMAC-SHA256(key "whsec_test", "1700000000.{}"), computed with Python's hmac module.
        assert_eq!(
            sign_webhook("whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
