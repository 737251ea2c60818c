//! Orgbase's outgoing e-mail (invitations).
//!
//! Mail goes out over SMTP when a server is configured ([`SmtpMailer`]); otherwise each message is
//! written as one `.eml` file into a local outbox folder ([`OutboxMailer`]), so a development
//! setup or a test can read what would have been sent. [`from_config`] picks one.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Address, Message};

mod outbox;
mod smtp;
pub mod testing;

pub use outbox::OutboxMailer;
pub use smtp::SmtpMailer;

/// One plain-text message to one recipient. Its `Debug` leaves out the text, which may hold a
/// secret link (an invitation).
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The bare address, `ada@example.com`.
    pub to: String,
    /// Shown beside the address, `Ada Lovelace <ada@example.com>`.
    pub to_name: Option<String>,
    pub subject: String,
    /// The body, plain UTF-8 text.
    pub text: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail configuration: {0}")]
    Config(String),
    #[error("invalid address {0:?}")]
    Address(String),
    #[error("sending failed: {0}")]
    Send(String),
}

#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;

    /// Where mail goes, for the start-up log: `smtp://host:port` (never with credentials) or
    /// `outbox ./mail-outbox`.
    fn describe(&self) -> String;
}

/// SMTP when `smtp_url` is set (and not blank), else the outbox folder.
pub fn from_config(
    smtp_url: Option<&str>,
    from: &str,
    outbox_dir: &Path,
) -> Result<Arc<dyn Mailer>, MailError> {
    match smtp_url.map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => Ok(Arc::new(SmtpMailer::new(url, from)?)),
        None => Ok(Arc::new(OutboxMailer::new(
            PathBuf::from(outbox_dir),
            from,
        )?)),
    }
}

fn parse_from(from: &str) -> Result<Mailbox, MailError> {
    from.parse::<Mailbox>().map_err(|e| {
        MailError::Config(format!(
            "sender address {from:?} ({e}); expected e.g. \"Orgbase <no-reply@example.com>\""
        ))
    })
}

/// Header values come from people (organization and person names); a line break in one must not
/// start a header of its own.
fn single_line(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

/// The text as 8bit when its lines allow (under 998 octets each, RFC 5322's limit, and no NUL):
/// the body then reads as written, and a link in it stays whole on one line, however long its
/// host name. lettre's own choice would wrap any line from 76 octets on (quoted-printable, a soft
/// `=` mid-link), which is why the body is handed over encoded. Longer lines get lettre's choice.
fn text_body(text: &str) -> lettre::message::Body {
    use lettre::message::header::ContentTransferEncoding;
    use lettre::message::Body;
    let lines = text.replace("\r\n", "\n").replace('\r', "\n");
    if lines.split('\n').all(|l| l.len() < 998) && !lines.contains('\0') {
        Body::dangerous_pre_encoded(
            lines.replace('\n', "\r\n").into_bytes(),
            ContentTransferEncoding::EightBit,
        )
    } else {
        Body::new(text.to_owned())
    }
}

fn build_message(from: &Mailbox, mail: &Mail) -> Result<Message, MailError> {
    let address: Address = mail
        .to
        .parse()
        .map_err(|_| MailError::Address(mail.to.clone()))?;
    let to = Mailbox::new(mail.to_name.as_deref().map(single_line), address);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(single_line(&mail.subject))
        // lettre's default Message-ID names `localhost`; the sender's domain is the honest one.
        .message_id(Some(format!(
            "<{}@{}>",
            uuid::Uuid::new_v4().simple(),
            from.email.domain()
        )))
        .header(ContentType::TEXT_PLAIN)
        .body(text_body(&mail.text))
        .map_err(|e| MailError::Send(format!("cannot build the message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &str) -> Mail {
        Mail {
            to: to.into(),
            to_name: Some("Ada\r\nBcc: eve@example.com".into()),
            subject: "Hi\r\nBcc: eve@example.com".into(),
            text: "Hello".into(),
        }
    }

    #[test]
    fn line_breaks_in_names_and_subjects_start_no_header() {
        let from = parse_from("Orgbase <no-reply@localhost>").unwrap();
        let message = build_message(&from, &mail("ada@example.com")).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(!text.lines().any(|line| line.starts_with("Bcc:")), "{text}");
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(text.contains("@localhost>"), "{text}");
    }

    #[test]
    fn a_long_link_stays_on_one_line() {
        let from = parse_from("no-reply@localhost").unwrap();
        let link = format!(
            "https://orgbase.a-rather-long-host-name.customers.example.internal:18080/invite/obi_{}",
            "x".repeat(43)
        );
        let m = Mail {
            to: "ada@example.com".into(),
            to_name: Some("Zoë Müller".into()),
            subject: "Join Café Zürich".into(),
            text: format!("Grüße, Zoë invites you:\n\n  {link}\n"),
        };
        let text = String::from_utf8(build_message(&from, &m).unwrap().formatted()).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: 8bit"), "{text}");
        assert!(text.lines().any(|l| l.trim() == link), "{text}");
        assert!(text.contains("Grüße"), "{text}");
        // A line no SMTP server would carry as it is still goes out, encoded.
        let m = Mail {
            text: "y".repeat(2000),
            ..m
        };
        let text = String::from_utf8(build_message(&from, &m).unwrap().formatted()).unwrap();
        assert!(!text.contains("8bit"), "{text}");
        assert!(text.lines().all(|l| l.len() < 998));
    }

    #[test]
    fn from_is_checked() {
        assert!(parse_from("no-reply@localhost").is_ok());
        let err = parse_from("Orgbase <not an address>").unwrap_err();
        assert!(
            matches!(&err, MailError::Config(m) if m.contains("not an address")),
            "{err}"
        );
    }

    #[test]
    fn recipient_with_name_part_is_rejected() {
        let from = parse_from("no-reply@localhost").unwrap();
        let err = build_message(&from, &mail("Ada <ada@example.com>")).unwrap_err();
        assert!(matches!(err, MailError::Address(a) if a == "Ada <ada@example.com>"));
    }
}
