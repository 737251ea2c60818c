//! `orgbase`: the command line. It parses, loads the configuration and wires the parts together;
//! everything else lives in the library crates.
#![forbid(unsafe_code)]

mod config;

/// mimalloc rather than the system allocator: under many threads allocating small objects at
/// once (every request does), glibc's malloc showed up as a tenth of the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use orgbase_api::{ApiConfig, AppState, Bootstrap};
use orgbase_store::OpenOptions;
use secrecy::ExposeSecret;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "orgbase",
    version,
    about = "Organization management for SaaS platforms"
)]
struct Cli {
    /// Configuration file (default: ./orgbase.toml, if present).
    #[arg(long, global = true, env = "ORGBASE_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default sqlite://orgbase.db) or postgres://…
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// What to do; `serve` when none is named.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (applies pending migrations first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (once) on standard output.
    Create {
        /// A platform key: acts on everything.
        #[arg(long, required = true)]
        platform: bool,
        /// A name to tell the key apart.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List the platform and partner keys (never their secrets).
    List,
    /// Revoke a platform or partner key at once (not the last active platform key).
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { listen: None });
    if let Command::Openapi = command {
        print!("{}", orgbase_api::openapi_json());
        return std::process::ExitCode::SUCCESS;
    }
    let listen = match &command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let overrides = config::Overrides {
        listen,
        database_url: cli.database_url.clone(),
    };
    let config = match config::load(cli.config.as_deref(), overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orgbase: invalid configuration:\n{e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(config.json_logs);
    let json_logs = config.json_logs;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // With `http_threads`, each serving thread is a single-threaded runtime of its own
    // (`orgbase_api::threads`) and this one, single-threaded too, serves a share; otherwise one
    // runtime's workers share every task.
    let runtime = match if config.http_threads.is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orgbase: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Once: as a log record where logs are read by machines, as a line for a person
            // otherwise.
            let message = say(&e);
            if json_logs {
                tracing::error!("{message}");
            } else {
                eprintln!("orgbase: {message}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: drivers repeat their source's text in
/// their own, which would otherwise print the same cause three times.
fn say(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colours only for a person at a terminal: a file or a log collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}

async fn open_store(config: &config::Config) -> anyhow::Result<orgbase_store::DynStore> {
    let options = OpenOptions {
        pg_max_connections: config.pg_max_connections,
        pg_bounds: config.pg_bounds,
        sqlite_write_mode: config.sqlite_write_mode,
    };
    let database = config::describe_database(&config.database_url);
    orgbase_store::open(&config.database_url, &options)
        .await
        .map_err(|e| {
            let cause = anyhow::Error::from(e);
            match config::database_hint(&config.database_url, &say(&cause)) {
                Some(hint) => anyhow::anyhow!("cannot open {database}: {hint}"),
                None => cause.context(format!("cannot open {database}")),
            }
        })
}

async fn run(command: Command, config: config::Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate => {
            open_store(&config).await?;
            eprintln!(
                "orgbase: migrations applied to {}",
                config::redact_url(&config.database_url)
            );
            Ok(())
        }
        Command::Keys { command } => keys(command, &config).await,
        Command::Openapi => unreachable!("handled before configuration"),
    }
}

/// `orgbase keys …`, on the database of the server it is meant for: one that exists already (a
/// key in a new, empty database would be a key no server knows).
async fn keys(command: KeysCommand, config: &config::Config) -> anyhow::Result<()> {
    use orgbase_api::service::keys::command_line;
    let database = config::describe_database(&config.database_url);
    if let Some(path) = config::sqlite_path(&config.database_url) {
        if !path.exists() {
            anyhow::bail!(
                "no database at {database}: run this where the server runs, or name its database with --database-url (nothing was created)"
            );
        }
    }
    let store = open_store(config).await?;
    match command {
        KeysCommand::Create { platform: _, name } => {
            let name = orgbase_domain::credential::parse_key_name("name", &name)
                .map_err(|e| anyhow::anyhow!("--name {}", e.message))?;
            let (key, plain) = command_line::create(&store, name).await?;
            eprintln!(
                "orgbase: platform key {} ({}) created in {database}; it is shown this once:",
                key.id, key.prefix
            );
            println!("{plain}");
        }
        KeysCommand::List => {
            let keys = command_line::list(&store).await?;
            eprintln!("orgbase: {} key(s) in {database}", keys.len());
            println!(
                "{:<36}  {:<8}  {:<14}  {:<20}  {:<20}  NAME",
                "ID", "KIND", "PREFIX", "CREATED", "REVOKED"
            );
            for k in keys {
                let at =
                    |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
                println!(
                    "{:<36}  {:<8}  {:<14}  {:<20}  {:<20}  {}",
                    k.id,
                    k.kind.as_str(),
                    k.prefix,
                    at(k.created_at),
                    k.revoked_at.map(at).unwrap_or_else(|| "-".into()),
                    k.name
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let key_id = id
                .parse::<uuid::Uuid>()
                .map(orgbase_domain::ApiKeyId)
                .map_err(|_| {
                    anyhow::anyhow!("{id:?} is not a key id (a UUID, as `orgbase keys list` shows)")
                })?;
            match command_line::revoke(&store, key_id).await {
                Ok(k) => eprintln!("orgbase: key {} ({}) revoked in {database}", k.id, k.name),
                Err(orgbase_api::service::ServiceError::NotFound) => {
                    anyhow::bail!("no platform or partner key {id} in {database}")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn serve(config: config::Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let bootstrap = config
        .bootstrap_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned());
    match orgbase_api::ensure_platform_key(&store, bootstrap.as_deref()).await? {
        Bootstrap::Existing => {}
        Bootstrap::FromConfig => {
            tracing::info!("ORGBASE_BOOTSTRAP_KEY installed as the first platform key")
        }
        Bootstrap::Generated(key) => {
            // Shown once, on standard output, away from the log stream.
            println!(
                "\nA platform key was made for this first start. It is shown this once; keep it:\n\n    {key}\n\nUse it as `Authorization: Bearer <key>`.\n"
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    tracing::info!(
        listen = %config.listen,
        database = store.backend(),
        public_url = %config.public_url,
        http_threads = config.http_threads.map(|n| n.get()),
        "orgbase is serving"
    );
    // Soft-deleted organizations are restorable for their retention period, then removed; audit
    // entries are kept for theirs.
    tokio::spawn(orgbase_api::purge_periodically(
        store.clone(),
        orgbase_api::Retention {
            deleted: config.deleted_retention,
            audit: config.audit_retention,
            webhooks: config.webhook_retention,
        },
        shutdown.clone(),
    ));
    let mut billing = orgbase_api::billing::Billing::default();
    if let Some(stripe) = config.stripe.clone() {
        let client = orgbase_billing::StripeClient::new(stripe)
            .map_err(|e| anyhow::anyhow!("setting up Stripe: {e}"))?;
        billing = billing.with(std::sync::Arc::new(client));
        tracing::info!(billing = "stripe", "billing provider configured");
    }
    if let Some(chargebee) = config.chargebee.clone() {
        let client = orgbase_billing::ChargebeeClient::new(chargebee)
            .map_err(|e| anyhow::anyhow!("setting up Chargebee: {e}"))?;
        billing = billing.with(std::sync::Arc::new(client));
        tracing::info!(billing = "chargebee", "billing provider configured");
    }
    let state = AppState::new(
        store,
        ApiConfig {
            body_limit: config.body_limit,
            public_url: config.public_url.clone(),
            invite_url: config.invite_url.clone(),
            session_ttl: config.session_ttl,
            invitation_ttl: config.invitation_ttl,
            smtp_url: config
                .smtp_url
                .as_ref()
                .map(|u| secrecy::ExposeSecret::expose_secret(u).to_owned()),
            mail_from: config.mail_from.clone(),
            mail_outbox: config.mail_outbox.clone(),
            avatars: config.avatars.clone(),
            request_timeout: config.request_timeout,
            webhook_allow_private: config.webhook_allow_private,
            trusted_proxies: config.trusted_proxies.clone(),
            rate_limits: config.rate_limits,
            platform_rate_limit: config.platform_rate_limit,
            redis_url: config
                .redis_url
                .as_ref()
                .map(|u| secrecy::ExposeSecret::expose_secret(u).to_owned()),
            ..ApiConfig::default()
        },
        billing,
    )
    .map_err(|e| anyhow::anyhow!(e))
    .context("setting up mail and avatar storage")?;
    tracing::info!(mail = %state.mailer.describe(), "mail");
    tracing::info!(
        rate_limits = state.services.config.rate_limits,
        limiter = state.limiter.backend(),
        "rate limits"
    );
    // Webhook delivery: this node's worker, until shutdown.
    let webhooks = state.webhooks.worker.clone().spawn(shutdown.clone());
    let app = orgbase_api::app_with(state, orgbase_console::routes());
    match config.http_threads {
        None => {
            orgbase_api::serve_app(listener, app, shutdown)
                .await
                .context("serving")?;
            let _ = webhooks.await;
        }
        Some(n) => {
            let threads = orgbase_api::threads::serve_threads(listener, app, shutdown, n)
                .await
                .context("serving")?;
            let _ = webhooks.await;
            threads.finish();
        }
    }
    tracing::info!("orgbase stopped");
    Ok(())
}

/// Cancels `token` on SIGTERM or Ctrl-C: the server stops accepting and drains what is in flight.
async fn on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing requests in flight");
    token.cancel();
}
