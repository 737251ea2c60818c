//! For tests: a real SMTP server to send to, and helpers to read the messages it (or an outbox
//! folder) received.
//!
//! [`SmtpServer`] runs Python's aiosmtpd (`pip install aiosmtpd`), which stores every message it
//! accepts in a maildir before it answers `250`, so once `send` has returned the message is there.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// `python3 -m aiosmtpd` on `127.0.0.1` and a free port, storing into a temporary maildir.
/// Killed on drop.
pub struct SmtpServer {
    server: orgbase_testkit::PythonServer,
    maildir: PathBuf,
    // Last, so the folder goes after the process that writes into it.
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts the server and waits until it accepts connections.
    ///
    /// # Panics
    /// When it is not answering within 10 s, with what it printed; when aiosmtpd is missing, with
    /// how to install it.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for the SMTP server");
        let maildir = dir.path().join("maildir");
        let spec = orgbase_testkit::PythonServerSpec {
            name: "the test SMTP server (aiosmtpd)",
            module: "aiosmtpd",
            package: "aiosmtpd",
            timeout: START_TIMEOUT,
        };
        let server = orgbase_testkit::start_python_server(&spec, dir.path(), |port| {
            vec![
                "-m".into(),
                "aiosmtpd".into(),
                "-n".into(),
                "-l".into(),
                format!("127.0.0.1:{port}"),
                "-c".into(),
                "aiosmtpd.handlers.Mailbox".into(),
                maildir.display().to_string(),
            ]
        });
        Self {
            server,
            maildir,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.server.port)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The raw RFC 5322 text of every message received so far, oldest first. aiosmtpd adds its
    /// own `X-Peer`, `X-MailFrom` and `X-RcptTo` headers.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flatten()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, entry.path()))
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|(_, path)| {
                std::fs::read_to_string(path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            })
            .collect()
    }
}

/// The `.eml` files in an outbox folder/// The `.eml` files in an outbox folder, oldest first (their names sort by time).
pub fn outbox_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("an outbox entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    files
}

/// The value of the first header `name` (any case) of a message, unfolded, with RFC 2047 encoded
/// words (`=?utf-8?b?…?=`) decoded.
pub fn header(message: &str, name: &str) -> Option<String> {
    let (head, _) = split(message);
    let mut value: Option<String> = None;
    for line in head.lines() {
        match &mut value {
            Some(found) if line.starts_with([' ', '\t']) => {
                found.push(' ');
                found.push_str(line.trim());
            }
            Some(_) => break,
            None => {
                if let Some((key, rest)) = line.split_once(':') {
                    if key.eq_ignore_ascii_case(name) {
                        value = Some(rest.trim().to_owned());
                    }
                }
            }
        }
    }
    value.map(|v| decode_encoded_words(&v))
}

/// The body of a single-part text message, its transfer encoding (quoted-printable, base64)
/// undone, with `\n` line ends.
pub fn body_text(message: &str) -> String {
    let (_, body) = split(message);
    let encoding = header(message, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => {
            let compact: String = body.split_ascii_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("a base64 body")
        }
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

fn split(message: &str) -> (&str, &str) {
    for separator in ["\r\n\r\n", "\n\n"] {
        if let Some(at) = message.find(separator) {
            return (&message[..at], &message[at + separator.len()..]);
        }
    }
    (message, "")
}

fn hex_byte(hex: &[u8]) -> Option<u8> {
    u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line).trim_end();
        let (line, soft_break) = match line.strip_suffix('=') {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        unescape(line, &mut out);
        if !soft_break && lines.peek().is_some() {
            out.push(b'\n');
        }
    }
    out
}

/// `=XX` to the byte XX.
fn unescape(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(hex_byte)) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
}

/// Decodes `=?charset?B|Q?text?=` words (any charset is read as UTF-8, which is what lettre
/// writes); the blanks between two adjacent encoded words go, as RFC 2047 says.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut blanks = String::new();
    for token in value.split(' ') {
        match decode_encoded_word(token) {
            Some(bytes) => {
                if pending.is_empty() {
                    out.push_str(&blanks);
                }
                blanks.clear();
                pending.extend(bytes);
            }
            None => {
                if !pending.is_empty() {
                    out.push_str(&String::from_utf8_lossy(&pending));
                    pending.clear();
                }
                out.push_str(&blanks);
                blanks.clear();
                out.push_str(token);
            }
        }
        blanks.push(' ');
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out
}

fn decode_encoded_word(token: &str) -> Option<Vec<u8>> {
    let inner = token.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let (_charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
    match encoding {
        "b" | "B" => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        "q" | "Q" => {
            let mut out = Vec::new();
            unescape(&text.replace('_', " "), &mut out);
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold_and_decode() {
        let message = "Subject: =?utf-8?q?Einladung_zu_?=\r\n =?utf-8?b?TcO8bGxlcg==?= =?utf-8?q?_GmbH?= now\r\nTo: a@b.c\r\n\r\nbody";
        assert_eq!(
            header(message, "subject").as_deref(),
            Some("Einladung zu Müller GmbH now")
        );
        assert_eq!(
            header("Subject: zu =?utf-8?b?TcO8bGxlcg==?=\n\n", "Subject").as_deref(),
            Some("zu Müller")
        );
        assert_eq!(header(message, "TO").as_deref(), Some("a@b.c"));
        assert_eq!(header(message, "Cc"), None);
    }

    #[test]
    fn bodies_decode() {
        let qp = "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe, a very long line that goes on=\r\n and on\r\nnext";
        assert_eq!(
            body_text(qp),
            "Grüße, a very long line that goes on and on\nnext"
        );
        let b64 = "Content-Transfer-Encoding: base64\n\nR3LDvMOfZQ==\n";
        assert_eq!(body_text(b64), "Grüße");
        assert_eq!(body_text("Subject: x\n\nplain\n"), "plain\n");
    }
}
