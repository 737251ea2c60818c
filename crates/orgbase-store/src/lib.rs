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
    ApiKey, ApiKeyId, KeyKind, OrgStatus, OrgType, Organization, OrganizationId, SecretHash,
};
use std::sync::Arc;

pub mod postgres;
pub mod sqlite;
mod sqlite_search;
pub mod testing;

/// What went wrong in storage, in terms a service can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule of the schema refused the write. `constraint` is a stable
    /// name of ours (`organization_slug`, …), the same on every database.
    #[error("conflict on {constraint}")]
    Conflict { constraint: &'static str },
    /// A conditional write found another version than the one it was based on.
    #[error("version mismatch")]
    VersionMismatch,
    #[error("storage error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Other(Box::new(e))
    }
    pub fn msg(m: impl Into<String>) -> Self {
        Self::Other(m.into().into())
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
    /// Replaces `previous` (as read) with `org`, if the stored version is still
    /// `previous.version`; otherwise `VersionMismatch` (or `NotFound`). Every change bumps the
    /// version, so a matching version means the stored row is `previous`, and only the columns
    /// that differ are written (fewer indexes to touch, and PostgreSQL can update in place).
    async fn update_organization(
        &self,
        org: &Organization,
        previous: &Organization,
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

/// Everything Orgbase stores.
#[async_trait]
pub trait Store: OrganizationStore + ApiKeyStore + Send + Sync + 'static {
    /// Checks that the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Which database this is, for logs and metrics.
    fn backend(&self) -> &'static str;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the database a URL names (`sqlite://path`, `sqlite::memory:` is refused since nodes
/// would not share it; `postgres://…`) and applies its migrations.
pub async fn open(url: &str, options: &OpenOptions) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let s = postgres::PgStore::connect(url, options.pg_max_connections).await?;
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
    pub sqlite_write_mode: sqlite::WriteMode,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            pg_max_connections: 16,
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
