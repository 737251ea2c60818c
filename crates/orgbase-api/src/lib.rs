//! Orgbase's HTTP surfaces. Today the native API (`native`); the partner settings and properties
//! APIs join as their own adapters over the same services.
#![forbid(unsafe_code)]

pub mod auth;
pub mod billing;
pub mod client_address;
pub mod compat;
pub mod context;
mod document;
pub use orgbase_service::directory;
pub mod error;
pub mod error_codes;
pub mod extract;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod native;
pub use orgbase_service as service;
pub use orgbase_service::maintenance::{
    ensure_platform_key, purge_audit_log, purge_deleted, purge_periodically, Bootstrap, Retention,
};
pub use orgbase_service::password;
pub mod surface;
pub mod threads;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use orgbase_mail::Mailer;
use orgbase_service::providers::Billing;
use orgbase_service::{ServiceConfig, Services};
use orgbase_store::DynStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::native::avatars::{AvatarConfig, Avatars};
use crate::native::{
    access, api_keys, audit, avatars, billing as billing_routes, invitations, members, ops,
    org_keys, organizations, plans, roles, sessions, wallet, webhooks, workspaces,
};

/// What the HTTP layer needs from the configuration. (`Debug` leaves out the SMTP URL, which
/// may carry credentials.)
#[derive(Clone)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The base of links in e-mails (`{public_url}/invite/{token}`).
    pub public_url: String,
    /// Where invitation links point instead, if set: a template with `{token}`.
    pub invite_url: Option<String>,
    /// How long a session token stays valid.
    pub session_ttl: chrono::Duration,
    /// How long an invitation can be accepted.
    pub invitation_ttl: chrono::Duration,
    /// `smtp://…` or `smtps://…`; unset: mail goes to `mail_outbox`.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub mail_outbox: PathBuf,
    /// Organizations with at least this many members have their member pages served from the
    /// member directory (see `directory.rs`).
    pub member_directory_min: u64,
    /// Avatar storage and upload limits.
    pub avatars: AvatarConfig,
    /// A request not answered within this is answered 503 `request_timeout`.
    pub request_timeout: Duration,
    /// Webhooks may go to private and loopback addresses (`ORGBASE_WEBHOOK_ALLOW_PRIVATE`).
    pub webhook_allow_private: bool,
    /// The proxies whose `Forwarded` / `X-Forwarded-For` name the client
    /// (`ORGBASE_TRUSTED_PROXIES`; none by default).
    pub trusted_proxies: client_address::TrustedProxies,
    /// Requests count against their organization's rate limit (`ORGBASE_RATE_LIMITS`, on).
    pub rate_limits: bool,
    /// Requests per second for each platform key (`ORGBASE_PLATFORM_RATE_LIMIT`; unlimited).
    pub platform_rate_limit: Option<u32>,
    /// `redis://…`: rate limits and login throttles shared by every node through Redis
    /// (`ORGBASE_REDIS_URL`); unset: in this node's memory.
    pub redis_url: Option<String>,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("body_limit", &self.body_limit)
            .field("public_url", &self.public_url)
            .field("session_ttl", &self.session_ttl)
            .field("invitation_ttl", &self.invitation_ttl)
            .field("smtp", &self.smtp_url.as_ref().map(|_| "(set)"))
            .field("mail_outbox", &self.mail_outbox)
            .field("avatars", &self.avatars)
            .field("request_timeout", &self.request_timeout)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("rate_limits", &self.rate_limits)
            .field("platform_rate_limit", &self.platform_rate_limit)
            .field("redis", &self.redis_url.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            public_url: "http://127.0.0.1:8080".into(),
            invite_url: None,
            session_ttl: chrono::Duration::hours(24),
            invitation_ttl: orgbase_domain::people::default_invitation_ttl(),
            smtp_url: None,
            mail_from: "Orgbase <no-reply@localhost>".into(),
            mail_outbox: PathBuf::from("mail-outbox"),
            member_directory_min: 1000,
            avatars: AvatarConfig::default(),
            request_timeout: Duration::from_secs(10),
            webhook_allow_private: false,
            trusted_proxies: Default::default(),
            rate_limits: true,
            platform_rate_limit: None,
            redis_url: None,
        }
    }
}

/// What every handler runs with: the services, and what only HTTP needs (the API's own
/// configuration, metrics, the OpenAPI document, avatar files). One shared handle, since every
/// request takes a copy; it dereferences to [`Shared`] and on to the [`Services`], so a handler
/// hands `&state` to a use case as it is.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What an [`AppState`] shares.
pub struct Shared {
    pub services: Services,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
    pub openapi_json: Arc<String>,
    pub avatars: Arc<Avatars>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::ops::Deref for Shared {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppState {
    /// The state for `config`, with the mailer it names (SMTP, or the outbox folder), the
    /// avatar storage (disk, or S3) and the billing providers configured.
    pub fn new(
        store: DynStore,
        config: ApiConfig,
        billing: Billing,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mailer: Arc<dyn Mailer> = orgbase_mail::from_config(
            config.smtp_url.as_deref(),
            &config.mail_from,
            &config.mail_outbox,
        )?;
        let avatars = Arc::new(Avatars::new(&config.avatars, &config.public_url)?);
        let mut services = Services::new(
            store,
            ServiceConfig {
                public_url: config.public_url.clone(),
                invite_url: config.invite_url.clone(),
                session_ttl: config.session_ttl,
                invitation_ttl: config.invitation_ttl,
                member_directory_min: config.member_directory_min,
                rate_limits: config.rate_limits,
                platform_rate_limit: config.platform_rate_limit,
            },
            mailer,
        );
        if let Some(url) = &config.redis_url {
            services.limiter = orgbase_limits::Limiter::redis(url)?;
        }
        services.billing = billing;
        let services = services.with_private_webhooks(config.webhook_allow_private);
        Ok(Self(Arc::new(Shared {
            services,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            openapi_json: Arc::new(openapi_json()),
            avatars,
        })))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orgbase",
        description = "Organization management for SaaS platforms: organizations, their people and \
            roles, plans and billing, a prepaid wallet, and partners. Errors are RFC 9457 problem \
            details (`application/problem+json`) with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "Organizations", description = "Organizations, natively"),
        (name = "People", description = "Log in and out, who am I"),
        (name = "Members", description = "Members of an organization, their roles and workspaces"),
        (name = "Roles", description = "System roles and an organization's custom roles"),
        (name = "Workspaces", description = "Workspaces of an organization"),
        (name = "Invitations", description = "Inviting people, and accepting an invitation"),
        (name = "Keys", description = "An organization's own API keys"),
        (name = "Plans", description = "The public product plans"),
        (name = "Wallet", description = "Balances, charges, top-ups and the ledger"),
        (name = "Access", description = "May an organization handle a call or a message now, and every reason it may not"),
        (name = "Audit log", description = "Who changed what, when, and through which API: one entry per change, written with it"),
        (name = "Webhooks", description = "Endpoints that receive signed events (Standard Webhooks) of every change, their deliveries, attempts and replays"),
        (name = "Billing", description = "Checkout with the billing provider, billing state, and the provider's signed webhooks"),
        (name = "Partner settings", description = "POST /api/v2/updateOrganization, as the partner settings document specifies"),
        (name = "Properties", description = "PATCH /v1/orgs/{org_id}/properties, as the properties document specifies"),
        (name = "Admin", description = "Platform-only routes"),
        (name = "Operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(organizations::create, organizations::list))
        .routes(routes!(
            organizations::get,
            organizations::update,
            organizations::delete
        ))
        .routes(routes!(organizations::restore))
        .routes(routes!(avatars::upload))
        .routes(routes!(avatars::remove))
        .routes(routes!(avatars::serve))
        .routes(routes!(billing_routes::checkout))
        .routes(routes!(billing_routes::get))
        .routes(routes!(billing_routes::stripe_webhook))
        .routes(routes!(billing_routes::chargebee_webhook))
        .routes(routes!(api_keys::create, api_keys::list))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::me))
        .routes(routes!(members::list))
        .routes(routes!(members::get, members::update, members::remove))
        .routes(routes!(members::me))
        .routes(routes!(members::transfer_ownership))
        .routes(routes!(roles::list, roles::create))
        .routes(routes!(roles::get, roles::update, roles::delete))
        .routes(routes!(workspaces::list, workspaces::create))
        .routes(routes!(
            workspaces::get,
            workspaces::update,
            workspaces::delete
        ))
        .routes(routes!(invitations::invite))
        .routes(routes!(invitations::list))
        .routes(routes!(invitations::revoke))
        .routes(routes!(invitations::resend))
        .routes(routes!(invitations::accept))
        .routes(routes!(org_keys::create, org_keys::list))
        .routes(routes!(org_keys::revoke))
        .routes(routes!(plans::create, plans::list_all))
        .routes(routes!(plans::get, plans::update, plans::delete))
        .routes(routes!(plans::list_public))
        .routes(routes!(access::check))
        .routes(routes!(access::check_batch))
        .routes(routes!(wallet::charge))
        .routes(routes!(wallet::credit))
        .routes(routes!(wallet::get))
        .routes(routes!(wallet::transactions))
        .routes(routes!(webhooks::org_list, webhooks::org_create))
        .routes(routes!(
            webhooks::org_get,
            webhooks::org_update,
            webhooks::org_delete
        ))
        .routes(routes!(webhooks::org_rotate))
        .routes(routes!(webhooks::org_test))
        .routes(routes!(webhooks::org_messages))
        .routes(routes!(webhooks::org_attempts))
        .routes(routes!(webhooks::org_replay))
        .routes(routes!(webhooks::org_recover))
        .routes(routes!(webhooks::admin_list, webhooks::admin_create))
        .routes(routes!(
            webhooks::admin_get,
            webhooks::admin_update,
            webhooks::admin_delete
        ))
        .routes(routes!(webhooks::admin_rotate))
        .routes(routes!(webhooks::admin_test))
        .routes(routes!(webhooks::admin_messages))
        .routes(routes!(webhooks::admin_attempts))
        .routes(routes!(webhooks::admin_replay))
        .routes(routes!(webhooks::admin_recover))
        .routes(routes!(audit::list))
        .routes(routes!(audit::list_all))
        .routes(routes!(compat::partner_settings::update_organization))
        .routes(routes!(compat::properties::update_properties))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// The OpenAPI 3.1 document, generated from the code.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The OpenAPI document as committed in `openapi.json` (pretty, with a final newline), refined
/// with what the routes do beyond their types (`document`).
pub fn openapi_json() -> String {
    let mut doc = serde_json::to_value(openapi()).expect("OpenAPI document serializes");
    document::refine(&mut doc);
    let mut s = serde_json::to_string_pretty(&doc).expect("OpenAPI document serializes");
    s.push('\n');
    s
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::Internal("panic".into()).into_response()
}

/// The whole application: routes, and the layers every request passes through.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with more routes behind the same layers: the binary's admin console
/// (`orgbase-console`), which builds on this crate.
pub fn app_with(state: AppState, more: Router<AppState>) -> Router {
    let (router, _) = api_router().split_for_parts();
    let router = router
        .merge(more)
        .route("/openapi.json", axum::routing::get(ops::openapi_json))
        .route("/docs", axum::routing::get(ops::docs))
        .route("/docs/", axum::routing::get(ops::docs_file))
        .route("/docs/{*file}", axum::routing::get(ops::docs_file));
    with_layers(router, state)
}

/// Wraps routes in what every request passes through: the body limit, panic recovery, metrics,
/// the log span, the request id, and the security headers. Public so that tests can put a route
/// of their own (one that panics, say) behind exactly the production stack.
pub fn with_layers(router: Router<AppState>, state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    // One `layer` call with the whole stack, outermost first. `Router::layer` boxes every route
    // once per call, and a request clones its route's whole chain of boxes, once more under
    // each `from_fn` layer: eleven calls cost some sixty boxed clones a request. Here each
    // route is boxed once over a stack of plain types.
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        // A body refused as too large is left unread, so its connection cannot carry another
        // request: say so, or a client sends its next request down a connection being closed.
        .layer(SetResponseHeaderLayer::overriding(
            header::CONNECTION,
            |res: &Response| {
                (res.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE)
                    .then(|| HeaderValue::from_static("close"))
            },
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // No cache keeps an answer (a new key's secret, a session's token, an access verdict),
        // unless its route says otherwise (avatars, the API docs' files).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            context::scope,
        ))
        // From here inwards: the log line, then metrics, then a panic becomes a problem answer.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The path only: a query string may carry a token.
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let path = loggable_path(req.uri().path());
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path)
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        // Outside the idempotency layer: a keyed request's work goes on past the deadline and
        // settles its key; inside metrics, so that a request cut off is counted.
        .layer(surface::DeadlineLayer(state.config.request_timeout))
        // Outside the panic catcher: a request that panicked (a 500) releases its key. The rate
        // limit comes first, and calls the idempotency layer itself: a request over its rate
        // limit never claims its key.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::layer,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::extract::DefaultBodyLimit::max(state.config.body_limit));
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(stack)
        .with_state(state)
}

/// The request path for a log line: the query string is left out (it may carry a token), and so
/// is any path segment that is a secret of ours (an invitation token travels in the accept
/// route's path).
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let secret = |seg: &str| {
        [
            orgbase_domain::credential::API_KEY_PREFIX,
            orgbase_domain::people::SESSION_PREFIX,
            orgbase_domain::people::INVITE_PREFIX,
        ]
        .iter()
        .any(|p| seg.starts_with(p))
    };
    if !path.split('/').any(secret) {
        return path.into();
    }
    path.split('/')
        .map(|seg| if secret(seg) { "{redacted}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
        .into()
}

/// Serves the app on an already-bound listener until `shutdown` is cancelled, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_app(listener, app(state), shutdown).await
}

/// [`serve`] for an app built with [`app_with`].
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_a_path_are_not_logged() {
        assert_eq!(
            super::loggable_path("/api/organizations/invite/obi_abc-DEF_1/accept"),
            "/api/organizations/invite/{redacted}/accept"
        );
        assert_eq!(
            super::loggable_path("/api/organizations/123/members"),
            "/api/organizations/123/members"
        );
        assert_eq!(
            super::loggable_path("/x/obk_1/obs_2"),
            "/x/{redacted}/{redacted}"
        );
    }
}
