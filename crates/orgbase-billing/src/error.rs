//! What can go wrong talking to a provider, and with a webhook delivery. Every message here is
//! safe to log and to show: none carries a secret key or a webhook secret.

/// A provider call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// The provider is not set up here (no secret key, an API base that is not a URL): an
    /// operator's problem, not the customer's.
    #[error("billing is not configured: {0}")]
    NotConfigured(String),
    /// The provider answered with an error. `message` is the provider's own explanation, with
    /// anything that looks like a secret key removed.
    #[error("the billing provider refused the request ({status}): {message}")]
    Provider {
        status: u16,
        /// The provider's error type (`invalid_request_error`, `card_error`, …).
        kind: Option<String>,
        /// The provider's error code (`resource_missing`, …).
        code: Option<String>,
        message: String,
        /// The provider's id for the request, for its support.
        request_id: Option<String>,
    },
    /// No answer within the configured timeout. The request may or may not have been carried
    /// out: repeat it with the same idempotency key.
    #[error("the billing provider did not answer in time")]
    Timeout,
    /// The connection failed (after the retries).
    #[error("cannot reach the billing provider: {0}")]
    Transport(String),
    /// The provider answered something this client cannot read.
    #[error("unexpected answer from the billing provider: {0}")]
    InvalidResponse(String),
}

impl BillingError {
    /// What a client may be told: the provider's own refusal, or that it could not be reached,
    /// never a connection's or a parser's internals (those go to the log).
    pub fn public_detail(&self) -> String {
        match self {
            Self::NotConfigured(why) => why.clone(),
            Self::Provider { message, .. } => {
                format!("the billing provider refused the request: {message}")
            }
            Self::Timeout => "the billing provider did not answer in time".into(),
            Self::Transport(_) => "the billing provider cannot be reached".into(),
            Self::InvalidResponse(_) => "the billing provider answered unexpectedly".into(),
        }
    }

    /// The provider says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Provider { status: 404, .. })
            || matches!(self, Self::Provider { code: Some(code), .. } if code == "resource_missing")
    }
}

/// A webhook delivery that must not be acted on. Each is answered with a 400 and changes
/// nothing; the variants say why, for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No webhook secret is configured, so no delivery can be trusted.
    #[error("no webhook secret is configured")]
    NotConfigured,
    #[error("the signature header is missing")]
    MissingSignature,
    #[error("the signature header is malformed")]
    MalformedSignature,
    /// The header has a timestamp but no signature of the scheme we check (`v1`).
    #[error("the signature header has no v1 signature")]
    NoSignature,
    /// No signature matches the body: a wrong secret or a changed body.
    #[error("no signature matches the payload")]
    SignatureMismatch,
    /// Signed longer ago than the tolerance: possibly a replay.
    #[error("the signature timestamp is too old")]
    Stale,
    /// Signed further ahead than the tolerance.
    #[error("the signature timestamp is in the future")]
    FromTheFuture,
    /// Signed correctly but not an event we can read.
    #[error("the payload is not a valid event: {0}")]
    InvalidPayload(String),
    /// The delivery's credentials (a provider's HTTP Basic) are wrong: answered 401.
    #[error("the webhook's credentials are wrong")]
    Unauthorized,
    /// The provider, asked for the event the body names, does not know it or says otherwise: a
    /// forged or altered body.
    #[error("the provider does not confirm the event: {0}")]
    Unverified(String),
    /// The provider could not be asked to confirm the event: answered 503, so that it delivers
    /// again later.
    #[error("the provider cannot confirm the event now: {0}")]
    ProviderUnavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_detail_keeps_internals_out() {
        let e = BillingError::Transport(
            "error sending request for url (http://10.0.0.7:12111/v1/customers): tcp connect"
                .into(),
        );
        assert_eq!(e.public_detail(), "the billing provider cannot be reached");
        let e = BillingError::Provider {
            status: 400,
            kind: None,
            code: None,
            message: "No such price: 'price_x'".into(),
            request_id: None,
        };
        assert!(e.public_detail().ends_with("No such price: 'price_x'"));
    }
}
