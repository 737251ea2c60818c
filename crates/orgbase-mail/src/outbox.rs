use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::Utc;
use lettre::message::Mailbox;

use crate::{build_message, parse_from, Mail, MailError, Mailer};

/// Writes each message into a folder as `20261123T184500.123456Z-<uuid>.eml`: RFC 5322 text, as
/// it would have gone over SMTP. Names sort by the time of writing; a file appears whole or not at
/// all (written beside, then renamed), so a reader never sees half a message.
#[derive(Debug)]
pub struct OutboxMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl OutboxMailer {
    /// Creates the folder when it is missing.
    pub fn new(dir: impl Into<PathBuf>, from: &str) -> Result<Self, MailError> {
        let dir = dir.into();
        let from = parse_from(from)?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            MailError::Config(format!(
                "cannot create the mail outbox {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Self { dir, from })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<PathBuf> {
    // Same folder, so the rename cannot cross file systems. A dot name no `*.eml` reader matches.
    let mut file = tempfile::Builder::new()
        .prefix(".writing-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    let path = dir.join(name);
    file.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let contents = build_message(&self.from, mail)?.formatted();
        // A v7 uuid rises with time too, so two files written within one microsecond keep order.
        let name = format!(
            "{}-{}.eml",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::now_v7()
        );
        let dir = self.dir.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &contents))
            .await
            .map_err(|e| MailError::Send(format!("outbox writer stopped: {e}")))?;
        match written {
            Ok(path) => {
                tracing::info!(file = %path.display(), "mail written to the outbox");
                Ok(())
            }
            Err(e) => Err(MailError::Send(format!(
                "cannot write into the mail outbox {}: {e}",
                self.dir.display()
            ))),
        }
    }

    fn describe(&self) -> String {
        format!("outbox {}", self.dir.display())
    }
}
