//! Orgbase's use cases. Every change and read that any API surface offers is one function here:
//! it takes the caller's authorized access and parsed domain values, applies the rules of
//! `SPEC.md`, writes through storage with its audit entry, and answers domain values or a
//! [`ServiceError`]. Nothing here knows HTTP; each surface maps the answers to its own shape.
pub mod access;
pub mod access_check;
pub mod audit;
pub mod billing;
pub mod context;
pub mod directory;
pub mod error;
pub mod idempotency;
pub mod invitations;
pub mod keys;
pub mod limits;
pub mod maintenance;
pub mod members;
pub mod organizations;
pub mod password;
pub mod plans;
pub mod providers;
pub mod roles;
pub mod sessions;
pub mod wallet;
pub mod webhooks;
pub mod workspaces;

use orgbase_mail::Mailer;
use orgbase_store::DynStore;
use std::sync::Arc;

pub use error::{ServiceError, ServiceResult};
pub use organizations::*;

use directory::MemberDirectory;
use password::Passwords;
use providers::Billing;

/// What the use cases are configured with.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where Orgbase is reached from outside: the base of the links it mails.
    pub public_url: String,
    /// Where invitation links point instead of `{public_url}/invite/{token}`: a template with
    /// `{token}`.
    pub invite_url: Option<String>,
    pub session_ttl: chrono::Duration,
    pub invitation_ttl: chrono::Duration,
    /// From how many members an organization's member pages come from the member directory.
    pub member_directory_min: u64,
    /// Requests count against their organization's rate limit (see [`limits`]).
    pub rate_limits: bool,
    /// Requests per second for each platform key; `None`: not limited.
    pub platform_rate_limit: Option<u32>,
}

/// Everything the use cases run on: storage, the outside services, and what a node keeps in
/// memory (the member directory) or shares (the rate limiter, with the other nodes through
/// Redis).
#[derive(Clone)]
pub struct Services {
    pub store: DynStore,
    pub config: Arc<ServiceConfig>,
    pub mailer: Arc<dyn Mailer>,
    pub passwords: Arc<Passwords>,
    /// Rate limits and failed-login throttles: in memory, or in Redis across nodes.
    pub limiter: orgbase_limits::Limiter,
    pub members: Arc<MemberDirectory>,
    /// The billing providers configured (none by default).
    pub billing: Billing,
    /// Webhook delivery: this node's worker, and the client it sends with.
    pub webhooks: Webhooks,
}

/// Webhook delivery on this node.
#[derive(Clone)]
pub struct Webhooks {
    pub worker: Arc<orgbase_webhooks::Worker>,
    pub deliverer: orgbase_webhooks::Deliverer,
}

impl Webhooks {
    /// Delivery from `store`, to public addresses only unless `allow_private`.
    pub fn new(store: DynStore, allow_private: bool) -> Self {
        let deliverer = orgbase_webhooks::Deliverer::new(allow_private);
        Self {
            worker: orgbase_webhooks::Worker::new(store, deliverer.clone()),
            deliverer,
        }
    }
}

impl Services {
    pub fn new(store: DynStore, config: ServiceConfig, mailer: Arc<dyn Mailer>) -> Self {
        let store_for_webhooks = store.clone();
        Self {
            store,
            config: Arc::new(config),
            mailer,
            passwords: Arc::new(Passwords::new()),
            limiter: orgbase_limits::Limiter::in_memory(),
            members: Arc::new(MemberDirectory::default()),
            billing: Billing::default(),
            webhooks: Webhooks::new(store_for_webhooks, false),
        }
    }

    /// Webhooks may (or may not) reach private and loopback addresses
    /// (`ORGBASE_WEBHOOK_ALLOW_PRIVATE`).
    pub fn with_private_webhooks(mut self, allow: bool) -> Self {
        self.webhooks = Webhooks::new(self.store.clone(), allow);
        self
    }
}
