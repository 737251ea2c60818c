//! API keys: platform keys and partner keys, which the platform manages, and an organization's
//! own keys.
use orgbase_domain::credential::API_KEY_PREFIX;
use orgbase_domain::{
    now, Actor, ApiKey, ApiKeyId, KeyKind, NewSecret, OrgType, OrganizationId, Permission,
    Permissions, Target,
};
use orgbase_store::{DynStore, KeyQuery, StoreError};

use super::audit;
use crate::access::{role_permissions, OrgAccess, PlatformAdmin};
use crate::{ServiceError, Services};

/// A new platform key and its secret, not yet stored.
pub fn new_platform_key(name: String) -> (ApiKey, String) {
    let secret = NewSecret::generate(API_KEY_PREFIX);
    (ApiKey::new_platform(name, &secret), secret.plain)
}

/// Why an organization cannot hold a partner key, if it cannot.
pub async fn partner_refusal(
    state: &Services,
    _admin: &PlatformAdmin,
    org: OrganizationId,
) -> Result<Option<&'static str>, ServiceError> {
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
    state: &Services,
    admin: &PlatformAdmin,
    name: String,
    partner: Option<OrganizationId>,
) -> Result<(ApiKey, String), ServiceError> {
    let (key, plain) = insert(&state.store, admin.audit_actor(), name, partner).await?;
    tracing::info!(key_id = %key.id, kind = key.kind.as_str(), actor = %admin.actor(), "key created");
    Ok((key, plain))
}

async fn insert(
    store: &DynStore,
    actor: Actor,
    name: String,
    partner: Option<OrganizationId>,
) -> Result<(ApiKey, String), ServiceError> {
    let (mut key, plain) = new_platform_key(name);
    if let Some(org) = partner {
        key.kind = KeyKind::Partner;
        key.organization_id = Some(org);
    }
    let entry = audit::entry(
        actor,
        key.organization_id,
        "api_key.created",
        Target::new("api_key", key.id),
    )
    .diff(None, Some(&key));
    audit::record(vec![entry], store.insert_api_key(&key)).await?;
    Ok((key, plain))
}

/// The keys `q` asks for, without their secrets.
pub async fn list(
    state: &Services,
    _admin: &PlatformAdmin,
    q: &KeyQuery,
) -> Result<Vec<ApiKey>, ServiceError> {
    Ok(state.store.list_api_keys(q).await?)
}

/// Revokes a key at once. The last active platform key cannot be revoked.
pub async fn revoke(
    state: &Services,
    admin: &PlatformAdmin,
    id: ApiKeyId,
) -> Result<ApiKey, ServiceError> {
    let key = revoke_as(&state.store, admin.audit_actor(), id).await?;
    tracing::info!(key_id = %key.id, actor = %admin.actor(), "key revoked");
    Ok(key)
}

async fn revoke_as(store: &DynStore, actor: Actor, id: ApiKeyId) -> Result<ApiKey, ServiceError> {
    let before = store.get_api_key(id).await?;
    if before.revoked_at.is_some() {
        return Ok(before);
    }
    let at = now();
    let after = ApiKey {
        revoked_at: Some(at),
        ..before.clone()
    };
    let entry = audit::entry(
        actor,
        before.organization_id,
        "api_key.revoked",
        Target::new("api_key", id),
    )
    .diff(Some(&before), Some(&after));
    Ok(audit::record(vec![entry], store.revoke_api_key(id, at)).await?)
}

/// The operator at the command line (`orgbase keys …`), with the database at hand: the audit
/// log records them as the system's `command_line`.
pub mod command_line {
    use super::*;

    fn actor() -> Actor {
        Actor::system("command_line")
    }

    /// Makes and stores a platform key; answers it with its secret, shown once.
    pub async fn create(store: &DynStore, name: String) -> Result<(ApiKey, String), ServiceError> {
        insert(store, actor(), name, None).await
    }

    /// The platform and partner keys, revoked ones included, oldest first.
    pub async fn list(store: &DynStore) -> Result<Vec<ApiKey>, ServiceError> {
        let mut keys = Vec::new();
        for kind in [KeyKind::Platform, KeyKind::Partner] {
            keys.extend(
                store
                    .list_api_keys(&KeyQuery {
                        kind: Some(kind),
                        include_revoked: true,
                        ..Default::default()
                    })
                    .await?,
            );
        }
        keys.sort_by_key(|k| (k.created_at, k.id.0));
        Ok(keys)
    }

    /// Revokes a platform or partner key (not the last active platform key).
    pub async fn revoke(store: &DynStore, id: ApiKeyId) -> Result<ApiKey, ServiceError> {
        match store.get_api_key(id).await? {
            k if k.kind == KeyKind::Organization => Err(ServiceError::NotFound),
            _ => revoke_as(store, actor(), id).await,
        }
    }
}

/// Makes an organization's own key with `roles`: nobody grants what they lack, and a key of
/// partner scope (acting on the partner and every child with every permission) only who holds
/// every permission here may make. Answers it with its secret, shown once.
pub async fn create_org_key(
    state: &Services,
    access: &OrgAccess<'_>,
    name: String,
    roles: Vec<i64>,
    kind: KeyKind,
) -> Result<(ApiKey, String), ServiceError> {
    access.require(Permission::KeysManage)?;
    let org = access.org.id;
    access.may_grant(role_permissions(state, org, &roles).await?, "roles")?;
    if kind == KeyKind::Partner {
        access.may_grant(Permissions::all(), "scope partner")?;
    }
    let secret = NewSecret::generate(API_KEY_PREFIX);
    let key = ApiKey {
        id: ApiKeyId::new(),
        name,
        kind,
        organization_id: Some(org),
        roles,
        prefix: secret.prefix.clone(),
        hash: secret.hash.clone(),
        created_at: now(),
        revoked_at: None,
    };
    let entry = audit::on_org(access, "api_key.created", Target::new("api_key", key.id))
        .diff(None, Some(&key));
    audit::record(vec![entry], state.store.insert_api_key(&key)).await?;
    tracing::info!(organization_id = %org, key_id = %key.id, actor = %access.principal.actor(), "organization key created");
    Ok((key, secret.plain))
}

/// The organization's own keys (`q` names it), without their secrets.
pub async fn list_org_keys(
    state: &Services,
    access: &OrgAccess<'_>,
    include_revoked: bool,
) -> Result<Vec<ApiKey>, ServiceError> {
    access.require(Permission::KeysManage)?;
    let q = KeyQuery {
        organization_id: Some(access.org.id),
        include_revoked,
        ..Default::default()
    };
    Ok(state.store.list_api_keys(&q).await?)
}

/// Revokes one of the organization's own keys; another's is a 404.
pub async fn revoke_org_key(
    state: &Services,
    access: &OrgAccess<'_>,
    id: ApiKeyId,
) -> Result<(), ServiceError> {
    access.require(Permission::KeysManage)?;
    let key = state.store.get_api_key(id).await?;
    if key.organization_id != Some(access.org.id) {
        return Err(ServiceError::NotFound);
    }
    if key.revoked_at.is_some() {
        return Ok(());
    }
    let at = now();
    let after = ApiKey {
        revoked_at: Some(at),
        ..key.clone()
    };
    let entry = audit::on_org(access, "api_key.revoked", Target::new("api_key", key.id))
        .diff(Some(&key), Some(&after));
    audit::record(vec![entry], state.store.revoke_api_key(key.id, at)).await?;
    tracing::info!(organization_id = %access.org.id, key_id = %key.id, actor = %access.principal.actor(), "organization key revoked");
    Ok(())
}
