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
    /// Where invitation links point instead of `{public_url}/invite/{token}`: a template with
    /// `{token}` (a platform's own sign-up page).
    pub invite_url: Option<String>,
    pub log_format: String,
    /// Largest request body, in bytes.
    pub body_limit: u64,
    /// `group` (one writer, group commit) or `pool` (a pool of writers; for comparison).
    pub sqlite_write_mode: String,
    pub pg_max_connections: u32,
    /// Threads serving HTTP, each a runtime of its own keeping its connections; unset: one
    /// runtime whose workers (one per CPU) share every task.
    pub http_threads: Option<usize>,
    /// A request not answered within this many milliseconds is answered 503.
    pub request_timeout_ms: u64,
    /// PostgreSQL: the longest wait for a pooled connection, in milliseconds.
    pub database_acquire_timeout_ms: u64,
    /// PostgreSQL: the longest statement (and idle transaction), in milliseconds.
    pub database_statement_timeout_ms: u64,
    /// Days a soft-deleted organization stays restorable before it is removed for good.
    pub deleted_retention_days: u32,
    /// Days an audit entry is kept before the retention purge removes it.
    pub audit_retention_days: u32,
    /// Webhooks may go to private, loopback and link-local addresses (tests, private networks).
    pub webhook_allow_private: bool,
    /// Days a webhook event whose deliveries have all finished is kept (with its attempts)
    /// before it is purged.
    pub webhook_retention_days: u32,
    /// The proxies (CIDRs or addresses, comma-separated) whose `Forwarded` / `X-Forwarded-For`
    /// name the client; empty: the TCP peer is the client.
    pub trusted_proxies: String,
    /// Requests count against their organization's rate limit (off: no limit but the login
    /// throttle).
    pub rate_limits: bool,
    /// Requests per second for each platform key; unset: not limited.
    pub platform_rate_limit: Option<u32>,
    /// `redis://…`: rate limits and login throttles shared by every node; unset: in memory.
    #[serde(skip_serializing)]
    pub redis_url: Option<SecretString>,
    /// `smtp://host:port` or `smtps://…`; unset: mail goes to `mail_outbox`.
    #[serde(skip_serializing)]
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub mail_outbox: String,
    pub session_ttl_hours: u32,
    pub invitation_ttl_days: u32,
    /// Avatars on local disk, served by Orgbase (unless `s3_bucket` is set).
    pub avatar_dir: String,
    /// Largest avatar file, in bytes.
    pub avatar_max_bytes: u64,
    /// Largest avatar width and height, each, in pixels.
    pub avatar_max_dimension: u32,
    /// Most memory one avatar decode may take, in bytes.
    pub avatar_max_decoded_bytes: u64,
    /// Set: avatars go to this S3-compatible bucket.
    pub s3_bucket: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<String>,
    #[serde(skip_serializing)]
    pub s3_secret_access_key: Option<SecretString>,
    /// What avatar URLs start with when they are in S3 (a CDN, or the bucket's address).
    pub s3_public_url: Option<String>,
    /// Set: Stripe is the billing provider of plans tied to it.
    #[serde(skip_serializing)]
    pub stripe_secret_key: Option<SecretString>,
    #[serde(skip_serializing)]
    pub stripe_webhook_secret: Option<SecretString>,
    pub stripe_api_base: String,
    /// Set with the API key: Chargebee is the billing provider of plans tied to it.
    pub chargebee_site: Option<String>,
    #[serde(skip_serializing)]
    pub chargebee_api_key: Option<SecretString>,
    pub chargebee_webhook_username: Option<String>,
    #[serde(skip_serializing)]
    pub chargebee_webhook_password: Option<SecretString>,
    /// Unset: `https://{site}.chargebee.com`.
    pub chargebee_api_base: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://orgbase.db".into(),
            bootstrap_key: None,
            public_url: None,
            invite_url: None,
            log_format: "text".into(),
            body_limit: 1024 * 1024,
            sqlite_write_mode: "group".into(),
            pg_max_connections: 16,
            http_threads: None,
            request_timeout_ms: 10_000,
            database_acquire_timeout_ms: 1_000,
            database_statement_timeout_ms: 5_000,
            deleted_retention_days: 30,
            audit_retention_days: 365,
            webhook_allow_private: false,
            webhook_retention_days: 30,
            trusted_proxies: String::new(),
            rate_limits: true,
            platform_rate_limit: None,
            redis_url: None,
            smtp_url: None,
            mail_from: "Orgbase <no-reply@localhost>".into(),
            mail_outbox: "mail-outbox".into(),
            session_ttl_hours: 24,
            invitation_ttl_days: 7,
            avatar_dir: "avatars".into(),
            avatar_max_bytes: 5 * 1024 * 1024,
            avatar_max_dimension: 4096,
            avatar_max_decoded_bytes: 64 * 1024 * 1024,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_public_url: None,
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: "https://api.stripe.com".into(),
            chargebee_site: None,
            chargebee_api_key: None,
            chargebee_webhook_username: None,
            chargebee_webhook_password: None,
            chargebee_api_base: None,
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
    "invite_url",
    "log_format",
    "body_limit",
    "sqlite_write_mode",
    "pg_max_connections",
    "http_threads",
    "request_timeout_ms",
    "database_acquire_timeout_ms",
    "database_statement_timeout_ms",
    "deleted_retention_days",
    "audit_retention_days",
    "webhook_allow_private",
    "webhook_retention_days",
    "trusted_proxies",
    "rate_limits",
    "platform_rate_limit",
    "redis_url",
    "smtp_url",
    "mail_from",
    "mail_outbox",
    "session_ttl_hours",
    "invitation_ttl_days",
    "avatar_dir",
    "avatar_max_bytes",
    "avatar_max_dimension",
    "avatar_max_decoded_bytes",
    "s3_bucket",
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "s3_public_url",
    "stripe_secret_key",
    "stripe_webhook_secret",
    "stripe_api_base",
    "chargebee_site",
    "chargebee_api_key",
    "chargebee_webhook_username",
    "chargebee_webhook_password",
    "chargebee_api_base",
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
    pub invite_url: Option<String>,
    pub json_logs: bool,
    pub body_limit: usize,
    pub sqlite_write_mode: orgbase_store::sqlite::WriteMode,
    pub pg_max_connections: u32,
    /// `None`: one multi-threaded runtime serves everything.
    pub http_threads: Option<std::num::NonZeroUsize>,
    pub request_timeout: std::time::Duration,
    pub pg_bounds: orgbase_store::postgres::Bounds,
    pub deleted_retention: chrono::Duration,
    pub audit_retention: chrono::Duration,
    pub webhook_allow_private: bool,
    pub webhook_retention: chrono::Duration,
    pub trusted_proxies: orgbase_api::client_address::TrustedProxies,
    pub rate_limits: bool,
    pub platform_rate_limit: Option<u32>,
    pub redis_url: Option<SecretString>,
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub mail_outbox: std::path::PathBuf,
    pub session_ttl: chrono::Duration,
    pub invitation_ttl: chrono::Duration,
    pub avatars: orgbase_api::native::avatars::AvatarConfig,
    /// Stripe, when a secret key is set.
    pub stripe: Option<orgbase_billing::StripeConfig>,
    /// Chargebee, when an API key is set.
    pub chargebee: Option<orgbase_billing::ChargebeeConfig>,
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
    let env = Env::prefixed("ORGBASE_").ignore(&[
        "config",
        "bootstrap_key",
        "smtp_url",
        "s3_secret_access_key",
        "stripe_secret_key",
        "stripe_webhook_secret",
    ]);
    let mut settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
        .merge(Toml::file(file))
        .merge(env)
        .merge(Serialized::globals(overrides))
        .extract()
        .map_err(|e| {
            e.into_iter()
                .map(|e| format!("  - {}", in_user_terms(&e)))
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
    // Secrets are read as they are (figment could take one for a number and print it).
    let secret = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    };
    if let Some(k) = secret("ORGBASE_S3_SECRET_ACCESS_KEY") {
        settings.s3_secret_access_key = Some(k);
    }
    if let Some(k) = secret("ORGBASE_STRIPE_SECRET_KEY") {
        settings.stripe_secret_key = Some(k);
    }
    if let Some(k) = secret("ORGBASE_STRIPE_WEBHOOK_SECRET") {
        settings.stripe_webhook_secret = Some(k);
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
    let invite_url = match &s.invite_url {
        Some(u) if !u.contains("{token}") => {
            errors.push(format!(
                "invite_url (ORGBASE_INVITE_URL): {u:?} has no {{token}} for the invitation's token"
            ));
            None
        }
        Some(u) => match url::Url::parse(&u.replace("{token}", "token")) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(u.clone()),
            _ => {
                errors.push(format!(
                    "invite_url (ORGBASE_INVITE_URL): {u:?} is not an http(s) URL"
                ));
                None
            }
        },
        None => None,
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
    if !(1..=36500).contains(&s.audit_retention_days) {
        errors.push("audit_retention_days (ORGBASE_AUDIT_RETENTION_DAYS): must be 1–36500".into());
    }
    if !(1..=3650).contains(&s.webhook_retention_days) {
        errors
            .push("webhook_retention_days (ORGBASE_WEBHOOK_RETENTION_DAYS): must be 1–3650".into());
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
    if s.http_threads.is_some_and(|n| !(1..=1024).contains(&n)) {
        errors.push("http_threads (ORGBASE_HTTP_THREADS): must be 1–1024".into());
    }
    if !(100..=600_000).contains(&s.request_timeout_ms) {
        errors.push(
            "request_timeout_ms (ORGBASE_REQUEST_TIMEOUT_MS): must be 100–600000 (milliseconds)"
                .into(),
        );
    }
    if !(100..=60_000).contains(&s.database_acquire_timeout_ms) {
        errors.push("database_acquire_timeout_ms (ORGBASE_DATABASE_ACQUIRE_TIMEOUT_MS): must be 100–60000 (milliseconds)".into());
    }
    if !(100..=600_000).contains(&s.database_statement_timeout_ms) {
        errors.push("database_statement_timeout_ms (ORGBASE_DATABASE_STATEMENT_TIMEOUT_MS): must be 100–600000 (milliseconds)".into());
    }
    let trusted_proxies = orgbase_api::client_address::TrustedProxies::parse(&s.trusted_proxies)
        .unwrap_or_else(|e| {
            errors.push(format!("trusted_proxies (ORGBASE_TRUSTED_PROXIES): {e}"));
            Default::default()
        });
    if s.platform_rate_limit
        .is_some_and(|n| !(1..=orgbase_domain::MAX_RATE_LIMIT as u32).contains(&n))
    {
        errors.push(format!(
            "platform_rate_limit (ORGBASE_PLATFORM_RATE_LIMIT): must be 1–{} requests per second",
            orgbase_domain::MAX_RATE_LIMIT
        ));
    }
    if let Some(url) = &s.redis_url {
        if !url.expose_secret().starts_with("redis://") {
            errors.push("redis_url (ORGBASE_REDIS_URL): must be a redis://[user:password@]host[:port][/db] URL".into());
        }
    }
    let avatars = check_avatars(&s, &mut errors);
    let stripe = check_stripe(&s, &mut errors);
    let chargebee = check_chargebee(&s, &mut errors);
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
        invite_url,
        json_logs,
        body_limit: s.body_limit as usize,
        sqlite_write_mode: mode,
        pg_max_connections: s.pg_max_connections,
        http_threads: s.http_threads.and_then(std::num::NonZeroUsize::new),
        request_timeout: std::time::Duration::from_millis(s.request_timeout_ms),
        pg_bounds: orgbase_store::postgres::Bounds {
            acquire_timeout: std::time::Duration::from_millis(s.database_acquire_timeout_ms),
            statement_timeout: std::time::Duration::from_millis(s.database_statement_timeout_ms),
        },
        deleted_retention: chrono::Duration::days(s.deleted_retention_days as i64),
        audit_retention: chrono::Duration::days(s.audit_retention_days as i64),
        webhook_allow_private: s.webhook_allow_private,
        webhook_retention: chrono::Duration::days(s.webhook_retention_days as i64),
        trusted_proxies,
        rate_limits: s.rate_limits,
        platform_rate_limit: s.platform_rate_limit,
        redis_url: s.redis_url,
        smtp_url: s.smtp_url,
        mail_from: s.mail_from,
        mail_outbox: s.mail_outbox.into(),
        session_ttl: chrono::Duration::hours(s.session_ttl_hours as i64),
        invitation_ttl: chrono::Duration::days(s.invitation_ttl_days as i64),
        avatars,
        stripe,
        chargebee,
    })
}

fn check_stripe(s: &Settings, errors: &mut Vec<String>) -> Option<orgbase_billing::StripeConfig> {
    let key = s.stripe_secret_key.clone()?;
    let k = key.expose_secret();
    if !(k.starts_with("sk_") || k.starts_with("rk_")) {
        errors.push(
            "stripe_secret_key (ORGBASE_STRIPE_SECRET_KEY): must be a Stripe secret or restricted key (sk_… or rk_…)".into(),
        );
    }
    if s.stripe_webhook_secret.is_none() {
        errors.push(
            "stripe_webhook_secret (ORGBASE_STRIPE_WEBHOOK_SECRET): must be set with ORGBASE_STRIPE_SECRET_KEY: without it no webhook can be verified".into(),
        );
    }
    if !url::Url::parse(&s.stripe_api_base)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
    {
        errors.push(format!(
            "stripe_api_base (ORGBASE_STRIPE_API_BASE): {:?} is not an http(s) URL",
            s.stripe_api_base
        ));
    }
    let mut c = orgbase_billing::StripeConfig::new(key);
    c.webhook_secret = s.stripe_webhook_secret.clone();
    c.api_base = s.stripe_api_base.trim_end_matches('/').to_owned();
    Some(c)
}

fn check_chargebee(
    s: &Settings,
    errors: &mut Vec<String>,
) -> Option<orgbase_billing::ChargebeeConfig> {
    let key = s.chargebee_api_key.clone()?;
    let site = s.chargebee_site.clone().unwrap_or_default();
    if !site.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        || (site.is_empty() && s.chargebee_api_base.is_none())
    {
        errors.push("chargebee_site (ORGBASE_CHARGEBEE_SITE): must be set with ORGBASE_CHARGEBEE_API_KEY, the site's name (acme for acme.chargebee.com)".into());
    }
    if s.chargebee_webhook_username
        .as_deref()
        .unwrap_or("")
        .is_empty()
        || s.chargebee_webhook_password.is_none()
    {
        errors.push("chargebee_webhook_username, chargebee_webhook_password (ORGBASE_CHARGEBEE_WEBHOOK_USERNAME, _PASSWORD): must be set with ORGBASE_CHARGEBEE_API_KEY: they are the Basic auth Chargebee's webhooks are configured with, without which none is accepted".into());
    }
    if let Some(base) = &s.chargebee_api_base {
        if !url::Url::parse(base)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        {
            errors.push(format!(
                "chargebee_api_base (ORGBASE_CHARGEBEE_API_BASE): {base:?} is not an http(s) URL"
            ));
        }
    }
    let mut c = orgbase_billing::ChargebeeConfig::new(site, key);
    c.webhook_username = s.chargebee_webhook_username.clone();
    c.webhook_password = s.chargebee_webhook_password.clone();
    c.api_base = s
        .chargebee_api_base
        .as_ref()
        .map(|b| b.trim_end_matches('/').to_owned());
    Some(c)
}

fn check_avatars(
    s: &Settings,
    errors: &mut Vec<String>,
) -> orgbase_api::native::avatars::AvatarConfig {
    if !(1024..=64 * 1024 * 1024).contains(&s.avatar_max_bytes) {
        errors.push(
            "avatar_max_bytes (ORGBASE_AVATAR_MAX_BYTES): must be between 1024 and 67108864 bytes"
                .into(),
        );
    }
    if !(128..=16384).contains(&s.avatar_max_dimension) {
        errors
            .push("avatar_max_dimension (ORGBASE_AVATAR_MAX_DIMENSION): must be 128–16384".into());
    }
    if !(1024 * 1024..=1024 * 1024 * 1024).contains(&s.avatar_max_decoded_bytes) {
        errors.push(
            "avatar_max_decoded_bytes (ORGBASE_AVATAR_MAX_DECODED_BYTES): must be 1 MiB–1 GiB"
                .into(),
        );
    }
    if s.avatar_dir.trim().is_empty() {
        errors.push("avatar_dir (ORGBASE_AVATAR_DIR): must be a folder".into());
    }
    let http_url = |name: &str, env: &str, u: &str, errors: &mut Vec<String>| {
        if !url::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some())
        {
            errors.push(format!("{name} ({env}): {u:?} is not an http(s) URL"));
        }
    };
    let s3 = s.s3_bucket.as_ref().filter(|b| !b.trim().is_empty()).map(|bucket| {
        if let Some(e) = &s.s3_endpoint {
            http_url("s3_endpoint", "ORGBASE_S3_ENDPOINT", e, errors);
        }
        let public_url = match &s.s3_public_url {
            Some(u) => {
                http_url("s3_public_url", "ORGBASE_S3_PUBLIC_URL", u, errors);
                u.clone()
            }
            None => {
                errors.push(
                    "s3_public_url (ORGBASE_S3_PUBLIC_URL): must be set with ORGBASE_S3_BUCKET: it is what avatar URLs start with".into(),
                );
                String::new()
            }
        };
        if s.s3_access_key_id.is_some() != s.s3_secret_access_key.is_some() {
            errors.push("s3_access_key_id and s3_secret_access_key (ORGBASE_S3_ACCESS_KEY_ID, ORGBASE_S3_SECRET_ACCESS_KEY): give both or neither".into());
        }
        orgbase_avatar::S3Settings {
            bucket: bucket.clone(),
            endpoint: s.s3_endpoint.clone(),
            region: s.s3_region.clone(),
            access_key_id: s.s3_access_key_id.clone(),
            secret_access_key: s
                .s3_secret_access_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            public_url,
        }
    });
    orgbase_api::native::avatars::AvatarConfig {
        dir: s.avatar_dir.clone().into(),
        s3,
        limits: orgbase_avatar::Limits {
            max_bytes: s.avatar_max_bytes as usize,
            max_dimension: s.avatar_max_dimension,
            max_decoded_bytes: s.avatar_max_decoded_bytes,
        },
    }
}

/// A database URL without its password, for messages.
/// The file of a `sqlite://PATH` (or `sqlite:PATH`) URL, as given (relative to the working
/// directory); `None` for any other database.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

/// The database `url` names, for a person: a SQLite file by its absolute path, anything else by
/// its URL without the password.
pub fn describe_database(url: &str) -> String {
    match sqlite_path(url) {
        Some(p) => std::path::absolute(&p).unwrap_or(p).display().to_string(),
        None => redact_url(url),
    }
}

/// A setting that could not be read, as its user wrote it: `body_limit in ./orgbase.toml` or
/// `ORGBASE_BODY_LIMIT`, and the form expected in words ("a whole number"), not Rust's (`u64`).
fn in_user_terms(e: &figment::Error) -> String {
    use figment::error::Kind;
    let key = e.path.join(".");
    let setting = match e.metadata.as_ref() {
        Some(m) if m.name.contains("environment") => {
            format!("ORGBASE_{}", key.to_ascii_uppercase())
        }
        Some(m) => match &m.source {
            Some(figment::Source::File(path)) => format!("{key} in {}", path.display()),
            _ => key.clone(),
        },
        None => key.clone(),
    };
    let what = match &e.kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("must be {}, not {actual}", in_words(expected))
        }
        other => other.to_string(),
    };
    format!("{setting}: {what}")
}

/// serde's name of a type, as a person would say it.
fn in_words(expected: &str) -> &str {
    match expected.trim_start_matches("a ").trim_start_matches("an ") {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "bool" | "boolean" => "true or false",
        "string" | "str" | "char" => "text (in quotes in the file)",
        "sequence" | "seq" => "a list",
        "map" | "dict" => "a table",
        _ => expected,
    }
}

/// What to do about a PostgreSQL database that cannot be opened, for the causes a new user meets:
/// the database or the role does not exist yet, or no server answers. `cause` is the driver's
/// message; `None` when it is none of these.
pub fn database_hint(url: &str, cause: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return None;
    }
    let host = parsed.host_str().unwrap_or("localhost");
    let port = parsed.port().unwrap_or(5432);
    let user = match parsed.username() {
        "" => "postgres",
        u => u,
    };
    let database = parsed.path().trim_start_matches('/');
    let database = if database.is_empty() { user } else { database };
    let quoted = |what: &str| {
        let start = cause.find(&format!("{what} \""))? + what.len() + 2;
        let len = cause[start..].find('"')?;
        Some(cause[start..start + len].to_owned())
    };
    if cause.contains("does not exist") {
        if let Some(db) = quoted("database") {
            return Some(format!(
                "database \"{db}\" does not exist; create it first: createdb -h {host} -p {port} -U {user} {db}"
            ));
        }
        if let Some(role) = quoted("role") {
            return Some(format!(
                "role \"{role}\" does not exist; create it first (createuser -h {host} -p {port} -U postgres --createdb {role}) or name an existing role in the URL"
            ));
        }
    }
    if cause.contains("Connection refused")
        || cause.contains("connection refused")
        || cause.contains("pool timed out")
    {
        return Some(format!(
            "no PostgreSQL server answers at {host}:{port}; start it, or correct the host and port in the URL ({database} is the database to use)"
        ));
    }
    None
}

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
    fn a_wrong_type_is_named_as_written() {
        let dir = std::env::temp_dir().join(format!("orgbase-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("orgbase.toml");
        std::fs::write(&file, "body_limit = \"big\"\n").unwrap();
        let err = load(Some(&file), Overrides::default()).unwrap_err();
        assert_eq!(
            err.trim(),
            format!(
                "- body_limit in {}: must be a whole number, 0 or more, not string \"big\"",
                file.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn database_hints_name_the_fix() {
        let url = "postgres://app:secret@db.internal:6543/orgbase";
        assert_eq!(
            database_hint(url, r#"storage error: database "orgbase" does not exist"#).unwrap(),
            "database \"orgbase\" does not exist; create it first: createdb -h db.internal -p 6543 -U app orgbase"
        );
        assert!(database_hint(url, r#"role "app" does not exist"#)
            .unwrap()
            .starts_with("role \"app\" does not exist; create it first (createuser"));
        assert!(
            database_hint(url, "pool timed out while waiting for an open connection")
                .unwrap()
                .starts_with("no PostgreSQL server answers at db.internal:6543")
        );
        assert_eq!(database_hint(url, "password authentication failed"), None);
        assert_eq!(database_hint("sqlite://x.db", "pool timed out"), None);
    }

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
            http_threads: Some(0),
            request_timeout_ms: 0,
            database_acquire_timeout_ms: 0,
            database_statement_timeout_ms: 0,
            deleted_retention_days: 0,
            audit_retention_days: 0,
            smtp_url: Some(SecretString::from("http://user:hunter2@x")),
            mail_from: " ".into(),
            mail_outbox: "".into(),
            session_ttl_hours: 0,
            invitation_ttl_days: 0,
            avatar_max_bytes: 1,
            s3_bucket: Some("b".into()),
            stripe_secret_key: Some(SecretString::from("pk_live_oops")),
            ..Settings::default()
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
            "ORGBASE_HTTP_THREADS",
            "ORGBASE_REQUEST_TIMEOUT_MS",
            "ORGBASE_DATABASE_ACQUIRE_TIMEOUT_MS",
            "ORGBASE_DATABASE_STATEMENT_TIMEOUT_MS",
            "ORGBASE_DELETED_RETENTION_DAYS",
            "ORGBASE_SMTP_URL",
            "ORGBASE_MAIL_FROM",
            "ORGBASE_MAIL_OUTBOX",
            "ORGBASE_SESSION_TTL_HOURS",
            "ORGBASE_INVITATION_TTL_DAYS",
            "ORGBASE_AVATAR_MAX_BYTES",
            "ORGBASE_S3_PUBLIC_URL",
            "ORGBASE_STRIPE_SECRET_KEY",
            "ORGBASE_STRIPE_WEBHOOK_SECRET",
        ] {
            assert!(e.contains(name), "{name} missing from:\n{e}");
        }
        assert!(!e.contains("short"), "a secret leaked into:\n{e}");
        assert!(!e.contains("hunter2"), "a secret leaked into:\n{e}");
        assert!(!e.contains("pk_live_oops"), "a secret leaked into:\n{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:****@h/db"
        );
    }
}
