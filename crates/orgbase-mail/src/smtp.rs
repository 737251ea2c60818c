use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::{build_message, parse_from, Mail, MailError, Mailer};

/// How long one send may take, connecting included. Invitations are small; a server that has not
/// taken one by then is not going to, and the request that sends it should not hang on it.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends over SMTP with lettre on tokio, TLS by rustls.
///
/// The URL is lettre's: `smtp://host:port` (plain, port 25 by default),
/// `smtp://host:port?tls=required` (STARTTLS, 587), `smtp://host?tls=opportunistic`,
/// `smtps://host:port` (TLS from the start, 465); `smtp://user:password@host…` logs in, with the
/// user and password percent-encoded.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The URL without credentials: what `describe`, `Debug` and errors show.
    target: String,
    timeout: Duration,
}

impl SmtpMailer {
    pub fn new(url: &str, from: &str) -> Result<Self, MailError> {
        let from = parse_from(from)?;
        let (target, plain_login) = redacted_target(url)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Config(format!("SMTP URL {target}: {e}")))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        if plain_login {
            tracing::warn!(
                smtp = %target,
                "the SMTP URL has credentials but no TLS: they would cross the network in the \
                 clear; use smtps:// or ?tls=required"
            );
        }
        Ok(Self {
            transport,
            from,
            target,
            timeout: SEND_TIMEOUT,
        })
    }

    /// Overrides the 10 s a send may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// `scheme://host:port[?tls=…]` with the default port filled in as lettre does, and whether a
/// password would be sent without TLS. Checked here too so that no error quotes the URL itself.
fn redacted_target(url: &str) -> Result<(String, bool), MailError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| MailError::Config(format!("SMTP URL is not a URL: {e}")))?;
    let tls = parsed
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned());
    let port = match (parsed.scheme(), tls.as_deref()) {
        ("smtp", None) => 25,
        ("smtp", Some("required" | "opportunistic")) => 587,
        ("smtps", _) => 465,
        (scheme, tls) => {
            return Err(MailError::Config(format!(
                "SMTP URL: scheme {scheme:?} with tls={tls:?}; expected smtp://, \
                 smtp://…?tls=required, smtp://…?tls=opportunistic or smtps://"
            )))
        }
    };
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| MailError::Config("SMTP URL has no host".into()))?;
    let mut target = format!(
        "{}://{host}:{}",
        parsed.scheme(),
        parsed.port().unwrap_or(port)
    );
    if let Some(tls) = &tls {
        target.push_str("?tls=");
        target.push_str(tls);
    }
    let plain_login = parsed.password().is_some() && parsed.scheme() == "smtp" && tls.is_none();
    Ok((target, plain_login))
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = build_message(&self.from, mail)?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => {
                tracing::info!(smtp = %self.target, "mail sent");
                Ok(())
            }
            Ok(Err(e)) => Err(MailError::Send(format!("{}: {e}", self.target))),
            Err(_) => Err(MailError::Send(format!(
                "{}: no answer within {} ms",
                self.target,
                self.timeout.as_millis()
            ))),
        }
    }

    fn describe(&self) -> String {
        self.target.clone()
    }
}

// By hand: lettre's transport holds the credentials.
impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("target", &self.target)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_fill_in_lettre_default_ports_and_drop_credentials() {
        let cases = [
            (
                "smtp://mail.example.com",
                "smtp://mail.example.com:25",
                false,
            ),
            (
                "smtp://u:p@mail.example.com?tls=required",
                "smtp://mail.example.com:587?tls=required",
                false,
            ),
            (
                "smtps://u:p@mail.example.com",
                "smtps://mail.example.com:465",
                false,
            ),
            ("smtp://u:p@127.0.0.1:2525", "smtp://127.0.0.1:2525", true),
        ];
        for (url, target, plain_login) in cases {
            assert_eq!(
                redacted_target(url).unwrap(),
                (target.to_owned(), plain_login)
            );
        }
    }

    #[test]
    fn bad_urls_are_config_errors_that_do_not_quote_the_url() {
        for url in [
            "http://u:hunter22@mail.example.com",
            "smtp://u:hunter22@mail.example.com?tls=maybe",
            "u:hunter22@mail.example.com",
        ] {
            let err = redacted_target(url).unwrap_err();
            assert!(matches!(err, MailError::Config(_)), "{url}: {err}");
            assert!(!err.to_string().contains("hunter22"), "{url}: {err}");
        }
    }
}
