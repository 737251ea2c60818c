//! The wallet: its balance, and entries appended to its ledger.
use orgbase_domain::wallet::{Entry, EntryKind, NewEntry, Wallet};
use orgbase_domain::{now, Organization, OrganizationId, Permission, Target};
use orgbase_store::{Appended, StoreError};
use uuid::Uuid;

use super::audit;
use crate::access::{OrgAccess, PlatformAdmin, Principal};
use crate::{ServiceError, Services};

/// The organization whose wallet `who` would charge or credit: within reach, and not deleted
/// (a deleted organization's wallet does not change until it is restored).
pub async fn target(
    state: &Services,
    who: &Principal,
    id: OrganizationId,
) -> Result<Organization, ServiceError> {
    let org = crate::organizations::load(state, who, id).await?.org;
    if org.is_deleted() {
        return Err(ServiceError::Conflict {
            code: "organization_deleted",
            detail: "a deleted organization's wallet cannot change; restore it first".into(),
        });
    }
    Ok(org)
}

/// A ledger entry made by `who` now, without service or SMS points.
pub fn new_entry(
    who: &Principal,
    org: &Organization,
    kind: EntryKind,
    amount: i64,
    reason: Option<String>,
    idempotency_key: Option<String>,
    currency: String,
) -> NewEntry {
    NewEntry {
        id: Uuid::now_v7(),
        organization_id: org.id,
        kind,
        service: None,
        amount,
        sms_points: 0,
        reason,
        actor: who.actor(),
        idempotency_key,
        currency,
        created_at: now(),
    }
}

/// The organization's wallet; one never used is empty, in its plan's currency.
pub async fn get(state: &Services, access: &OrgAccess<'_>) -> Result<Wallet, ServiceError> {
    access.require(Permission::WalletRead)?;
    Ok(match state.store.get_wallet(access.org.id).await? {
        Some(w) => w,
        None => Wallet {
            organization_id: access.org.id,
            balance: 0,
            sms_points: 0,
            currency: currency_for(state, &access.org).await?,
            updated_at: None,
        },
    })
}

/// The ledger, newest first: up to `limit` entries older than `before`.
pub async fn entries(
    state: &Services,
    access: &OrgAccess<'_>,
    before: Option<uuid::Uuid>,
    limit: u32,
) -> Result<Vec<Entry>, ServiceError> {
    access.require(Permission::WalletRead)?;
    Ok(state
        .store
        .list_entries(access.org.id, before, limit)
        .await?)
}

/// The currency of a wallet made now: its plan's.
pub async fn currency_for(state: &Services, org: &Organization) -> Result<String, ServiceError> {
    match state.store.get_plan(&org.product_plan_id).await {
        Ok(p) => Ok(p.currency),
        Err(StoreError::NotFound) => Ok("USD".into()),
        Err(e) => Err(e.into()),
    }
}

/// Appends an entry for the platform; a replay of the same Idempotency-Key answers as the first
/// time did, and another request under that key is a 422.
pub async fn append(
    state: &Services,
    admin: &PlatformAdmin,
    entry: NewEntry,
) -> Result<Entry, ServiceError> {
    let action = match entry.kind {
        EntryKind::Charge => "wallet.charged",
        EntryKind::Credit => "wallet.credited",
    };
    let record = audit::entry(
        admin.audit_actor(),
        Some(entry.organization_id),
        action,
        Target::new("wallet_entry", entry.id),
    )
    .diff(None, Some(&entry));
    match audit::record(vec![record], state.store.append_entry(&entry)).await {
        Ok(Appended::New(e)) => Ok(e),
        Ok(Appended::Existing(e)) if entry.same_as(&e) => Ok(e),
        Ok(Appended::Existing(_)) => Err(ServiceError::field(
            "Idempotency-Key",
            "idempotency_key_reused",
            "this key was used for another request; use a new key for a new request",
        )),
        Err(StoreError::Conflict {
            constraint: "insufficient_funds",
        }) => Err(ServiceError::PaymentRequired {
            code: "insufficient_funds",
            detail: "the wallet's balance does not cover this charge".into(),
        }),
        Err(e) => Err(e.into()),
    }
}
