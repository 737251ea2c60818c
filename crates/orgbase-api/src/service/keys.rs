//! API keys the platform manages: platform keys, and partner keys for partner organizations.
use orgbase_domain::credential::API_KEY_PREFIX;
use orgbase_domain::{now, ApiKey, ApiKeyId, KeyKind, NewSecret, OrgType, OrganizationId};
use orgbase_store::{KeyQuery, StoreError};

use crate::auth::PlatformAdmin;
use crate::error::ApiError;
use crate::AppState;

/// A new platform key and its secret, not yet stored (the command line stores it itself).
pub fn new_platform_key(name: String) -> (ApiKey, String) {
    let secret = NewSecret::generate(API_KEY_PREFIX);
    (ApiKey::new_platform(name, &secret), secret.plain)
}

/// Why an organization cannot hold a partner key, if it cannot.
pub async fn partner_refusal(
    state: &AppState,
    _admin: &PlatformAdmin,
    org: OrganizationId,
) -> Result<Option<&'static str>, ApiError> {
    Ok(match state.store.get_organization(org).await {
        Ok(o) if !o.is_deleted() && o.org_type == OrgType::Partner => None,
        Ok(o) if !o.is_deleted() => Some("the organization is not of type partner"),
        Ok(_) | Err(StoreError::NotFound) => Some("no such organization"),
        Err(e) => return Err(e.into()),
    })
}

/// Makes and stores a key: a platform key, or (with `partner`) a partner key acting on that
/// partner and its children. Answers it with its secret, shown once.
pub async fn create(
    state: &AppState,
    admin: &PlatformAdmin,
    name: String,
    partner: Option<OrganizationId>,
) -> Result<(ApiKey, String), ApiError> {
    let (mut key, plain) = new_platform_key(name);
    if let Some(org) = partner {
        key.kind = KeyKind::Partner;
        key.organization_id = Some(org);
    }
    state.store.insert_api_key(&key).await?;
    tracing::info!(key_id = %key.id, kind = key.kind.as_str(), actor = %admin.actor(), "key created");
    Ok((key, plain))
}

/// The keys `q` asks for, without their secrets.
pub async fn list(
    state: &AppState,
    _admin: &PlatformAdmin,
    q: &KeyQuery,
) -> Result<Vec<ApiKey>, ApiError> {
    Ok(state.store.list_api_keys(q).await?)
}

/// Revokes a key at once. The last active platform key cannot be revoked.
pub async fn revoke(
    state: &AppState,
    admin: &PlatformAdmin,
    id: ApiKeyId,
) -> Result<ApiKey, ApiError> {
    let key = state.store.revoke_api_key(id, now()).await?;
    tracing::info!(key_id = %key.id, actor = %admin.actor(), "key revoked");
    Ok(key)
}
