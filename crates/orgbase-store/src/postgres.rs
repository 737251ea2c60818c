//! The PostgreSQL store: what lets any number of stateless nodes share one database.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::{
    ApiKey, ApiKeyId, Email, KeyKind, Metadata, OrgStatus, OrgType, Organization, OrganizationId,
    SecretHash, Sms, Subscription, UserId,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row};
use std::str::FromStr;
use std::sync::Arc;

use cache::PgCache;
use uuid::Uuid;

use crate::{
    ApiKeyStore, KeyQuery, OrganizationQuery, OrganizationStore, StatusFilter, Store, StoreError,
    StoreResult,
};

/// The condition on which a statement writes its change's webhook events: some endpoint is
/// enabled. With none, the fan-out trigger (migration 0017) would make no message of them, and an
/// event without a message is never read; the condition reads the statement's snapshot, as the
/// trigger does, so no endpoint enabled before the change misses its events.
macro_rules! some_endpoint_enabled {
    () => {
        "EXISTS (SELECT 1 FROM webhook_endpoints WHERE NOT disabled)"
    };
}

#[path = "postgres_access.rs"]
mod access;
pub use access::READER_NAME;
#[path = "postgres_audit.rs"]
mod audit;
#[path = "postgres_batch.rs"]
mod batch;
#[path = "postgres_billing.rs"]
mod billing;
#[path = "postgres_cache.rs"]
mod cache;
#[path = "postgres_conn.rs"]
mod conn;
#[path = "postgres_idempotency.rs"]
mod idempotency;
#[path = "postgres_people.rs"]
mod people;
#[path = "postgres_plans.rs"]
mod plans;
#[path = "postgres_search.rs"]
mod search;
#[path = "postgres_wallet.rs"]
mod wallet;
#[path = "postgres_webhooks.rs"]
mod webhooks;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    cache: Arc<PgCache>,
    notifier: cache::Notifier,
    batcher: batch::OrgBatcher,
    access: access::AccessReader,
    listener: tokio::task::JoinHandle<()>,
    indexer: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.indexer.abort();
    }
}

/// Maps PostgreSQL's errors onto ours, naming constraint violations in one place.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.code().is_some_and(|c| unavailable_code(&c)) => {
            StoreError::unavailable(e)
        }
        sqlx::Error::Database(db) => {
            let constraint = match db.constraint() {
                Some("organizations_slug_key") => "organization_slug",
                Some("api_keys_secret_hash_key") => "api_key_hash",
                Some("api_keys_bootstrap_key") => "bootstrap_key",
                Some("users_email_key") => "user_email",
                Some("organizations_plan_fkey") | Some("organizations_offered_plan_fkey") => {
                    "organization_plan"
                }
                Some("plans_pkey") => "plan_id",
                Some("billing_accounts_customer_key") => "billing_customer",
                Some("roles_org_name_key") => "role_name",
                Some("workspaces_org_name_key") => "workspace_name",
                Some("invitations_pending_key") => "invitation_pending",
                Some("members_org_user_key") => "member_exists",
                Some("member_roles_one_owner") => "owner_role",
                Some(_) if db.code().as_deref() == Some("23503") => "foreign_key",
                _ => return StoreError::other(e),
            };
            StoreError::Conflict { constraint }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(e),
        _ => StoreError::other(e),
    }
}

/// SQLSTATEs that say the server cannot serve right now, not that the request was wrong:
/// connection exceptions (08), shutting down or starting (57P01–57P03), a database dropped or a
/// session idle too long (57P04, 57P05), a statement cancelled by `statement_timeout` (57014), a
/// lock not had within `lock_timeout` (55P03), a transaction left idle past
/// `idle_in_transaction_session_timeout` (25P03), insufficient resources such as too many
/// connections or a full disk (53), and a read-only server (25006, a standby after a failover).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57P04" | "57P05" | "57014" | "55P03" | "25006" | "25P03"
        )
}

/// How long the database may make a request wait. Every wait on PostgreSQL is bounded by one
/// of these, so a node whose database is gone answers 503 quickly instead of hanging.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Waiting for a pooled connection (and so for a refused connect to be retried).
    pub acquire_timeout: std::time::Duration,
    /// A statement, on the server (`statement_timeout`), and a transaction left idle
    /// (`idle_in_transaction_session_timeout`); on the client, any one operation waits at most
    /// this plus a second.
    pub statement_timeout: std::time::Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            acquire_timeout: std::time::Duration::from_secs(1),
            statement_timeout: std::time::Duration::from_secs(5),
        }
    }
}

impl Bounds {
    /// The connect options with the server-side bounds set at connection start, and the
    /// server's TCP keepalives on (so that it drops the sessions of a node it cannot reach).
    pub fn apply(&self, opts: PgConnectOptions) -> PgConnectOptions {
        let ms = |d: std::time::Duration| d.as_millis().to_string();
        opts.options([
            ("statement_timeout", ms(self.statement_timeout)),
            (
                "idle_in_transaction_session_timeout",
                ms(self.statement_timeout),
            ),
            ("lock_timeout", ms(self.statement_timeout)),
            ("tcp_keepalives_idle", "10".to_owned()),
            ("tcp_keepalives_interval", "5".to_owned()),
            ("tcp_keepalives_count", "3".to_owned()),
        ])
    }

    /// The longest a client-side wait on one operation may last: the server's own bound, and a
    /// second for the answer to travel. Past it the connection is taken to be lost.
    pub fn client_wait(&self) -> std::time::Duration {
        self.statement_timeout + std::time::Duration::from_secs(1)
    }
}

/// Begins a transaction on a pooled connection, cancel-safely. sqlx 0.8's `begin` is not: a
/// caller dropped while `BEGIN` is on the wire (a request past its deadline, a client hanging up,
/// a bounded background pass) leaves the connection inside the transaction the server opened,
/// and the pool hands it on, so that the next caller's statements run in it unseen (found by the
/// partition test: a claim invisible to the write that followed it). Here `BEGIN` runs on a task
/// of its own, so it always finishes and an unwanted transaction is rolled back when dropped.
pub(crate) async fn begin(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
}

/// Commits `tx`, marking the request's Idempotency-Key (if any) committed in the same
/// transaction (see `idempotency_mark`). Every transaction of a change commits through here.
pub(crate) async fn commit(mut tx: sqlx::Transaction<'_, Postgres>) -> StoreResult<()> {
    let staged = crate::audit::staged();
    if let Some(s) = &staged {
        audit::insert_staged(&mut tx, s).await?;
    }
    if let Some(m) = crate::idempotency_mark::current() {
        let marked = sqlx::query(
            "UPDATE idempotency_keys SET committed = TRUE \
             WHERE scope = $1 AND key = $2 AND claim_id = $3",
        )
        .bind(&m.scope)
        .bind(&m.key)
        .bind(&m.claim_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if marked.rows_affected() == 0 {
            // The claim was taken over (its request ran past the abandonment age): the change
            // must not commit beside the one the new claim makes.
            return Err(StoreError::Conflict {
                constraint: "idempotency_claim_lost",
            });
        }
    }
    tx.commit().await.map_err(map_err)?;
    if let Some(s) = staged {
        s.written();
    }
    Ok(())
}

/// Runs a write on its own task, so that a caller that goes away (a client hanging up) does not
/// cut a transaction off half-way; the pool then never sees a connection in an unknown state.
/// The request's Idempotency-Key goes along, so that the write marks it.
async fn detached<T: Send + 'static>(
    fut: impl std::future::Future<Output = StoreResult<T>> + Send + 'static,
) -> StoreResult<T> {
    let mark = crate::idempotency_mark::current();
    let staged = crate::audit::staged();
    tokio::spawn(crate::idempotency_mark::carry(
        mark,
        crate::audit::carry(staged, fut),
    ))
    .await
    .map_err(StoreError::other)?
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::connect_bounded(url, max_connections, Bounds::default()).await
    }

    pub async fn connect_bounded(
        url: &str,
        max_connections: u32,
        bounds: Bounds,
    ) -> StoreResult<Self> {
        let opts = PgConnectOptions::from_str(url).map_err(StoreError::other)?;
        Self::connect_with_bounds(opts, max_connections, bounds).await
    }

    pub async fn connect_with(opts: PgConnectOptions, max_connections: u32) -> StoreResult<Self> {
        Self::connect_with_bounds(opts, max_connections, Bounds::default()).await
    }

    pub async fn connect_with_bounds(
        opts: PgConnectOptions,
        max_connections: u32,
        bounds: Bounds,
    ) -> StoreResult<Self> {
        let opts = bounds.apply(opts);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(bounds.acquire_timeout)
            // No ping before each use: it was a second round trip per query (12% of the
            // server's CPU under settings updates). A connection found broken fails its query
            // and leaves the pool, as it would have failed between a ping and the query anyway.
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(StoreError::other)?;
        let cache = Arc::new(PgCache::default());
        let wait = bounds.client_wait();
        let listener = tokio::spawn(cache::listen(pool.clone(), cache.clone(), wait));
        let notifier = cache::Notifier::start(pool.clone(), wait);
        let batcher = batch::OrgBatcher::start(opts.clone(), bounds);
        let access = access::AccessReader::new(opts.clone(), bounds);
        let indexer = tokio::spawn(search::index(pool.clone(), wait));
        Ok(Self {
            pool,
            cache,
            notifier,
            batcher,
            access,
            listener,
            indexer,
        })
    }

    /// Applies the migrations not yet applied. Safe to run from several nodes at once: sqlx takes
    /// an advisory lock.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::other)
    }

    /// What a write of an organization does after its commit, to run inside the write's own
    /// task (`detached`): a caller that goes away after the commit must not take it along.
    fn after_commit(&self) -> AfterCommit {
        AfterCommit {
            cache: self.cache.clone(),
            notices: self.notifier.queue(),
            generation: self.cache.org_generation(),
        }
    }

    /// How many keys and organizations this node holds in its cache.
    pub fn cached_counts(&self) -> (usize, usize) {
        self.cache.counts()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

const ORG_COLUMNS: &str = "id, name, slug, country_code, avatar_url, status, status_reason, \
    org_type, parent_id, owner_id, product_plan_id, offered_product_plan_id, sms_enabled, \
    sms_brand_id, sms_campaign_id, premium, external_account_id, external_billing_id, kyc_level, \
    placement_group, billing_overdue, rate_limit, entitlements, preferences, metadata, \
    created_at, updated_at, deleted_at, version, subscription";

fn bad(what: &str, v: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} {v:?}").into())
}

fn org_from_row(r: &PgRow) -> Result<Organization, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let org_type: String = r.try_get("org_type")?;
    Ok(Organization {
        id: OrganizationId(r.try_get("id")?),
        name: r.try_get("name")?,
        slug: r.try_get("slug")?,
        country_code: r.try_get("country_code")?,
        avatar_url: r.try_get("avatar_url")?,
        status: OrgStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        status_reason: r.try_get("status_reason")?,
        org_type: OrgType::parse(&org_type).ok_or_else(|| bad("type", &org_type))?,
        parent_id: r
            .try_get::<Option<Uuid>, _>("parent_id")?
            .map(OrganizationId),
        owner: r.try_get::<Option<Uuid>, _>("owner_id")?.map(UserId),
        product_plan_id: r.try_get("product_plan_id")?,
        offered_product_plan_id: r.try_get("offered_product_plan_id")?,
        sms: Sms {
            enabled: r.try_get("sms_enabled")?,
            brand_id: r.try_get("sms_brand_id")?,
            campaign_id: r.try_get("sms_campaign_id")?,
        },
        premium: r.try_get("premium")?,
        external_account_id: r.try_get("external_account_id")?,
        external_billing_id: r.try_get("external_billing_id")?,
        kyc_level: r.try_get("kyc_level")?,
        placement_group: r.try_get("placement_group")?,
        billing_overdue: r.try_get("billing_overdue")?,
        rate_limit: r.try_get("rate_limit")?,
        entitlements: r.try_get::<Json<Vec<String>>, _>("entitlements")?.0,
        preferences: r.try_get::<Json<_>, _>("preferences")?.0,
        metadata: r.try_get::<Json<Metadata>, _>("metadata")?.0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        deleted_at: r.try_get("deleted_at")?,
        version: r.try_get("version")?,
        subscription: r
            .try_get::<Option<Json<Subscription>>, _>("subscription")?
            .map(|j| j.0),
    })
}

/// Binds the organization's columns, in `ORG_COLUMNS` order, as a comma-separated list.
fn push_org_values<'a>(b: &mut QueryBuilder<'a, Postgres>, o: &'a Organization) {
    let mut s = b.separated(", ");
    s.push_bind(o.id.0)
        .push_bind(&o.name)
        .push_bind(&o.slug)
        .push_bind(&o.country_code)
        .push_bind(&o.avatar_url)
        .push_bind(o.status.as_str())
        .push_bind(&o.status_reason)
        .push_bind(o.org_type.as_str())
        .push_bind(o.parent_id.map(|p| p.0))
        .push_bind(o.owner.map(|p| p.0))
        .push_bind(&o.product_plan_id)
        .push_bind(&o.offered_product_plan_id)
        .push_bind(o.sms.enabled)
        .push_bind(&o.sms.brand_id)
        .push_bind(&o.sms.campaign_id)
        .push_bind(o.premium)
        .push_bind(&o.external_account_id)
        .push_bind(&o.external_billing_id)
        .push_bind(o.kyc_level)
        .push_bind(&o.placement_group)
        .push_bind(o.billing_overdue)
        .push_bind(o.rate_limit)
        .push_bind(Json(&o.entitlements))
        .push_bind(Json(&o.preferences))
        .push_bind(Json(&o.metadata))
        .push_bind(o.created_at)
        .push_bind(o.updated_at)
        .push_bind(o.deleted_at)
        .push_bind(o.version)
        .push_bind(o.subscription.as_ref().map(Json));
}

/// Binds column `i` (in `ORG_COLUMNS` order) of `o`, right after the text already pushed.
fn push_column<'a>(
    s: &mut sqlx::query_builder::Separated<'_, 'a, Postgres, &'static str>,
    o: &'a Organization,
    i: usize,
) {
    match i {
        1 => s.push_bind_unseparated(&o.name),
        2 => s.push_bind_unseparated(&o.slug),
        3 => s.push_bind_unseparated(&o.country_code),
        4 => s.push_bind_unseparated(&o.avatar_url),
        5 => s.push_bind_unseparated(o.status.as_str()),
        6 => s.push_bind_unseparated(&o.status_reason),
        7 => s.push_bind_unseparated(o.org_type.as_str()),
        8 => s.push_bind_unseparated(o.parent_id.map(|p| p.0)),
        9 => s.push_bind_unseparated(o.owner.map(|p| p.0)),
        10 => s.push_bind_unseparated(&o.product_plan_id),
        11 => s.push_bind_unseparated(&o.offered_product_plan_id),
        12 => s.push_bind_unseparated(o.sms.enabled),
        13 => s.push_bind_unseparated(&o.sms.brand_id),
        14 => s.push_bind_unseparated(&o.sms.campaign_id),
        15 => s.push_bind_unseparated(o.premium),
        16 => s.push_bind_unseparated(&o.external_account_id),
        17 => s.push_bind_unseparated(&o.external_billing_id),
        18 => s.push_bind_unseparated(o.kyc_level),
        19 => s.push_bind_unseparated(&o.placement_group),
        20 => s.push_bind_unseparated(o.billing_overdue),
        21 => s.push_bind_unseparated(o.rate_limit),
        22 => s.push_bind_unseparated(Json(&o.entitlements)),
        23 => s.push_bind_unseparated(Json(&o.preferences)),
        24 => s.push_bind_unseparated(Json(&o.metadata)),
        25 => s.push_bind_unseparated(o.created_at),
        26 => s.push_bind_unseparated(o.updated_at),
        27 => s.push_bind_unseparated(o.deleted_at),
        28 => s.push_bind_unseparated(o.version),
        29 => s.push_bind_unseparated(o.subscription.as_ref().map(Json)),
        _ => unreachable!("column {i} is the id or beyond ORG_COLUMNS"),
    };
}

/// Whether column `i` (in `ORG_COLUMNS` order, id excepted) differs between two versions.
/// The cache's upkeep after a write of an organization, taken (with the cache's generation)
/// before the write began.
pub(crate) struct AfterCommit {
    cache: Arc<PgCache>,
    notices: tokio::sync::mpsc::UnboundedSender<String>,
    generation: Option<u64>,
}

impl AfterCommit {
    /// Committed `org`: keeps the row written, and sends the notice if the transaction did not.
    pub(crate) fn wrote(&self, org: &Organization, notified: Notified) {
        self.cache.wrote_org(org, self.generation);
        if notified == Notified::No {
            let _ = self.notices.send(cache::org_notice(org.id, org.version));
        }
    }

    /// The write failed, perhaps because the row changed meanwhile: the copy goes.
    pub(crate) fn failed(&self, id: OrganizationId) {
        self.cache.notice(&format!("org:{id}"));
    }
}

/// Whether a change decides who may do what, or what the access check says, and so sends its
/// cache notice inside its own transaction (delivered if and only if it commits) rather than
/// just after the commit: status and its reason, deletion, type, parent, owner, plans, limits,
/// entitlements, billing state, SMS set-up. (The access readers keep what they read until a
/// notice names it: every field of `Standing` must be here.)
fn strict_change(a: &Organization, b: &Organization) -> bool {
    a.status != b.status
        || a.status_reason != b.status_reason
        || a.sms != b.sms
        || a.deleted_at != b.deleted_at
        || a.org_type != b.org_type
        || a.parent_id != b.parent_id
        || a.owner != b.owner
        || a.product_plan_id != b.product_plan_id
        || a.offered_product_plan_id != b.offered_product_plan_id
        || a.rate_limit != b.rate_limit
        || a.entitlements != b.entitlements
        || a.billing_overdue != b.billing_overdue
        || a.subscription != b.subscription
}

fn column_differs(a: &Organization, b: &Organization, i: usize) -> bool {
    match i {
        1 => a.name != b.name,
        2 => a.slug != b.slug,
        3 => a.country_code != b.country_code,
        4 => a.avatar_url != b.avatar_url,
        5 => a.status != b.status,
        6 => a.status_reason != b.status_reason,
        7 => a.org_type != b.org_type,
        8 => a.parent_id != b.parent_id,
        9 => a.owner != b.owner,
        10 => a.product_plan_id != b.product_plan_id,
        11 => a.offered_product_plan_id != b.offered_product_plan_id,
        12 => a.sms.enabled != b.sms.enabled,
        13 => a.sms.brand_id != b.sms.brand_id,
        14 => a.sms.campaign_id != b.sms.campaign_id,
        15 => a.premium != b.premium,
        16 => a.external_account_id != b.external_account_id,
        17 => a.external_billing_id != b.external_billing_id,
        18 => a.kyc_level != b.kyc_level,
        19 => a.placement_group != b.placement_group,
        20 => a.billing_overdue != b.billing_overdue,
        21 => a.rate_limit != b.rate_limit,
        22 => a.entitlements != b.entitlements,
        23 => a.preferences != b.preferences,
        24 => a.metadata != b.metadata,
        25 => a.created_at != b.created_at,
        26 => a.updated_at != b.updated_at,
        27 => a.deleted_at != b.deleted_at,
        28 => a.version != b.version,
        29 => a.subscription != b.subscription,
        _ => unreachable!("column {i} is the id or beyond ORG_COLUMNS"),
    }
}

async fn write_metadata(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    o: &Organization,
    replace: bool,
) -> Result<(), sqlx::Error> {
    if replace {
        sqlx::query("DELETE FROM organization_metadata WHERE organization_id = $1")
            .bind(o.id.0)
            .execute(&mut **tx)
            .await?;
    }
    if o.metadata.0.is_empty() {
        return Ok(());
    }
    let mut b =
        QueryBuilder::new("INSERT INTO organization_metadata (organization_id, key, value) ");
    b.push_values(&o.metadata.0, |mut row, (k, v)| {
        row.push_bind(o.id.0)
            .push_bind(k)
            .push_bind(Metadata::index_text(v));
    });
    b.build().execute(&mut **tx).await?;
    Ok(())
}

/// The staged entries of a new organization, where its creation can be one statement
/// (`insert_org_alone`): no metadata rows to write with it, no Idempotency-Key to mark, and the
/// entries' targets known (an organization's creation names itself).
fn alone(org: &Organization) -> Option<Arc<crate::audit::Staged>> {
    if !org.metadata.0.is_empty() || crate::idempotency_mark::current().is_some() {
        return None;
    }
    let staged = crate::audit::staged()?;
    let named = staged.entries().iter().all(|e| !e.target.id.is_empty());
    named.then_some(staged)
}

/// A new organization, its audit entries and their webhook events as one statement: its own
/// transaction, and one round trip where a transaction takes four (`BEGIN`, the row, the
/// entries, `COMMIT`). The events are made beforehand only where this node last found an
/// endpoint enabled (`hooked_hint`); made without them, the statement inserts nothing if one is
/// enabled after all, and goes again with them, as the batch writer and the wallet do.
async fn insert_org_alone(
    pool: &PgPool,
    org: &Organization,
    staged: &crate::audit::Staged,
) -> StoreResult<()> {
    let entries = staged.entries();
    let mut with_events = crate::audit::hooked_hint();
    loop {
        let mut b = QueryBuilder::new(format!(
            "WITH o AS (INSERT INTO organizations ({ORG_COLUMNS}) SELECT "
        ));
        push_org_values(&mut b, org);
        b.push(" WHERE ")
            .push_bind(with_events)
            .push(concat!(
                " OR NOT ",
                some_endpoint_enabled!(),
                " RETURNING id), "
            ))
            .push("a AS (INSERT INTO audit_log SELECT * FROM unnest(")
            .push_bind(audit::rows(&entries))
            .push("::audit_log[]) WHERE EXISTS (SELECT 1 FROM o))");
        // Without events, no insert into the outbox: its statement-level fan-out trigger fires
        // even for no row.
        if let Some(events) = with_events
            .then(|| webhooks::rows(staged.events()))
            .flatten()
        {
            b.push(
                ", ev AS (INSERT INTO webhook_events SELECT * FROM \
                 jsonb_populate_recordset(NULL::webhook_events, ",
            )
            .push_bind(events)
            .push(concat!(
                ") WHERE EXISTS (SELECT 1 FROM o) AND ",
                some_endpoint_enabled!(),
                ")"
            ));
        }
        b.push(concat!(
            " SELECT EXISTS (SELECT 1 FROM o), ",
            some_endpoint_enabled!()
        ));
        let (inserted, hooked): (bool, bool) =
            b.build_query_as().fetch_one(pool).await.map_err(map_err)?;
        crate::audit::note_hooked(hooked);
        if inserted {
            staged.written();
            return Ok(());
        }
        if with_events {
            // With its events the row is inserted or the statement fails.
            return Err(StoreError::msg("the new organization was not inserted"));
        }
        // An endpoint is enabled after all: the same again, with the events.
        with_events = true;
    }
}

#[async_trait]
impl OrganizationStore for PgStore {
    async fn insert_organization(&self, org: &Organization) -> StoreResult<()> {
        let (pool, org) = (self.pool.clone(), org.clone());
        detached(async move {
            if let Some(staged) = alone(&org) {
                return insert_org_alone(&pool, &org, &staged).await;
            }
            let mut tx = begin(&pool).await.map_err(map_err)?;
            let mut b = QueryBuilder::new(format!(
                "INSERT INTO organizations ({ORG_COLUMNS}) VALUES ("
            ));
            push_org_values(&mut b, &org);
            b.push(")");
            b.build().execute(&mut *tx).await.map_err(map_err)?;
            write_metadata(&mut tx, &org, false)
                .await
                .map_err(map_err)?;
            commit(tx).await
        })
        .await
    }

    async fn get_organization(&self, id: OrganizationId) -> StoreResult<Organization> {
        if let Some(org) = self.cache.org(id) {
            return Ok(org);
        }
        let generation = self.cache.org_generation();
        let org = self.get_organization_committed(id).await?;
        if let Some(g) = generation {
            self.cache.offer_org(&org, g);
        }
        Ok(org)
    }

    async fn get_organization_committed(&self, id: OrganizationId) -> StoreResult<Organization> {
        // Straight from the database: the cache's copy is dropped by the change's notice, which
        // can reach this node a moment after a client that saw the change's answer asks here.
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        org_from_row(&row).map_err(StoreError::other)
    }

    async fn update_organization(
        &self,
        org: &Organization,
        previous: &Organization,
    ) -> StoreResult<()> {
        self.update_org_and_email(org, previous, None).await
    }

    async fn update_organization_and_owner_email(
        &self,
        org: &Organization,
        previous: &Organization,
        owner_email: Option<(UserId, Email)>,
    ) -> StoreResult<()> {
        self.update_org_and_email(org, previous, owner_email).await
    }

    async fn list_organizations(&self, q: &OrganizationQuery) -> StoreResult<Vec<Organization>> {
        let mut b = QueryBuilder::new(format!(
            "SELECT {ORG_COLUMNS} FROM organizations o WHERE TRUE"
        ));
        match q.status {
            Some(StatusFilter::Deleted) => {
                b.push(" AND o.deleted_at IS NOT NULL");
            }
            Some(StatusFilter::Is(s)) => {
                b.push(" AND o.status = ").push_bind(s.as_str());
                // A deleted organization shows as "deleted", whatever it was before.
                b.push(" AND o.deleted_at IS NULL");
            }
            None if !q.include_deleted => {
                b.push(" AND o.deleted_at IS NULL");
            }
            None => {}
        }
        if let Some(t) = q.org_type {
            b.push(" AND o.org_type = ").push_bind(t.as_str());
        }
        if let Some(p) = q.parent_id {
            b.push(" AND o.parent_id = ").push_bind(p.0);
        }
        if let Some(e) = &q.external_account_id {
            search::external_account_filter(&mut b, e);
        }
        if let Some(text) = &q.q {
            search::search_filter(&mut b, text);
        }
        for (k, v) in &q.metadata {
            b.push(" AND o.id IN (SELECT organization_id FROM organization_metadata WHERE key = ");
            b.push_bind(k.clone())
                .push(" AND value = ")
                .push_bind(v.clone())
                .push(")");
        }
        if let Some(u) = q.member {
            b.push(" AND o.id IN (SELECT organization_id FROM members WHERE user_id = ")
                .push_bind(u.0)
                .push(")");
        }
        if let Some(only) = q.only {
            b.push(" AND o.id = ").push_bind(only.0);
        }
        if let Some(p) = q.partner {
            b.push(" AND (o.id = ")
                .push_bind(p.0)
                .push(" OR o.parent_id = ")
                .push_bind(p.0)
                .push(")");
        }
        if let Some(before) = q.before {
            b.push(" AND o.id < ").push_bind(before.0);
        }
        b.push(" ORDER BY o.id DESC LIMIT ")
            .push_bind(q.limit as i64);
        let rows = if q.q.is_some() {
            // The planner prices ILIKE at a fraction of its cost per row, so it reads the whole
            // search table (~70 ms at 100,000 organizations) where its trigram indexes answer
            // in ~10 ms (bench/README.md, session 19): for this statement, no sequential scan.
            let mut tx = begin(&self.pool).await.map_err(map_err)?;
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let rows = b.build().fetch_all(&mut *tx).await.map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            rows
        } else {
            b.build().fetch_all(&self.pool).await.map_err(map_err)?
        };
        rows.iter()
            .map(org_from_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::other)
    }

    async fn count_children(&self, id: OrganizationId) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE parent_id = $1")
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn purge_deleted(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<OrganizationId>> {
        let pool = self.pool.clone();
        let cache = self.cache.clone();
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT o.id FROM organizations o WHERE o.deleted_at IS NOT NULL \
                 AND o.deleted_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM organizations c WHERE c.parent_id = o.id) \
                 ORDER BY o.deleted_at LIMIT $2 FOR UPDATE OF o SKIP LOCKED",
            )
            .bind(before)
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            // One audit entry per organization removed, from the one staged for the purge.
            if let Some(s) = crate::audit::staged() {
                s.resolve_targets(ids.iter().map(Uuid::to_string).collect());
            }
            sqlx::query("DELETE FROM api_keys WHERE organization_id = ANY($1)")
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query("DELETE FROM organizations WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            for id in &ids {
                cache::notify(&mut tx, &format!("org:{id}"))
                    .await
                    .map_err(map_err)?;
            }
            if !ids.is_empty() {
                cache::notify(&mut tx, "key").await.map_err(map_err)?;
            }
            commit(tx).await?;
            Ok(ids.into_iter().map(OrganizationId).collect::<Vec<_>>())
        })
        .await
        .inspect(|ids| {
            for id in ids {
                cache.notice(&format!("org:{id}"));
            }
            if !ids.is_empty() {
                cache.notice("key");
            }
        })
    }
}

/// The common change, the organization's row alone, as one statement (one round trip, its own
/// transaction): the update, and the cache notice only if a row was updated.
async fn update_org_row(
    pool: &PgPool,
    org: &Organization,
    previous: &Organization,
) -> StoreResult<()> {
    let mut b = QueryBuilder::new("WITH u AS (UPDATE organizations SET ");
    {
        let mut sets = b.separated(", ");
        for (i, col) in ORG_COLUMNS.split(',').map(str::trim).enumerate().skip(1) {
            if column_differs(org, previous, i) {
                sets.push(format!("{col} = "));
                push_column(&mut sets, org, i);
            }
        }
    }
    b.push(" WHERE id = ").push_bind(org.id.0);
    b.push(" AND version = ").push_bind(previous.version);
    b.push(" RETURNING id) SELECT ");
    if strict_change(org, previous) {
        b.push("pg_notify(")
            .push_bind(cache::CHANNEL)
            .push(", ")
            .push_bind(cache::org_notice(org.id, org.version))
            .push(")");
    } else {
        b.push("id");
    }
    b.push(" FROM u");
    let rows = b.build().fetch_all(pool).await.map_err(map_err)?;
    if rows.is_empty() {
        let exists = sqlx::query("SELECT 1 FROM organizations WHERE id = $1")
            .bind(org.id.0)
            .fetch_optional(pool)
            .await
            .map_err(map_err)?;
        return Err(if exists.is_some() {
            StoreError::VersionMismatch
        } else {
            StoreError::NotFound
        });
    }
    Ok(())
}

/// Writes `org` over `previous`; whether the cache notice went with the commit (see
/// `AfterCommit::wrote`).
async fn update_org(
    pool: &PgPool,
    batcher: &batch::OrgBatcher,
    org: &Organization,
    previous: &Organization,
    owner_email: Option<(UserId, Email)>,
) -> StoreResult<Notified> {
    // A write under an Idempotency-Key marks its key in its own transaction: not batched, and
    // not a lone statement.
    let marked = crate::idempotency_mark::current().is_some();
    if !marked && owner_email.is_none() && batch::batchable(org, previous) {
        batcher.update(org.clone(), previous.clone()).await?;
        return Ok(Notified::AtCommit);
    }
    let notified = Notified::by_transaction(org, previous);
    // Audit entries go in a transaction with the change.
    let audited = crate::audit::staged().is_some();
    if !marked && !audited && org.metadata == previous.metadata && owner_email.is_none() {
        return update_org_row(pool, org, previous).await.map(|()| notified);
    }
    let mut tx = begin(pool).await.map_err(map_err)?;
    update_org_in_tx(&mut tx, org, previous).await?;
    if let Some((user, email)) = owner_email {
        sqlx::query("UPDATE users SET email = $2, updated_at = $3 WHERE id = $1")
            .bind(user.0)
            .bind(email.as_str())
            .bind(org.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    commit(tx).await?;
    Ok(notified)
}

/// Whether a write's cache notice was sent in its transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notified {
    AtCommit,
    No,
}

impl Notified {
    /// For a write through `update_org_row` or `update_org_in_tx`: they notify in the
    /// transaction for strict changes only.
    pub(crate) fn by_transaction(org: &Organization, previous: &Organization) -> Self {
        if strict_change(org, previous) {
            Notified::AtCommit
        } else {
            Notified::No
        }
    }
}

/// `update_organization` inside the caller's transaction: the row (if the stored version is
/// still `previous.version`, else `VersionMismatch` or `NotFound`), its metadata, and the cache
/// notice if the change is strict (delivered at commit). The caller commits, and then calls
/// `PgStore::wrote_org`, which sends any other notice.
async fn update_org_in_tx(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    org: &Organization,
    previous: &Organization,
) -> StoreResult<()> {
    // Only the columns that differ: an update that touches no indexed column stays in place (HOT).
    let mut b = QueryBuilder::new("UPDATE organizations SET ");
    {
        let mut sets = b.separated(", ");
        for (i, col) in ORG_COLUMNS.split(',').map(str::trim).enumerate().skip(1) {
            if column_differs(org, previous, i) {
                sets.push(format!("{col} = "));
                push_column(&mut sets, org, i);
            }
        }
    }
    b.push(" WHERE id = ").push_bind(org.id.0);
    b.push(" AND version = ").push_bind(previous.version);
    let done = b.build().execute(&mut **tx).await.map_err(map_err)?;
    if done.rows_affected() == 0 {
        let exists = sqlx::query("SELECT 1 FROM organizations WHERE id = $1")
            .bind(org.id.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
        return Err(if exists.is_some() {
            StoreError::VersionMismatch
        } else {
            StoreError::NotFound
        });
    }
    if org.metadata != previous.metadata {
        write_metadata(tx, org, true).await.map_err(map_err)?;
    }
    if strict_change(org, previous) {
        cache::notify(tx, &cache::org_notice(org.id, org.version))
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

const KEY_COLUMNS: &str =
    "id, name, kind, organization_id, roles, prefix, secret_hash, created_at, revoked_at";

fn key_from_row(r: &PgRow) -> Result<ApiKey, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    Ok(ApiKey {
        id: ApiKeyId(r.try_get("id")?),
        name: r.try_get("name")?,
        kind: KeyKind::parse(&kind).ok_or_else(|| bad("key kind", &kind))?,
        organization_id: r
            .try_get::<Option<Uuid>, _>("organization_id")?
            .map(OrganizationId),
        roles: r.try_get::<Json<Vec<i64>>, _>("roles")?.0,
        prefix: r.try_get("prefix")?,
        hash: SecretHash::from_stored(r.try_get("secret_hash")?),
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl PgStore {
    async fn update_org_and_email(
        &self,
        org: &Organization,
        previous: &Organization,
        owner_email: Option<(UserId, Email)>,
    ) -> StoreResult<()> {
        let (pool, next, prev) = (self.pool.clone(), org.clone(), previous.clone());
        let batcher = self.batcher.clone();
        let after = self.after_commit();
        detached(async move {
            let done = update_org(&pool, &batcher, &next, &prev, owner_email).await;
            match done {
                Ok(notified) => {
                    after.wrote(&next, notified);
                    Ok(())
                }
                // Found changed by someone else: the cached copy is stale.
                Err(e) => {
                    after.failed(next.id);
                    Err(e)
                }
            }
        })
        .await
    }

    async fn insert_key(&self, k: &ApiKey, bootstrap: bool) -> StoreResult<u64> {
        let sql = if bootstrap {
            "INSERT INTO api_keys (id, name, kind, organization_id, roles, prefix, secret_hash, \
             created_at, revoked_at, bootstrap) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, TRUE) \
             ON CONFLICT DO NOTHING"
        } else {
            "INSERT INTO api_keys (id, name, kind, organization_id, roles, prefix, secret_hash, \
             created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        };
        // In a transaction, so that a key made under an Idempotency-Key marks it (a second key
        // must not come of a retry whose first answer was lost).
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        let done = sqlx::query(sql)
            .bind(k.id.0)
            .bind(&k.name)
            .bind(k.kind.as_str())
            .bind(k.organization_id.map(|o| o.0))
            .bind(Json(&k.roles))
            .bind(&k.prefix)
            .bind(k.hash.as_str())
            .bind(k.created_at)
            .bind(k.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        commit(tx).await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.insert_key(key, false).await.map(|_| ())
    }

    async fn insert_bootstrap_key(&self, key: &ApiKey) -> StoreResult<bool> {
        self.insert_key(key, true).await.map(|n| n == 1)
    }

    async fn find_api_key(&self, hash: &SecretHash) -> StoreResult<Option<ApiKey>> {
        if let Some(key) = self.cache.key(hash.as_str()) {
            return Ok(Some(key));
        }
        let generation = self.cache.generation();
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1"
        ))
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let key = row
            .as_ref()
            .map(key_from_row)
            .transpose()
            .map_err(StoreError::other)?;
        if let (Some(k), Some(g)) = (&key, generation) {
            self.cache.offer_key(k, g);
        }
        Ok(key)
    }

    async fn get_api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        key_from_row(&row).map_err(StoreError::other)
    }

    async fn list_api_keys(&self, q: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        let mut b = QueryBuilder::new(format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE TRUE"));
        if let Some(k) = q.kind {
            b.push(" AND kind = ").push_bind(k.as_str());
        }
        if let Some(o) = q.organization_id {
            b.push(" AND organization_id = ").push_bind(o.0);
        }
        if !q.include_revoked {
            b.push(" AND revoked_at IS NULL");
        }
        b.push(" ORDER BY id");
        let rows = b.build().fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter()
            .map(key_from_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::other)
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<ApiKey> {
        let pool = self.pool.clone();
        let key = detached(async move { revoke_key(&pool, id, at).await }).await?;
        // This node at once; the others when the notice sent at commit arrives.
        self.cache.notice("key");
        Ok(key)
    }
}

async fn revoke_key(pool: &PgPool, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<ApiKey> {
    let mut tx = begin(pool).await.map_err(map_err)?;
    // Platform keys are revoked one at a time (the lock), so two concurrent revocations
    // cannot each see the other as the key that remains.
    sqlx::query("SELECT pg_advisory_xact_lock(7355608)")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.0)
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    let key = key_from_row(&row).map_err(StoreError::other)?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    if key.kind == KeyKind::Platform {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_keys WHERE kind = 'platform' \
                 AND revoked_at IS NULL AND id <> $1",
        )
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        key.check_revocable(others as u64)?;
    }
    sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    cache::notify(&mut tx, "key").await.map_err(map_err)?;
    commit(tx).await?;
    Ok(ApiKey {
        revoked_at: Some(at),
        ..key
    })
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn access_facts(&self, id: OrganizationId) -> StoreResult<crate::AccessFacts> {
        self.access.read(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::strict_change;
    use crate::memo::tests::org;
    use orgbase_domain::access_check::Standing;
    use orgbase_domain::{now, OrgStatus, OrganizationId};

    /// The access readers keep what they read until a notice names it, and a change sends its
    /// notice inside its transaction only if `strict_change` says so: a change of any field the
    /// check reads must.
    #[test]
    fn every_change_the_access_check_reads_is_strict() {
        type Change = fn(&mut orgbase_domain::Organization);
        // One change of each field of `Standing` (named here, so that a new field fails to
        // build until it has its change).
        let Standing {
            id: _,
            parent_id: _,
            status: _,
            status_reason: _,
            deleted: _,
            billing_overdue: _,
            sms: _,
            entitlements: _,
        } = Standing::of(&org(1));
        let changes: [(&str, Change); 9] = [
            ("parent", |o| o.parent_id = Some(OrganizationId::new())),
            ("status", |o| o.status = OrgStatus::Suspended),
            ("status reason", |o| o.status_reason = Some("fraud".into())),
            ("deletion", |o| o.deleted_at = Some(now())),
            ("billing", |o| o.billing_overdue = true),
            ("sms enabled", |o| o.sms.enabled = !o.sms.enabled),
            ("sms brand", |o| o.sms.brand_id = Some("B1".into())),
            ("sms campaign", |o| o.sms.campaign_id = Some("C1".into())),
            ("entitlements", |o| o.entitlements.push("fax".into())),
        ];
        let before = org(1);
        for (what, change) in changes {
            let mut after = before.clone();
            change(&mut after);
            assert_ne!(Standing::of(&after), Standing::of(&before), "{what}");
            assert!(strict_change(&after, &before), "{what}");
        }
        let mut renamed = before.clone();
        renamed.name = "Renamed".into();
        assert!(!strict_change(&renamed, &before), "a name decides nothing");
    }
}
