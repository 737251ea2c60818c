use std::time::{Duration, Instant};

use orgbase_mail::testing::{body_text, header, outbox_files, SmtpServer};
use orgbase_mail::{from_config, Mail, MailError, Mailer, OutboxMailer, SmtpMailer};

const FROM: &str = "Orgbase <no-reply@localhost>";

fn invitation(to: &str) -> Mail {
    Mail {
        to: to.into(),
        to_name: Some("Jörg Müller".into()),
        subject: "Einladung zu Müller GmbH".into(),
        text:
            "Hallo Jörg,\n\nbitte folge diesem Link: http://127.0.0.1:8080/invite/abc123\n\nGrüße\n"
                .into(),
    }
}

#[tokio::test]
async fn outbox_writes_one_readable_eml_file_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("mail-outbox");
    let mailer = OutboxMailer::new(&outbox, FROM).unwrap();
    assert_eq!(mailer.describe(), format!("outbox {}", outbox.display()));

    mailer.send(&invitation("joerg@example.com")).await.unwrap();
    let second = Mail {
        to: "ada@example.com".into(),
        to_name: None,
        subject: "Second".into(),
        text: "two".into(),
    };
    mailer.send(&second).await.unwrap();

    // Only the two messages: no temporary file is left behind.
    let entries: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(entries.len(), 2);
    let files = outbox_files(&outbox);
    assert_eq!(files.len(), 2);
    let name = files[0].file_name().unwrap().to_str().unwrap();
    // 20261123T184500.123456Z-<uuid>.eml
    assert_eq!(
        name.len(),
        "20261123T184500.123456Z-".len() + 36 + ".eml".len(),
        "{name}"
    );
    assert_eq!(&name[8..9], "T", "{name}");
    assert_eq!(&name[22..24], "Z-", "{name}");

    let first = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(
        header(&first, "To").as_deref(),
        Some("Jörg Müller <joerg@example.com>")
    );
    assert_eq!(
        header(&first, "From").as_deref(),
        Some("Orgbase <no-reply@localhost>")
    );
    assert_eq!(
        header(&first, "Subject").as_deref(),
        Some("Einladung zu Müller GmbH")
    );
    assert!(header(&first, "Date").is_some(), "{first}");
    assert!(header(&first, "Message-ID").is_some(), "{first}");
    assert!(
        header(&first, "Content-Type")
            .unwrap()
            .to_ascii_lowercase()
            .contains("charset=utf-8"),
        "{first}"
    );
    assert_eq!(body_text(&first), invitation("").text);

    let later = std::fs::read_to_string(&files[1]).unwrap();
    assert_eq!(header(&later, "Subject").as_deref(), Some("Second"));
    assert_eq!(body_text(&later), "two");
}

#[tokio::test]
async fn a_bad_recipient_is_an_address_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = OutboxMailer::new(dir.path(), FROM).unwrap();
    for to in ["not-an-address", "", "a@b@c", "Ada <ada@example.com>"] {
        let err = mailer.send(&invitation(to)).await.unwrap_err();
        assert!(
            matches!(&err, MailError::Address(a) if a == to),
            "{to}: {err:?}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_bad_sender_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for result in [
        OutboxMailer::new(dir.path(), "Orgbase <nope>").map(|_| ()),
        SmtpMailer::new("smtp://127.0.0.1:2525", "Orgbase <nope>").map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, MailError::Config(m) if m.contains("Orgbase <nope>")),
            "{err:?}"
        );
    }
}

#[test]
fn from_config_picks_smtp_when_a_url_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let smtp = from_config(Some("smtp://127.0.0.1:2525"), FROM, &outbox).unwrap();
    assert_eq!(smtp.describe(), "smtp://127.0.0.1:2525");
    assert!(!outbox.exists());
    for unset in [None, Some(""), Some("  ")] {
        let mailer = from_config(unset, FROM, &outbox).unwrap();
        assert_eq!(mailer.describe(), format!("outbox {}", outbox.display()));
    }
    assert!(outbox.is_dir());
}

#[tokio::test]
async fn smtp_delivers_to_a_real_server() {
    let server = SmtpServer::start();
    let mailer = SmtpMailer::new(&server.url(), FROM).unwrap();
    assert_eq!(mailer.describe(), server.url());

    mailer.send(&invitation("joerg@example.com")).await.unwrap();

    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(
        header(message, "X-RcptTo").as_deref(),
        Some("joerg@example.com")
    );
    assert_eq!(
        header(message, "X-MailFrom").as_deref(),
        Some("no-reply@localhost")
    );
    assert_eq!(
        header(message, "To").as_deref(),
        Some("Jörg Müller <joerg@example.com>")
    );
    assert_eq!(
        header(message, "Subject").as_deref(),
        Some("Einladung zu Müller GmbH")
    );
    let body = body_text(message);
    assert!(body.contains("/invite/abc123"), "{message}");
    assert!(body.contains("Grüße"), "{message}");
}

#[tokio::test]
async fn smtp_to_a_closed_port_fails_with_a_send_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mailer = SmtpMailer::new(&format!("smtp://127.0.0.1:{port}"), FROM).unwrap();
    let started = Instant::now();
    let err = mailer
        .send(&invitation("joerg@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Send(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(11));
}

#[tokio::test]
async fn smtp_gives_up_on_a_server_that_never_answers() {
    // Accepts connections (the kernel's backlog does that) but never says hello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mailer = SmtpMailer::new(&url, FROM)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = mailer
        .send(&invitation("joerg@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MailError::Send(m) if m.contains("no answer")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn credentials_never_show() {
    let mailer = SmtpMailer::new("smtps://orgbase:s3cr3t-pa55@mail.example.com:465", FROM).unwrap();
    assert_eq!(mailer.describe(), "smtps://mail.example.com:465");
    let debug = format!("{mailer:?}");
    assert!(!debug.contains("s3cr3t-pa55"), "{debug}");
    assert!(!debug.contains("orgbase:"), "{debug}");

    let mailer = SmtpMailer::new(
        "smtp://orgbase:s3cr3t-pa55@mail.example.com:587?tls=required",
        FROM,
    )
    .unwrap();
    assert_eq!(
        mailer.describe(),
        "smtp://mail.example.com:587?tls=required"
    );
}

#[tokio::test]
async fn send_errors_do_not_show_credentials() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mailer = SmtpMailer::new(
        &format!("smtp://orgbase:s3cr3t-pa55@127.0.0.1:{port}"),
        FROM,
    )
    .unwrap();
    let err = mailer
        .send(&invitation("joerg@example.com"))
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cr3t-pa55"), "{shown}");
    assert!(
        shown.contains(&format!("smtp://127.0.0.1:{port}")),
        "{shown}"
    );
}
