//! What the providers' HTTP APIs share: form-encoded requests under a fixed path prefix, JSON
//! answers, an idempotency key on every POST, a timeout, and a few jittered retries where the
//! provider says a retry can help. Each provider brings its authorization, its idempotency
//! header, and how it reads its own error answers.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::BillingError;

/// The longest wait between two attempts, whatever the doubling says.
pub(crate) const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// A refusal as a provider words it.
pub(crate) struct Refusal {
    /// The provider's error type (`invalid_request_error`, `invalid_request`, …).
    pub kind: Option<String>,
    /// The provider's error code (`resource_missing`, `resource_not_found`, …).
    pub code: Option<String>,
    pub message: Option<String>,
    /// The provider's own advice on retrying, when it gives one.
    pub retry: Option<bool>,
}

/// How one provider is reached.
pub(crate) struct Provider {
    /// For logs and messages: `Stripe`, `Chargebee`.
    pub name: &'static str,
    pub api_base: String,
    /// The path segments every call starts with (`v1`; `api`, `v2`).
    pub prefix: &'static [&'static str],
    pub authorization: String,
    /// The secret inside `authorization`, scrubbed from any message the provider echoes.
    pub secret: SecretString,
    pub idempotency_header: &'static str,
    /// The answer header holding the provider's request id, if it sends one.
    pub request_id_header: Option<&'static str>,
    pub default_headers: HeaderMap,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base_delay: Duration,
    /// Reads an error answer.
    pub refusal: fn(&HeaderMap, &[u8]) -> Refusal,
    /// Removes secrets from a message.
    pub scrub: fn(&str, &str) -> String,
}

#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    name: &'static str,
    prefix: &'static [&'static str],
    authorization: HeaderValue,
    secret: SecretString,
    idempotency_header: &'static str,
    request_id_header: Option<&'static str>,
    max_attempts: u32,
    retry_base_delay: Duration,
    refusal: fn(&HeaderMap, &[u8]) -> Refusal,
    scrub: fn(&str, &str) -> String,
}

impl Transport {
    /// Checks the configuration once, at start, so that a bad one fails there rather than at a
    /// customer's first checkout.
    pub fn new(p: Provider) -> Result<Self, BillingError> {
        let name = p.name;
        if p.secret.expose_secret().trim().is_empty() {
            return Err(BillingError::NotConfigured(format!(
                "the {name} key is empty"
            )));
        }
        let mut authorization = HeaderValue::from_str(&p.authorization).map_err(|_| {
            BillingError::NotConfigured(format!(
                "the {name} key holds characters a header cannot carry"
            ))
        })?;
        authorization.set_sensitive(true);
        let base = Url::parse(p.api_base.trim()).map_err(|e| {
            BillingError::NotConfigured(format!("the {name} API base is not a URL: {e}"))
        })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(BillingError::NotConfigured(format!(
                "the {name} API base must be an http(s) URL"
            )));
        }
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .default_headers(p.default_headers)
            .user_agent(concat!("orgbase-billing/", env!("CARGO_PKG_VERSION")))
            .timeout(p.timeout)
            .connect_timeout(p.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| {
                BillingError::NotConfigured(format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            http,
            base,
            name,
            prefix: p.prefix,
            authorization,
            secret: p.secret,
            idempotency_header: p.idempotency_header,
            request_id_header: p.request_id_header,
            max_attempts: p.max_attempts.max(1),
            retry_base_delay: p.retry_base_delay,
            refusal: p.refusal,
            scrub: p.scrub,
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// `{base}/{prefix…}/{segments…}`, each segment percent-encoded, so an id can never reach
    /// another path.
    pub fn url(&self, segments: &[&str]) -> Result<Url, BillingError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                BillingError::NotConfigured(format!(
                    "the {} API base must be an http(s) URL",
                    self.name
                ))
            })?;
            path.pop_if_empty()
                .extend(self.prefix.iter().copied())
                .extend(segments);
        }
        Ok(url)
    }

    pub async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, BillingError> {
        self.send(Method::GET, segments, &[], None).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<T, BillingError> {
        self.send(Method::POST, segments, form, Some(idempotency_key))
            .await
    }

    /// One request, attempted up to `max_attempts` times. A POST carries its idempotency key on
    /// every attempt, which is what makes retrying it safe.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        form: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<T, BillingError> {
        let url = self.url(segments)?;
        let body = (method == Method::POST).then(|| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish()
        });
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.authorization.clone());
            if let Some(key) = idempotency_key {
                request = request.header(self.idempotency_header, key);
            }
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone());
            }
            let (error, retry) = match self.attempt(request).await {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        BillingError::InvalidResponse(format!("{method} {}: {e}", url.path()))
                    })
                }
                Err(failure) => failure,
            };
            if !retry || attempt >= self.max_attempts {
                return Err(error);
            }
            let delay = self.retry_delay(attempt);
            tracing::warn!(
                provider = self.name,
                %method,
                path = url.path(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "billing provider request failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The body of a successful answer, or the error with whether another attempt may help.
    async fn attempt(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, (BillingError, bool)> {
        let response = request.send().await.map_err(|e| {
            let retry = !e.is_timeout();
            (self.transport_error(e), retry)
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| (self.transport_error(e), false))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let refusal = (self.refusal)(&headers, &bytes);
        let retry = is_retryable(status, refusal.retry);
        let request_id = self
            .request_id_header
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let message = refusal
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("an unexpected status")
                    .to_owned()
            });
        let error = BillingError::Provider {
            status: status.as_u16(),
            kind: refusal.kind,
            code: refusal.code,
            message: (self.scrub)(&message, self.secret.expose_secret()),
            request_id,
        };
        Err((error, retry))
    }

    fn transport_error(&self, error: reqwest::Error) -> BillingError {
        if error.is_timeout() {
            return BillingError::Timeout;
        }
        // `reqwest::Error`'s own text is terse ("error sending request"); its causes say why
        // ("Connection refused"). The URL is left out: it says nothing the caller lacks.
        let error = error.without_url();
        let mut message = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(inner) = cause {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            cause = inner.source();
        }
        BillingError::Transport((self.scrub)(&message, self.secret.expose_secret()))
    }

    /// Exponential from `retry_base_delay`, capped, and jittered into its upper half so that
    /// clients that failed together do not retry together.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .retry_base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(MAX_RETRY_DELAY);
        let half = exponential / 2;
        let jitter_ms = half.as_millis() as u64;
        let jitter = if jitter_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::Rng::gen_range(&mut rand::thread_rng(), 0..=jitter_ms))
        };
        half + jitter
    }
}

/// The provider's advice wins when given; otherwise rate limiting and server errors are retried
/// and every other refusal is final (the same request would be refused again). `true` is also
/// honoured on a 409, which Stripe sends while another request with the same idempotency key is
/// still in flight.
pub(crate) fn is_retryable(status: StatusCode, advice: Option<bool>) -> bool {
    let transient = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    match advice {
        Some(false) => false,
        Some(true) => transient || status == StatusCode::CONFLICT,
        None => transient,
    }
}
