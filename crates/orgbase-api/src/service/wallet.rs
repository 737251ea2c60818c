//! The wallet: its balance, and entries appended to its ledger.
use orgbase_domain::wallet::{Entry, EntryKind, NewEntry, Wallet};
use orgbase_domain::{Organization, Permission, Target};
use orgbase_store::{Appended, StoreError};

use super::audit;
use crate::auth::{OrgAccess, PlatformAdmin};
use crate::error::ApiError;
use crate::AppState;

/// The organization's wallet; one never used is empty, in its plan's currency.
pub async fn get(state: &AppState, access: &OrgAccess<'_>) -> Result<Wallet, ApiError> {
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
    state: &AppState,
    access: &OrgAccess<'_>,
    before: Option<uuid::Uuid>,
    limit: u32,
) -> Result<Vec<Entry>, ApiError> {
    access.require(Permission::WalletRead)?;
    Ok(state
        .store
        .list_entries(access.org.id, before, limit)
        .await?)
}

/// The currency of a wallet made now: its plan's.
pub async fn currency_for(state: &AppState, org: &Organization) -> Result<String, ApiError> {
    match state.store.get_plan(&org.product_plan_id).await {
        Ok(p) => Ok(p.currency),
        Err(StoreError::NotFound) => Ok("USD".into()),
        Err(e) => Err(e.into()),
    }
}

/// Appends an entry for the platform; a replay of the same Idempotency-Key answers as the first
/// time did, and another request under that key is a 422.
pub async fn append(
    state: &AppState,
    admin: &PlatformAdmin,
    entry: NewEntry,
) -> Result<Entry, ApiError> {
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
        Ok(Appended::Existing(_)) => Err(ApiError::field(
            "Idempotency-Key",
            "idempotency_key_reused",
            "this key was used for another request; use a new key for a new request",
        )),
        Err(StoreError::Conflict {
            constraint: "insufficient_funds",
        }) => Err(ApiError::PaymentRequired {
            code: "insufficient_funds",
            detail: "the wallet's balance does not cover this charge".into(),
        }),
        Err(e) => Err(e.into()),
    }
}
