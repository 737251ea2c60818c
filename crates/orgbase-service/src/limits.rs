//! Rate limits: which bucket a request counts against, and how big that bucket is. The limiter
//! itself (GCRA, in memory or in Redis) is `orgbase_limits`; the HTTP layer asks here before a
//! request reaches its handler, so a refused request changes nothing and writes no audit entry.
//!
//! - An organization key, and a person's session acting in an organization they belong to,
//!   count against that organization's limit.
//! - A partner key counts against the partner organization's limit, whichever child it acts on.
//! - A platform key counts against its own limit, `ORGBASE_PLATFORM_RATE_LIMIT` (none by
//!   default).
//! - A session outside any organization (`/api/auth/me`, say) and an unauthenticated request count
//!   against nothing here; logins have their own throttle ([`crate::sessions::login`]).
use orgbase_domain::{OrganizationId, SecretHash};
use orgbase_limits::{Decision, Quota};

use crate::access::Principal;
use crate::organizations::plan_terms;
use crate::{ServiceError, Services};

/// The bucket one request counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The policy's name in the `RateLimit-Policy` and `RateLimit` headers.
    pub policy: &'static str,
    /// The limiter's key.
    pub key: String,
    pub quota: Quota,
}

/// Failed logins per account: 5 in a row, then one more every 3 minutes.
pub fn login_account_quota() -> Quota {
    Quota::per_window(5, std::time::Duration::from_secs(15 * 60))
}

/// Failed logins per client address: 20 in a row, then one more every 3 seconds.
pub fn login_address_quota() -> Quota {
    Quota::per_window(20, std::time::Duration::from_secs(60))
}

/// The limiter key of an account's failed logins (the e-mail hashed: no address in Redis).
pub fn login_account_key(email: &str) -> String {
    format!("login:account:{}", SecretHash::of(email).as_str())
}

/// The limiter key of a client address's failed logins.
pub fn login_address_key(address: &str) -> String {
    format!("login:address:{address}")
}

/// The bucket `who`'s request counts against; `path_org` is the organization the request's
/// path names, if any (where a person's session acts). `None`: it counts against nothing.
pub async fn bucket(
    state: &Services,
    who: &Principal,
    path_org: Option<OrganizationId>,
) -> Result<Option<Bucket>, ServiceError> {
    let org = match who {
        Principal::Platform { key_id, .. } => {
            return Ok(state.config.platform_rate_limit.map(|n| Bucket {
                policy: "platform",
                key: format!("platform:{key_id}"),
                quota: Quota::per_second(n),
            }))
        }
        Principal::Partner { partner_id, .. } => *partner_id,
        Principal::OrgKey {
            organization_id, ..
        } => *organization_id,
        Principal::User { user_id, .. } => {
            let Some(org) = path_org else {
                return Ok(None);
            };
            // Only a member acts in it (anyone else gets 404 from the route): a stranger's
            // requests must not spend an organization's budget.
            if state.store.find_member(org, *user_id).await?.is_none() {
                return Ok(None);
            }
            org
        }
    };
    let o = match state.store.get_organization(org).await {
        Ok(o) if !o.is_deleted() => o,
        Ok(_) | Err(orgbase_store::StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let plan = plan_terms(state, &o.product_plan_id).await?;
    let per_second = o.rate_limit_with(plan.rate_limit).per_second;
    Ok(Some(Bucket {
        policy: "organization",
        key: format!("org:{org}"),
        quota: Quota::per_second(per_second.max(1) as u32),
    }))
}

/// Counts `who`'s request against its bucket, when rate limits are on and it has one: the
/// bucket, and whether the request may go on.
pub async fn take(
    state: &Services,
    who: &Principal,
    path_org: Option<OrganizationId>,
) -> Result<Option<(Bucket, Decision)>, ServiceError> {
    if !state.config.rate_limits {
        return Ok(None);
    }
    let Some(bucket) = bucket(state, who, path_org).await? else {
        return Ok(None);
    };
    let decision = state.limiter.take(&bucket.key, bucket.quota).await;
    Ok(Some((bucket, decision)))
}
