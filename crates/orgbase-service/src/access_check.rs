//! The access check through the service: the organization within the caller's reach (with
//! `org:read`), its effective entitlements and its wallet, judged by
//! `orgbase_domain::access_check`. What is judged is read as committed ([`Store::access_facts`]),
//! not from the node's caches: on several PostgreSQL nodes a change reaches the other nodes'
//! caches a moment after its commit, and a check must never answer from before a change its
//! caller has seen.
//!
//! [`Store::access_facts`]: orgbase_store::Store::access_facts
use chrono::{DateTime, Utc};
use orgbase_domain::access_check::{reasons, Channel, Reason};
use orgbase_domain::{now, OrganizationId, Permission};
use orgbase_store::AccessFacts;

use crate::access::{require, Principal};
use crate::{ServiceError, Services};

/// The most pairs one batch may check.
pub const BATCH_MAX: usize = 100;

/// What the check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub organization_id: OrganizationId,
    pub channel: Channel,
    /// Every reason the channel is refused; none: allowed.
    pub reasons: Vec<Reason>,
    pub checked_at: DateTime<Utc>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// May the organization `id` handle `channel` now? 404 outside the caller's reach, 403 without
/// `org:read` there.
pub async fn check(
    state: &Services,
    who: &Principal,
    id: OrganizationId,
    channel: Channel,
) -> Result<Verdict, ServiceError> {
    // Reach and verdict both judged on the organization as committed now: a change made
    // through another node a moment ago counts.
    let AccessFacts {
        standing: org,
        funds,
        plan_entitlements,
    } = state.store.access_facts(id).await?;
    let (permissions, _) = who.reach(state, org.id, org.parent_id, org.deleted).await?;
    require(permissions, Permission::OrgRead)?;
    let entitlements = org.entitlements_with(plan_entitlements.as_deref().unwrap_or_default());
    Ok(Verdict {
        organization_id: org.id,
        channel,
        reasons: reasons(&org, &entitlements, funds, channel),
        checked_at: now(),
    })
}

/// [`check`] for each pair, in order, side by side. A pair outside reach (or without
/// `org:read`) is answered with its own error; a failure of storage fails the whole batch.
pub async fn check_many(
    state: &Services,
    who: &Principal,
    pairs: &[(OrganizationId, Channel)],
) -> Result<Vec<Result<Verdict, ServiceError>>, ServiceError> {
    let answers =
        futures::future::join_all(pairs.iter().map(|(id, c)| check(state, who, *id, *c))).await;
    answers
        .into_iter()
        .map(|a| match a {
            Err(e @ (ServiceError::NotFound | ServiceError::Forbidden(_))) => Ok(Err(e)),
            Err(e) => Err(e),
            ok => Ok(ok),
        })
        .collect()
}
