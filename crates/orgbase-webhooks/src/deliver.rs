//! One attempt at delivering one message: a signed POST, with a 15-second limit, no redirects
//! followed, and at most 64 KiB of the answer read (its first KiB kept).
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::guard::{is_private, GuardedResolver};

/// The whole attempt's time limit.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// A test send's time limit (at most; the API also keeps it under half the request deadline):
/// so that a slow receiver is an answer about the receiver ("timed out"), not a timeout of our
/// own.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read.
pub const MAX_READ: usize = 64 * 1024;
/// The most of an answer kept with the attempt.
pub const KEPT: usize = 1024;

/// What an attempt got.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    pub status: Option<u16>,
    /// The first KiB of the answer, as text.
    pub response: Option<String>,
    pub duration_ms: u32,
    /// Why there was no answer.
    pub error: Option<String>,
    /// The receiver's `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

impl Sent {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
    /// 410 Gone: the receiver wants no more.
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// Sends deliveries. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    allow_private: bool,
}

impl Deliverer {
    pub fn new(allow_private: bool) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect in our stead, around the guard.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .user_agent(concat!("Orgbase-Webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(8)
            .build()
            .expect("the webhook HTTP client builds");
        Self {
            client,
            allow_private,
        }
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// POSTs `body` to `url` as message `id`, signed with each of `secrets`, at `now`; the whole
    /// attempt (connecting, sending, reading) within `limit` ([`TIMEOUT`] for a delivery).
    pub async fn send(
        &self,
        url: &str,
        id: &str,
        body: &str,
        secrets: &[&str],
        now: DateTime<Utc>,
        limit: Duration,
    ) -> Sent {
        let started = Instant::now();
        let mut sent = self.attempt(url, id, body, secrets, now, limit).await;
        sent.duration_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
        sent
    }

    async fn attempt(
        &self,
        url: &str,
        id: &str,
        body: &str,
        secrets: &[&str],
        now: DateTime<Utc>,
        limit: Duration,
    ) -> Sent {
        let fail = |e: String| Sent {
            error: Some(e),
            ..Sent::default()
        };
        let parsed = match url::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return fail(format!("not a URL: {e}")),
        };
        // A literal address is not resolved, so the resolver cannot judge it: judge it here.
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !self.allow_private && is_private(ip)) {
            return fail("the URL names an internal address: refused".into());
        }
        let timestamp = now.timestamp();
        let request = self
            .client
            .post(parsed)
            .timeout(limit)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                crate::sign::header(secrets, id, timestamp, body.as_bytes()),
            )
            .body(body.to_owned());
        let mut res = match request.send().await {
            Ok(r) => r,
            Err(e) => return fail(describe(&e)),
        };
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after_secs(v, now));
        let mut read = Vec::new();
        let mut error = None;
        while read.len() < MAX_READ {
            match res.chunk().await {
                Ok(Some(c)) => read.extend_from_slice(&c[..c.len().min(MAX_READ - read.len())]),
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("reading the answer: {}", describe(&e)));
                    break;
                }
            }
        }
        read.truncate(KEPT);
        Sent {
            status: Some(status),
            response: Some(String::from_utf8_lossy(&read).into_owned()),
            duration_ms: 0,
            error,
            retry_after,
        }
    }
}

/// `Retry-After` in seconds: delay-seconds, or an HTTP date (RFC 9110 10.2.3).
fn retry_after_secs(v: &str, now: DateTime<Utc>) -> Option<u64> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&Utc) - now).num_seconds().max(0) as u64)
}

/// An HTTP client error in one line, with its causes.
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener on 127.0.0.1 that counts the connections it gets.
    async fn listener() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // The request (small: one read holds it), then the answer.
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        (port.to_string(), hits)
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after_secs(" 120 ", now), Some(120));
        assert_eq!(
            retry_after_secs("Sun, 06 Dec 2026 10:01:30 GMT", now),
            Some(90)
        );
        assert_eq!(
            retry_after_secs("Sun, 06 Dec 2026 09:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(retry_after_secs("soon", now), None);
    }

    /// At send time the guard holds for an address and for a name that resolves inward (what
    /// DNS rebinding would do to an endpoint saved while its name resolved outward).
    #[tokio::test]
    async fn internal_addresses_are_refused_when_sending() {
        let (port, hits) = listener().await;
        let guarded = Deliverer::new(false);
        let now = chrono::Utc::now();
        for url in [
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://localhost:{port}/hook"),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        ] {
            let sent = guarded
                .send(&url, "evt_1", "{}", &["whsec_dGVzdA=="], now, TIMEOUT)
                .await;
            assert!(sent.status.is_none(), "{url}: {sent:?}");
            assert!(sent.error.is_some(), "{url}");
        }
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        let open = Deliverer::new(true);
        let sent = open
            .send(
                &format!("http://localhost:{port}/hook"),
                "evt_1",
                "{}",
                &["whsec_dGVzdA=="],
                now,
                TIMEOUT,
            )
            .await;
        assert_eq!(sent.status, Some(204), "{sent:?}");
    }
}
