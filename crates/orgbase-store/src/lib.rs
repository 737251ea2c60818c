//! Storage for Orgbase: the traits the services use, and one implementation per database, each
//! with SQL written for its own dialect and its own migrations.
//!
//! - [`sqlite::SqliteStore`]: the embedded default. WAL, `synchronous=FULL`, foreign keys on, and
//!   a single writer thread that commits queued writes together (group commit).
//! - [`postgres::PgStore`]: any number of stateless nodes on one PostgreSQL.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::{
    ApiKey, ApiKeyId, Email, Invitation, KeyKind, Member, OrgStatus, OrgType, Organization,
    OrganizationId, Permissions, Plan, Role, SecretHash, Session, User, UserId, Workspace,
};
use std::sync::Arc;
use uuid::Uuid;

pub mod audit;
pub mod idempotency_mark;
mod memo;
pub mod postgres;
pub mod sqlite;
mod sqlite_search;
pub mod testing;

/// What went wrong in storage, in terms a service can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule of the schema, or a rule of `orgbase_domain::rules`,
    /// refused the write. `constraint` is a stable name of ours (`organization_slug`,
    /// `owner_role`, …), the same on every database.
    #[error("conflict on {constraint}")]
    Conflict { constraint: &'static str },
    /// A conditional write found another version than the one it was based on.
    #[error("version mismatch")]
    VersionMismatch,
    /// The database cannot be reached or cannot take the write right now: refused or lost
    /// connections, a pool that gave no connection in time, a statement past its timeout, a disk
    /// that is full or read-only. Nothing this error answers was committed, except that a lost
    /// answer to a COMMIT leaves the outcome unknown (see [`idempotency_mark`]). Worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A rule of the domain refused the change the transaction was about to make: reported as a
/// conflict named by the rule.
impl From<orgbase_domain::rules::Refusal> for StoreError {
    fn from(r: orgbase_domain::rules::Refusal) -> Self {
        Self::Conflict { constraint: r.0 }
    }
}

impl StoreError {
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Other(Box::new(e))
    }
    pub fn msg(m: impl Into<String>) -> Self {
        Self::Other(m.into().into())
    }
    pub fn unavailable(m: impl std::fmt::Display) -> Self {
        Self::Unavailable(m.to_string())
    }
    /// The same error again, for answering several waiters of one failed batch: its kind is
    /// kept (an unavailable database stays unavailable), its source becomes its message.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::NotFound => Self::NotFound,
            Self::Conflict { constraint } => Self::Conflict { constraint },
            Self::VersionMismatch => Self::VersionMismatch,
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            Self::Other(e) => Self::msg(e.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which organizations to list: every filter is served by an index.
#[derive(Debug, Clone, Default)]
pub struct OrganizationQuery {
    /// Rows to return (the caller asks for one more than it shows, to know if a next page exists).
    pub limit: u32,
    /// Cursor: only organizations with an id below this one (lists are newest first).
    pub before: Option<OrganizationId>,
    pub status: Option<StatusFilter>,
    /// Include soft-deleted organizations (platform only).
    pub include_deleted: bool,
    pub org_type: Option<OrgType>,
    pub parent_id: Option<OrganizationId>,
    /// Case-insensitive substring of the name or the slug, 3 characters or more.
    pub q: Option<String>,
    pub external_account_id: Option<String>,
    /// `metadata[key]=value` pairs, all of which must match.
    pub metadata: Vec<(String, String)>,
    /// Only organizations this person is a member of.
    pub member: Option<UserId>,
    /// Only this organization (an organization key lists itself).
    pub only: Option<OrganizationId>,
    /// Only this partner and its children (a partner key's reach).
    pub partner: Option<OrganizationId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Is(OrgStatus),
    Deleted,
}

/// Which keys to list.
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    pub kind: Option<KeyKind>,
    pub organization_id: Option<OrganizationId>,
    pub include_revoked: bool,
}

#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Inserts a new organization. A taken slug is `Conflict { constraint: "organization_slug" }`.
    async fn insert_organization(&self, org: &Organization) -> StoreResult<()>;
    /// Any organization, deleted ones included: hiding them is the caller's rule.
    async fn get_organization(&self, id: OrganizationId) -> StoreResult<Organization>;
    /// [`Self::get_organization`] as committed now, never from a copy another node's change
    /// may not have reached yet (the access check). Where the store keeps no such copy (SQLite:
    /// one node, its cache exact) this is the same read.
    async fn get_organization_committed(&self, id: OrganizationId) -> StoreResult<Organization> {
        self.get_organization(id).await
    }
    /// Replaces `previous` (as read) with `org`, if the stored version is still
    /// `previous.version`; otherwise `VersionMismatch` (or `NotFound`). Every change bumps the
    /// version, so a matching version means the stored row is `previous`, and only the columns
    /// that differ are written (fewer indexes to touch, and PostgreSQL can update in place).
    async fn update_organization(
        &self,
        org: &Organization,
        previous: &Organization,
    ) -> StoreResult<()>;
    /// `update_organization`, and in the same transaction the owner's e-mail (the partner
    /// settings API changes both at once). A taken address is
    /// `Conflict { constraint: "user_email" }`, and then nothing is written.
    async fn update_organization_and_owner_email(
        &self,
        org: &Organization,
        previous: &Organization,
        owner_email: Option<(UserId, Email)>,
    ) -> StoreResult<()>;
    async fn list_organizations(&self, q: &OrganizationQuery) -> StoreResult<Vec<Organization>>;
    /// How many organizations (deleted ones included) name this one as their parent.
    async fn count_children(&self, id: OrganizationId) -> StoreResult<u64>;
    /// Removes for good up to `limit` organizations soft-deleted before `before`, with their
    /// metadata and keys; a partner that still has children (deleted or not) is kept until they
    /// are gone. Answers the ids removed.
    async fn purge_deleted(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<OrganizationId>>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// Inserts the first platform key unless one was ever bootstrapped before (on any node).
    /// Answers whether this call inserted it.
    async fn insert_bootstrap_key(&self, key: &ApiKey) -> StoreResult<bool>;
    /// The key with this hash, revoked or not.
    async fn find_api_key(&self, hash: &SecretHash) -> StoreResult<Option<ApiKey>>;
    async fn get_api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey>;
    async fn list_api_keys(&self, q: &KeyQuery) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key. Refuses (`Conflict { constraint: "last_platform_key" }`) to revoke the last
    /// active platform key, which would lock the operator out.
    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<ApiKey>;
}

/// Which members to list: a page by offset, as the source API pages them.
#[derive(Debug, Clone)]
pub struct MemberQuery {
    pub organization_id: OrganizationId,
    pub offset: u64,
    pub limit: u32,
    pub role: Option<i64>,
    pub workspace: Option<Uuid>,
    /// Case-insensitive substring of the name or the e-mail.
    pub q: Option<String>,
}

/// A page of members and how many match in all.
#[derive(Debug, Clone)]
pub struct MemberPage {
    pub members: Vec<Member>,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberStats {
    pub members: u64,
    /// Changes whenever a member joins or leaves.
    pub version: u64,
    /// Changes whenever anything a member list shows changes: joins and leaves, roles,
    /// workspaces, a person's name or e-mail.
    pub content_version: u64,
}

/// A custom role to create.
#[derive(Debug, Clone)]
pub struct NewRole {
    pub organization_id: OrganizationId,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Permissions,
    pub at: DateTime<Utc>,
}

pub use orgbase_domain::rules::Acceptance;

// People: users and sessions, members, roles, workspaces, invitations, one trait each. Every
// method is one atomic unit of work; conflicts come back as `Conflict` with a stable name (the
// rule's, when a rule of `orgbase_domain::rules` refused the change).

/// People's accounts and their login sessions.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// `Conflict { constraint: "user_email" }` when the address is taken.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn get_user(&self, id: UserId) -> StoreResult<User>;
    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// The session with this token hash and its user, expired or revoked ones included.
    async fn find_session(&self, hash: &SecretHash) -> StoreResult<Option<(Session, User)>>;
    async fn revoke_session(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;
    /// Removes sessions that expired or were revoked before `before`; answers how many.
    async fn purge_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Memberships: who belongs to an organization, with which roles and workspaces, and who owns it.
#[async_trait]
pub trait MemberStore: Send + Sync {
    /// Inserts the organization and makes `owner` its owner (member with role 1), in one
    /// transaction. `owner` is used as given when nobody has its e-mail yet; otherwise the
    /// existing person becomes the owner. Answers the organization (its `owner` set to the
    /// person's id) and the owner's membership.
    async fn insert_organization_with_owner(
        &self,
        org: &Organization,
        owner: &User,
    ) -> StoreResult<(Organization, Member)>;
    /// Hands ownership to `to_member`: it gets role 1 (and keeps its others); the previous owner
    /// loses role 1 and becomes an admin; the organization's `owner` and `version` change.
    /// `Conflict { constraint: "version" }`-free: it always applies to the latest version.
    async fn transfer_ownership(
        &self,
        org_id: OrganizationId,
        to_member: i64,
        at: DateTime<Utc>,
    ) -> StoreResult<Organization>;

    async fn get_member(&self, org: OrganizationId, id: i64) -> StoreResult<Member>;
    async fn find_member(&self, org: OrganizationId, user: UserId) -> StoreResult<Option<Member>>;
    async fn list_members(&self, q: &MemberQuery) -> StoreResult<MemberPage>;
    /// How many members the organization has, a version that changes whenever one joins or
    /// leaves, and one that changes whenever anything its member lists show changes (both kept
    /// by the database in the same transaction). All zero for none ever.
    async fn member_stats(&self, org: OrganizationId) -> StoreResult<MemberStats>;
    /// Every member id of the organization, ascending.
    async fn member_ids(&self, org: OrganizationId) -> StoreResult<Vec<i64>>;
    /// These members of the organization (ids of others, or gone, are left out), ascending.
    async fn members_by_ids(&self, org: OrganizationId, ids: &[i64]) -> StoreResult<Vec<Member>>;
    /// Replaces a member's roles and workspaces. A workspace that is not the organization's is
    /// `Conflict { constraint: "foreign_key" }`. Refuses (`Conflict { constraint: "owner_role" }`)
    /// to add or remove role 1, which only an ownership transfer moves.
    async fn update_member(
        &self,
        org: OrganizationId,
        id: i64,
        roles: &[i64],
        workspaces: &[Uuid],
        at: DateTime<Utc>,
    ) -> StoreResult<Member>;
    /// Removes a member; the owner cannot be removed (`Conflict { constraint: "owner_role" }`).
    async fn remove_member(&self, org: OrganizationId, id: i64) -> StoreResult<Member>;
}

/// An organization's own roles.
#[async_trait]
pub trait RoleStore: Send + Sync {
    /// The organization's custom roles (system roles are not stored).
    async fn list_roles(&self, org: OrganizationId) -> StoreResult<Vec<Role>>;
    async fn get_role(&self, org: OrganizationId, id: i64) -> StoreResult<Role>;
    /// `Conflict { constraint: "role_name" }` when the organization has a role of that name.
    async fn insert_role(&self, role: &NewRole) -> StoreResult<Role>;
    async fn update_role(&self, role: &Role) -> StoreResult<()>;
    /// Deletes a custom role nobody holds (`Conflict { constraint: "role_in_use" }` otherwise:
    /// a member, an active key or a pending invitation).
    async fn delete_role(&self, org: OrganizationId, id: i64) -> StoreResult<()>;
}

/// An organization's workspaces.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    async fn list_workspaces(&self, org: OrganizationId) -> StoreResult<Vec<Workspace>>;
    async fn get_workspace(&self, org: OrganizationId, id: Uuid) -> StoreResult<Workspace>;
    /// `Conflict { constraint: "workspace_name" }` when the name is taken in the organization.
    async fn insert_workspace(&self, ws: &Workspace) -> StoreResult<()>;
    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<()>;
    /// Deletes a workspace and takes it off every member.
    async fn delete_workspace(&self, org: OrganizationId, id: Uuid) -> StoreResult<()>;
}

/// Invitations to join an organization, and their acceptance.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Inserts an invitation. A person with that e-mail who is a member already is
    /// `Conflict { constraint: "member_exists" }` (unless `owner_setup`: the invitation of an
    /// owner named by the platform to set a password); a pending invitation for the address is
    /// `Conflict { constraint: "invitation_pending" }`. Expired ones do not count.
    async fn insert_invitation(&self, inv: &Invitation, owner_setup: bool) -> StoreResult<()>;
    /// Newest first; pending only unless `all`.
    async fn list_invitations(
        &self,
        org: OrganizationId,
        all: bool,
    ) -> StoreResult<Vec<Invitation>>;
    async fn get_invitation(&self, org: OrganizationId, id: Uuid) -> StoreResult<Invitation>;
    async fn find_invitation(&self, hash: &SecretHash) -> StoreResult<Option<Invitation>>;
    /// `Conflict { constraint: "invitation_not_pending" }` unless it is pending (or expired).
    async fn revoke_invitation(
        &self,
        org: OrganizationId,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<Invitation>;
    /// A new token and expiry for an invitation that is neither accepted nor revoked; the old
    /// token stops working at once.
    async fn reissue_invitation(
        &self,
        org: OrganizationId,
        id: Uuid,
        hash: &SecretHash,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Invitation>;
    /// Consumes the invitation and makes the person a member, atomically: of two simultaneous
    /// accepts one wins, the other is `Conflict { constraint: "invitation_not_pending" }`. An
    /// invitation past its expiry is `Conflict { constraint: "invitation_expired" }`.
    /// `ExistingAccount` on a person without a password is
    /// `Conflict { constraint: "password_required" }`. The owner role is never granted this way:
    /// an invitation holding only it (an owner named by the platform, who is a member from the
    /// start) adds nobody, and is `Conflict { constraint: "membership_ended" }` once that person
    /// is no longer a member.
    async fn accept_invitation(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        acceptance: &Acceptance,
    ) -> StoreResult<Member>;
}

/// Product plans.
#[async_trait]
pub trait PlanStore: Send + Sync {
    /// `Conflict { constraint: "plan_id" }` when the id is taken.
    async fn insert_plan(&self, plan: &Plan) -> StoreResult<()>;
    async fn get_plan(&self, id: &str) -> StoreResult<Plan>;
    /// Ordered by price, then id.
    async fn list_plans(&self, public_only: bool) -> StoreResult<Vec<Plan>>;
    async fn update_plan(&self, plan: &Plan) -> StoreResult<()>;
    /// `Conflict { constraint: "plan_in_use" }` while any organization (deleted ones included)
    /// is on it or has it offered.
    async fn delete_plan(&self, id: &str) -> StoreResult<()>;
}

/// What appending a ledger entry came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    New(orgbase_domain::wallet::Entry),
    /// An entry with the same Idempotency-Key exists for the organization: that one, unchanged.
    Existing(orgbase_domain::wallet::Entry),
}

/// The wallet's ledger.
#[async_trait]
pub trait WalletStore: Send + Sync {
    /// The organization's balances; `None` before its first entry.
    async fn get_wallet(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Option<orgbase_domain::wallet::Wallet>>;
    /// Appends the entry and moves the balances, in one transaction. A charge the balance does
    /// not cover is `Conflict { constraint: "insufficient_funds" }`, and nothing is written.
    async fn append_entry(&self, e: &orgbase_domain::wallet::NewEntry) -> StoreResult<Appended>;
    /// Newest first, those older than `before` when given.
    async fn list_entries(
        &self,
        org: OrganizationId,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<orgbase_domain::wallet::Entry>>;
}

/// An answer kept for replay under an Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    /// The headers worth replaying (content type, location, ETag), as name/value pairs.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What claiming an Idempotency-Key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its earlier use was abandoned): this request goes ahead.
    Claimed,
    /// A request with this key is still running.
    InFlight { request_hash: String },
    /// A request with this key finished: replay its answer if it is the same request.
    Done {
        request_hash: String,
        answer: StoredAnswer,
    },
    /// A request with this key committed its change, but its answer was lost (the database
    /// went away before it could be kept, or its node died): it must not run again.
    Committed { request_hash: String },
}

/// Idempotency keys of POST requests.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `(scope, key)` for a request. A claim still in flight that was made before
    /// `abandoned_before` (its request crashed) is taken over, unless its request committed.
    /// `claim_id` names this claim: only it answers, releases or marks the key afterwards.
    async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
        request_hash: &str,
        at: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> StoreResult<Claim>;
    /// Stores the answer of a key claimed by `claim_id`.
    async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
        answer: &StoredAnswer,
    ) -> StoreResult<()>;
    /// Lets a claimed key go unanswered (its request failed on our side: it may be retried),
    /// unless its request's change committed (see [`idempotency_mark`]): such a key is kept as
    /// done without an answer, and answers [`Claim::Committed`] from then on.
    /// Only the claim `claim_id` is released: safe to retry, and to send for a claim that may
    /// not have been stored at all (its answer lost).
    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim_id: &str,
    ) -> StoreResult<()>;
    /// Removes keys claimed before `before`; answers how many.
    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// An organization's account with a billing provider, and the clocks that keep webhook
/// deliveries (which arrive out of order) from rolling its state back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccount {
    pub organization_id: OrganizationId,
    pub provider: orgbase_domain::BillingProvider,
    /// The provider's customer: created once per organization, then reused.
    pub customer_id: String,
    /// The provider's time of the subscription state last applied.
    pub subscription_as_of: Option<DateTime<Utc>>,
    /// The provider's time of the invoice event last applied (overdue or paid).
    pub invoice_as_of: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    /// The subscription's price at the provider, as last applied.
    pub price_id: Option<String>,
}

/// A verified webhook event, recorded so that it is processed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingEventRecord {
    pub provider: orgbase_domain::BillingProvider,
    pub event_id: String,
    pub event_type: String,
    /// The organization it was about, when one was found.
    pub organization_id: Option<OrganizationId>,
    pub received_at: DateTime<Utc>,
}

/// What an event changes: the organization (`next` replaces `previous`, which must still be
/// the stored version) and its billing account.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingChange {
    pub next: Organization,
    pub previous: Organization,
    pub account: BillingAccount,
}

impl BillingChange {
    /// The change must be about one organization: its previous and next versions, and its
    /// account.
    pub(crate) fn check(&self) -> StoreResult<()> {
        if self.next.id != self.previous.id || self.account.organization_id != self.next.id {
            return Err(StoreError::msg(
                "a billing change names more than one organization",
            ));
        }
        Ok(())
    }
}

/// Billing accounts and the webhook events applied to them.
#[async_trait]
pub trait BillingStore: Send + Sync {
    async fn get_billing_account(&self, org: OrganizationId)
        -> StoreResult<Option<BillingAccount>>;
    /// The account of a provider's customer.
    async fn find_billing_account(
        &self,
        provider: orgbase_domain::BillingProvider,
        customer_id: &str,
    ) -> StoreResult<Option<BillingAccount>>;
    /// Records the organization's customer at `provider` unless it has an account already;
    /// answers the account as stored (the earlier customer wins a race).
    async fn attach_billing_customer(
        &self,
        org: OrganizationId,
        provider: orgbase_domain::BillingProvider,
        customer_id: &str,
    ) -> StoreResult<BillingAccount>;
    /// The plan billed at `provider` with `price_id`, if any.
    async fn find_plan_by_price(
        &self,
        provider: orgbase_domain::BillingProvider,
        price_id: &str,
    ) -> StoreResult<Option<Plan>>;
    /// In one transaction: records the event, and applies `change` if given. An event recorded
    /// before answers `Ok(false)` and changes nothing. When `change.previous` is no longer the
    /// stored version: `VersionMismatch`, and nothing is recorded (read again and retry).
    async fn apply_billing_event(
        &self,
        event: &BillingEventRecord,
        change: Option<&BillingChange>,
    ) -> StoreResult<bool>;
    /// Whether the event was recorded (for a quick answer to a redelivery).
    async fn billing_event_seen(
        &self,
        provider: orgbase_domain::BillingProvider,
        event_id: &str,
    ) -> StoreResult<bool>;
}

/// The audit log. Entries are written by the change they describe (see [`audit::record`]);
/// here they are only read and, past their retention, purged.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Newest first.
    async fn list_audit_entries(
        &self,
        q: &orgbase_domain::AuditQuery,
    ) -> StoreResult<Vec<orgbase_domain::AuditEntry>>;
    /// Writes entries of a change made elsewhere (a checkout started at a billing provider),
    /// of which nothing is stored here but its record.
    async fn append_audit_entries(&self, entries: &[orgbase_domain::AuditEntry])
        -> StoreResult<()>;
    /// Removes up to `limit` entries that occurred before `before` (the only removal the log
    /// allows); answers how many.
    async fn purge_audit_entries(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
}

/// Webhooks: endpoints, the outbox of events (written by the changes themselves, with their
/// audit entries: see [`audit`]), and each event's delivery to each endpoint with its attempts.
///
/// Writing an event makes its messages in the same transaction: one, pending and due at once,
/// for each enabled endpoint that wants the event's type, of the platform, of the event's
/// organization or of that organization's parent (a partner). A trigger of the outbox table
/// does it on both databases, so every path that writes events (`commit`, the batched PATCH,
/// the wallet's one statement, the SQLite group commit) makes them, and an endpoint receives
/// the events of exactly the changes made while it was enabled.
///
/// Several nodes may run the delivery worker on one PostgreSQL database: claiming takes rows
/// no other node holds (`FOR UPDATE SKIP LOCKED`), and a claimed message is leased, so that a
/// node that dies mid-delivery leaves it to another once the lease ends.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook_endpoint(
        &self,
        e: &orgbase_domain::webhook::WebhookEndpoint,
    ) -> StoreResult<()>;
    async fn get_webhook_endpoint(
        &self,
        id: Uuid,
    ) -> StoreResult<Option<orgbase_domain::webhook::WebhookEndpoint>>;
    /// An owner's endpoints, oldest first.
    async fn list_webhook_endpoints(
        &self,
        owner: orgbase_domain::webhook::EndpointOwner,
    ) -> StoreResult<Vec<orgbase_domain::webhook::WebhookEndpoint>>;
    /// Stores every field of `e` but its id, owner and creation time; false when it is gone.
    async fn update_webhook_endpoint(
        &self,
        e: &orgbase_domain::webhook::WebhookEndpoint,
    ) -> StoreResult<bool>;
    /// Removes the endpoint with its messages and attempts; false when it was gone.
    async fn delete_webhook_endpoint(&self, id: Uuid) -> StoreResult<bool>;
    /// Leases up to `limit` pending messages due at `now` (and not leased by another worker)
    /// until `lease_until`, soonest due first, with their payloads and endpoints.
    async fn claim_webhook_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<orgbase_domain::webhook::DueMessage>>;
    /// Records `attempt` and what it leaves of its message (releasing the lease), and disables
    /// the endpoint when the outcome says so. One transaction.
    async fn finish_webhook_attempt(
        &self,
        attempt: &orgbase_domain::webhook::WebhookAttempt,
        outcome: &orgbase_domain::webhook::AttemptOutcome,
    ) -> StoreResult<()>;
    /// [`Self::finish_webhook_attempt`] for each of `done` (none disabling its endpoint), in
    /// one transaction: a worker's round of attempts, recorded at once.
    async fn finish_webhook_attempts(
        &self,
        done: &[(
            orgbase_domain::webhook::WebhookAttempt,
            orgbase_domain::webhook::AttemptOutcome,
        )],
    ) -> StoreResult<()> {
        for (a, o) in done {
            self.finish_webhook_attempt(a, o).await?;
        }
        Ok(())
    }
    /// An endpoint's messages, newest first, before the message `before` if given.
    async fn list_webhook_messages(
        &self,
        endpoint: Uuid,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<orgbase_domain::webhook::WebhookMessage>>;
    async fn get_webhook_message(
        &self,
        id: &str,
    ) -> StoreResult<Option<orgbase_domain::webhook::WebhookMessage>>;
    /// A message's attempts, oldest first.
    async fn list_webhook_attempts(
        &self,
        message: &str,
    ) -> StoreResult<Vec<orgbase_domain::webhook::WebhookAttempt>>;
    /// Sets messages pending again, due at `now` (a replay, a recovery): the message `id`, or
    /// with `failed_since` every failed message of the endpoint updated since then; never a
    /// message whose attempt is in flight (leased). Answers how many.
    async fn requeue_webhook_messages(
        &self,
        endpoint: Uuid,
        id: Option<&str>,
        failed_since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Messages pending (to attempt now or at a retry), of every endpoint: the backlog.
    async fn pending_webhook_messages(&self) -> StoreResult<u64>;
    /// The oldest attempt of the endpoint's unbroken run of failures (no success since), if any.
    async fn webhook_failing_since(&self, endpoint: Uuid) -> StoreResult<Option<DateTime<Utc>>>;
    /// At a node's start: frees the leases a previous process of it left, where that is known
    /// (SQLite, one node); elsewhere (PostgreSQL, several nodes) leases end by themselves.
    /// Answers how many.
    async fn release_webhook_leases(&self) -> StoreResult<u64> {
        Ok(0)
    }
    /// Removes up to `limit` events that occurred before `before` and whose messages are all
    /// finished, delivered or failed for good (or that had none), with their messages and
    /// attempts; answers how many. An event still to be delivered stays.
    async fn purge_webhook_events(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
}

/// Everything Orgbase stores.
#[async_trait]
pub trait Store:
    OrganizationStore
    + ApiKeyStore
    + UserStore
    + MemberStore
    + RoleStore
    + WorkspaceStore
    + InvitationStore
    + PlanStore
    + WalletStore
    + IdempotencyStore
    + BillingStore
    + AuditStore
    + WebhookStore
    + Send
    + Sync
    + 'static
{
    /// Checks that the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// What the access check judges, all as committed now (never from a copy another node's
    /// change may not have reached yet): the organization's standing, its wallet's funds
    /// and its plan's entitlements. Where the store holds no such copy (SQLite: one node, its
    /// caches exact) these are the usual reads. PostgreSQL answers every check waiting at that
    /// moment with one round trip on a connection that listens for the changes: from the facts
    /// it read before, made exact by the notices that round trip brings in, and by reading the
    /// three in one statement for the organizations it holds no facts of.
    async fn access_facts(&self, id: OrganizationId) -> StoreResult<AccessFacts> {
        let organization = self.get_organization_committed(id).await?;
        let standing = orgbase_domain::access_check::Standing::of(&organization);
        let plan_entitlements = match self.get_plan(&organization.product_plan_id).await {
            Ok(p) => Some(p.entitlements),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let wallet = self.get_wallet(id).await?;
        Ok(AccessFacts {
            standing,
            funds: orgbase_domain::access_check::Funds::of(wallet.as_ref()),
            plan_entitlements,
        })
    }
    /// Which database this is, for logs and metrics.
    fn backend(&self) -> &'static str;
}

/// What [`Store::access_facts`] reads.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessFacts {
    /// What decides access of the organization (deleted ones included).
    pub standing: orgbase_domain::access_check::Standing,
    /// Whether the wallet's balances are above zero (none before its first entry).
    pub funds: orgbase_domain::access_check::Funds,
    /// The entitlements of the organization's plan; none when the plan is gone.
    pub plan_entitlements: Option<Vec<String>>,
}

pub type DynStore = Arc<dyn Store>;

/// Opens the database a URL names (`sqlite://path`, `sqlite::memory:` is refused since nodes
/// would not share it; `postgres://…`) and applies its migrations.
pub async fn open(url: &str, options: &OpenOptions) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let s =
            postgres::PgStore::connect_bounded(url, options.pg_max_connections, options.pg_bounds)
                .await?;
        s.migrate().await?;
        Ok(Arc::new(s))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let s = sqlite::SqliteStore::open(path, options.sqlite_write_mode).await?;
        Ok(Arc::new(s))
    } else {
        Err(StoreError::msg(format!(
            "unsupported database URL scheme in {:?}: use sqlite://PATH or postgres://…",
            url.split("://").next().unwrap_or(url)
        )))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    pub pg_max_connections: u32,
    /// How long PostgreSQL may make anything wait (see [`postgres::Bounds`]).
    pub pg_bounds: postgres::Bounds,
    pub sqlite_write_mode: sqlite::WriteMode,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            pg_max_connections: 16,
            pg_bounds: postgres::Bounds::default(),
            sqlite_write_mode: sqlite::WriteMode::GroupCommit,
        }
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
