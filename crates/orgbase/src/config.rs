//! Configuration, layered: built-in defaults, then `orgbase.toml` (optional), then `ORGBASE_*`
//! environment variables, then command-line flags. Checked once at start; each bad value gets
//! its own message naming where it can be set.
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub listen: String,
    pub database_url: String,
    #[serde(skip_serializing)]
    pub bootstrap_key: Option<SecretString>,
    pub public_url: Option<String>,
    pub log_format: String,
    /// Largest request body, in bytes.
    pub body_limit: u64,
    /// `group` (one writer, group commit) or `pool` (a pool of writers; for comparison).
    pub sqlite_write_mode: String,
    pub pg_max_connections: u32,
    /// Days a soft-deleted organization stays restorable before it is removed for good.
    pub deleted_retention_days: u32,
    /// `smtp://host:port` or `smtps://…`; unset: mail goes to `mail_outbox`.
    #[serde(skip_serializing)]
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub mail_outbox: String,
    pub session_ttl_hours: u32,
    pub invitation_ttl_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://orgbase.db".into(),
            bootstrap_key: None,
            public_url: None,
            log_format: "text".into(),
            body_limit: 1024 * 1024,
            sqlite_write_mode: "group".into(),
            pg_max_connections: 16,
            deleted_retention_days: 30,
            smtp_url: None,
            mail_from: "Orgbase <no-reply@localhost>".into(),
            mail_outbox: "mail-outbox".into(),
            session_ttl_hours: 24,
            invitation_ttl_days: 7,
        }
    }
}

/// Flags that override everything else; unset ones are left out.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Every setting's name, as in `orgbase.toml` and (upper-cased, prefixed) in the environment.
const KNOWN: &[&str] = &[
    "listen",
    "database_url",
    "bootstrap_key",
    "public_url",
    "log_format",
    "body_limit",
    "sqlite_write_mode",
    "pg_max_connections",
    "deleted_retention_days",
    "smtp_url",
    "mail_from",
    "mail_outbox",
    "session_ttl_hours",
    "invitation_ttl_days",
];

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    /// Settings that were ignored, to be logged once logging is up.
    pub warnings: Vec<String>,
    pub listen: SocketAddr,
    pub database_url: String,
    pub bootstrap_key: Option<SecretString>,
    pub public_url: String,
    pub json_logs: bool,
    pub body_limit: usize,
    pub sqlite_write_mode: orgbase_store::sqlite::WriteMode,
    pub pg_max_connections: u32,
    pub deleted_retention: chrono::Duration,
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub mail_outbox: std::path::PathBuf,
    pub session_ttl: chrono::Duration,
    pub invitation_ttl: chrono::Duration,
}

pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, String> {
    let explicit = file.is_some();
    let file = file.unwrap_or(Path::new("orgbase.toml"));
    if explicit && !file.exists() {
        return Err(format!(
            "configuration file {} does not exist",
            file.display()
        ));
    }
    // A misspelt setting in the file is an error, not a silent default.
    let mut errors = Vec::new();
    if file.exists() {
        match Figment::from(Toml::file(file)).extract::<figment::value::Dict>() {
            Ok(d) => {
                for k in d.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
                    errors.push(format!("  - {}: unknown setting {k:?}", file.display()));
                }
            }
            Err(e) => errors.push(format!("  - {}: {e}", file.display())),
        }
    }
    // The bootstrap key is read as it is: figment would take an all-digit one for a number,
    // refuse it, and print it in the error.
    let env = Env::prefixed("ORGBASE_").ignore(&["config", "bootstrap_key", "smtp_url"]);
    let mut settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
        .merge(Toml::file(file))
        .merge(env)
        .merge(Serialized::globals(overrides))
        .extract()
        .map_err(|e| {
            e.into_iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    if let Ok(k) = std::env::var("ORGBASE_BOOTSTRAP_KEY") {
        settings.bootstrap_key = Some(SecretString::from(k));
    }
    // The SMTP URL may carry a password: read as it is, and never echoed.
    if let Ok(u) = std::env::var("ORGBASE_SMTP_URL") {
        settings.smtp_url = Some(SecretString::from(u)).filter(|u| !u.expose_secret().is_empty());
    }
    let warnings = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("ORGBASE_").map(str::to_ascii_lowercase))
        .filter(|k| k != "config" && !KNOWN.contains(&k.as_str()))
        .map(|k| {
            format!(
                "ORGBASE_{} is not a setting of this version; it is ignored",
                k.to_ascii_uppercase()
            )
        })
        .collect();
    check(settings).map(|c| Config { warnings, ..c })
}

fn check(s: Settings) -> Result<Config, String> {
    let mut errors = Vec::new();
    let listen = s.listen.parse::<SocketAddr>().map_err(|_| {
        errors.push(format!(
            "listen (ORGBASE_LISTEN, --listen): {:?} is not an address such as 127.0.0.1:8080",
            s.listen
        ))
    });
    let db = s.database_url.trim().to_owned();
    let sqlite_path = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"));
    if let Some(p) = sqlite_path {
        if p.is_empty() || p == ":memory:" {
            errors.push(
                "database_url (ORGBASE_DATABASE_URL, --database-url): give SQLite a file, such as sqlite://orgbase.db".into(),
            );
        }
    } else if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
        errors.push(format!(
            "database_url (ORGBASE_DATABASE_URL, --database-url): {:?} is neither sqlite://PATH nor postgres://…",
            redact_url(&db)
        ));
    }
    if let Some(k) = &s.bootstrap_key {
        if k.expose_secret().chars().count() < 32 {
            errors.push(
                "bootstrap_key (ORGBASE_BOOTSTRAP_KEY): must be 32 characters or more".into(),
            );
        }
    }
    let public_url = match &s.public_url {
        Some(u) => match url::Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                u.trim_end_matches('/').to_owned()
            }
            _ => {
                errors.push(format!(
                    "public_url (ORGBASE_PUBLIC_URL): {u:?} is not an http(s) URL"
                ));
                String::new()
            }
        },
        None => format!("http://{}", s.listen),
    };
    let json_logs = match s.log_format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            errors.push(format!(
                "log_format (ORGBASE_LOG_FORMAT): {other:?} is neither text nor json"
            ));
            false
        }
    };
    if !(1024..=64 * 1024 * 1024).contains(&s.body_limit) {
        errors.push(
            "body_limit (ORGBASE_BODY_LIMIT): must be between 1024 and 67108864 bytes".into(),
        );
    }
    let mode = orgbase_store::sqlite::WriteMode::parse(&s.sqlite_write_mode).unwrap_or_else(|| {
        errors.push(format!(
            "sqlite_write_mode (ORGBASE_SQLITE_WRITE_MODE): {:?} is neither group nor pool",
            s.sqlite_write_mode
        ));
        Default::default()
    });
    if !(1..=3650).contains(&s.deleted_retention_days) {
        errors
            .push("deleted_retention_days (ORGBASE_DELETED_RETENTION_DAYS): must be 1–3650".into());
    }
    if let Some(u) = &s.smtp_url {
        let ok = url::Url::parse(u.expose_secret())
            .is_ok_and(|p| matches!(p.scheme(), "smtp" | "smtps") && p.host_str().is_some());
        if !ok {
            errors.push(
                "smtp_url (ORGBASE_SMTP_URL): must be smtp://host:port or smtps://host:port".into(),
            );
        }
    }
    if s.mail_from.trim().is_empty() {
        errors.push("mail_from (ORGBASE_MAIL_FROM): must be an address such as Orgbase <no-reply@example.com>".into());
    }
    if s.mail_outbox.trim().is_empty() {
        errors.push("mail_outbox (ORGBASE_MAIL_OUTBOX): must be a folder".into());
    }
    if !(1..=24 * 90).contains(&s.session_ttl_hours) {
        errors.push("session_ttl_hours (ORGBASE_SESSION_TTL_HOURS): must be 1–2160".into());
    }
    if !(1..=90).contains(&s.invitation_ttl_days) {
        errors.push("invitation_ttl_days (ORGBASE_INVITATION_TTL_DAYS): must be 1–90".into());
    }
    if !(1..=1000).contains(&s.pg_max_connections) {
        errors.push("pg_max_connections (ORGBASE_PG_MAX_CONNECTIONS): must be 1–1000".into());
    }
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| format!("  - {e}"))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    Ok(Config {
        warnings: Vec::new(),
        listen: listen.expect("checked"),
        database_url: db,
        bootstrap_key: s.bootstrap_key,
        public_url,
        json_logs,
        body_limit: s.body_limit as usize,
        sqlite_write_mode: mode,
        pg_max_connections: s.pg_max_connections,
        deleted_retention: chrono::Duration::days(s.deleted_retention_days as i64),
        smtp_url: s.smtp_url,
        mail_from: s.mail_from,
        mail_outbox: s.mail_outbox.into(),
        session_ttl: chrono::Duration::hours(s.session_ttl_hours as i64),
        invitation_ttl: chrono::Duration::days(s.invitation_ttl_days as i64),
    })
}

/// A database URL without its password, for messages.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => u.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = check(Settings::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://orgbase.db");
    }

    #[test]
    fn every_bad_value_is_named() {
        let s = Settings {
            listen: "nowhere".into(),
            database_url: "mysql://x".into(),
            bootstrap_key: Some(SecretString::from("short")),
            public_url: Some("ftp://x".into()),
            log_format: "xml".into(),
            body_limit: 1,
            sqlite_write_mode: "many".into(),
            pg_max_connections: 0,
            deleted_retention_days: 0,
            smtp_url: Some(SecretString::from("http://user:hunter2@x")),
            mail_from: " ".into(),
            mail_outbox: "".into(),
            session_ttl_hours: 0,
            invitation_ttl_days: 0,
        };
        let e = check(s).unwrap_err();
        for name in [
            "ORGBASE_LISTEN",
            "ORGBASE_DATABASE_URL",
            "ORGBASE_BOOTSTRAP_KEY",
            "ORGBASE_PUBLIC_URL",
            "ORGBASE_LOG_FORMAT",
            "ORGBASE_BODY_LIMIT",
            "ORGBASE_SQLITE_WRITE_MODE",
            "ORGBASE_PG_MAX_CONNECTIONS",
            "ORGBASE_DELETED_RETENTION_DAYS",
            "ORGBASE_SMTP_URL",
            "ORGBASE_MAIL_FROM",
            "ORGBASE_MAIL_OUTBOX",
            "ORGBASE_SESSION_TTL_HOURS",
            "ORGBASE_INVITATION_TTL_DAYS",
        ] {
            assert!(e.contains(name), "{name} missing from:\n{e}");
        }
        assert!(!e.contains("short"), "a secret leaked into:\n{e}");
        assert!(!e.contains("hunter2"), "a secret leaked into:\n{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:****@h/db"
        );
    }
}
