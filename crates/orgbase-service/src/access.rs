//! Who is calling, and what they may do. A surface turns a credential into a [`Principal`] with
//! [`authenticate`]; the use cases then ask for an [`OrgAccess`] (which carries the caller's
//! permissions on that organization) or a [`PlatformAdmin`], so an unchecked call does not
//! compile.
use orgbase_domain::people::{system_role, FIRST_CUSTOM_ROLE_ID, SESSION_PREFIX};
use orgbase_domain::{
    now, Actor, ActorType, ApiKeyId, KeyKind, Member, OrgStatus, Organization, OrganizationId,
    Permission, Permissions, SecretHash, UserId,
};
use uuid::Uuid;

use crate::{ServiceError, Services};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator, by a platform key: everything.
    Platform { key_id: ApiKeyId, label: String },
    /// A reseller, by a partner key: its partner organization and that partner's children.
    Partner {
        key_id: ApiKeyId,
        partner_id: OrganizationId,
        label: String,
        /// The partner itself is suspended: its key may read, not change, its children too.
        suspended: bool,
    },
    /// An integration of one organization, by an organization key, within its roles.
    OrgKey {
        key_id: ApiKeyId,
        organization_id: OrganizationId,
        roles: Vec<i64>,
        label: String,
    },
    /// A person, by a session token: each organization they are a member of, within their roles.
    User {
        user_id: UserId,
        session_id: Uuid,
        session_expires_at: chrono::DateTime<chrono::Utc>,
        /// The person's e-mail at sign-in.
        label: String,
    },
}

/// Proof that the caller is the platform operator, needed by `/api/admin/…` services.
#[derive(Debug, Clone)]
pub struct PlatformAdmin {
    pub key_id: ApiKeyId,
    /// The key's name.
    pub label: String,
}

impl PlatformAdmin {
    /// A label for logs and records: who acted.
    pub fn actor(&self) -> String {
        format!("key:{}", self.key_id)
    }

    /// Who acted, as the audit log records it.
    pub fn audit_actor(&self) -> Actor {
        Actor::new(
            ActorType::PlatformKey,
            self.key_id,
            Some(self.label.clone()),
        )
    }
}

/// Proof that the caller may reach one organization, with what they may do there.
#[derive(Debug)]
pub struct OrgAccess<'a> {
    pub principal: &'a Principal,
    pub org: Organization,
    pub permissions: Permissions,
    /// The caller's membership, when the caller is a person.
    pub member: Option<Member>,
}

impl OrgAccess<'_> {
    /// 403 unless the caller holds `p` here.
    pub fn require(&self, p: Permission) -> Result<(), ServiceError> {
        require(self.permissions, p)
    }

    pub fn is_platform(&self) -> bool {
        matches!(self.principal, Principal::Platform { .. })
    }

    /// The partner acting on one of its children (not on itself).
    pub fn is_parent_partner(&self) -> bool {
        matches!(self.principal, Principal::Partner { partner_id, .. }
            if self.org.parent_id == Some(*partner_id))
    }

    /// The owner, or those who stand above the owner: the platform, and the partner of a child.
    pub fn is_owner_or_platform(&self) -> bool {
        self.is_platform()
            || self.is_parent_partner()
            || self.member.as_ref().is_some_and(Member::is_owner)
    }

    /// 403 unless every permission of `granted` is the caller's own: nobody grants what they
    /// lack.
    pub fn may_grant(&self, granted: Permissions, field: &str) -> Result<(), ServiceError> {
        let missing = self.permissions.missing(granted);
        if missing.is_empty() {
            return Ok(());
        }
        Err(ServiceError::Forbidden(format!(
            "{field} would grant permissions you do not hold: {}",
            missing
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// A credential that is not one: unknown, malformed, or of a deleted partner.
pub const INVALID: ServiceError = ServiceError::Unauthorized {
    code: "invalid_credentials",
    detail: "the credential is not valid",
};
const REVOKED: ServiceError = ServiceError::Unauthorized {
    code: "revoked_credentials",
    detail: "the credential has been revoked",
};
const EXPIRED: ServiceError = ServiceError::Unauthorized {
    code: "expired_credentials",
    detail: "the session has expired; log in again",
};

/// What a suspended organization's own callers get for a change: they may read, not change;
/// the platform and the organization's partner still act. The one place this rule is decided
/// (in [`Principal::access`], which every use case on an organization passes through, and for
/// an invitation's acceptance, which joins the organization).
pub fn suspended(org: &Organization) -> ServiceError {
    ServiceError::Suspended(match &org.status_reason {
        Some(r) => format!("the organization is suspended ({r}): it may read, not change"),
        None => "the organization is suspended: it may read, not change".into(),
    })
}

/// The caller a token stands for: a session (`obs_…`) or a key.
pub async fn authenticate(state: &Services, token: &str) -> Result<Principal, ServiceError> {
    let hash = SecretHash::of(token);
    if token.starts_with(SESSION_PREFIX) {
        let (session, user) = state.store.find_session(&hash).await?.ok_or(INVALID)?;
        if session.revoked_at.is_some() {
            return Err(REVOKED);
        }
        if !session.is_valid_at(now()) {
            return Err(EXPIRED);
        }
        return Ok(Principal::User {
            user_id: session.user_id,
            session_id: session.id,
            session_expires_at: session.expires_at,
            label: user.email.as_str().to_owned(),
        });
    }
    let key = state.store.find_api_key(&hash).await?.ok_or(INVALID)?;
    if !key.is_active() {
        return Err(REVOKED);
    }
    match (key.kind, key.organization_id) {
        (KeyKind::Platform, _) => Ok(Principal::Platform {
            key_id: key.id,
            label: key.name,
        }),
        (KeyKind::Partner, Some(partner)) => {
            // A partner that was deleted acts for nobody, its children included.
            match state.store.get_organization(partner).await {
                Ok(p) if !p.is_deleted() => Ok(Principal::Partner {
                    key_id: key.id,
                    partner_id: partner,
                    label: key.name,
                    suspended: p.status == OrgStatus::Suspended,
                }),
                Ok(_) | Err(orgbase_store::StoreError::NotFound) => Err(INVALID),
                Err(e) => Err(e.into()),
            }
        }
        (KeyKind::Organization, Some(org)) => Ok(Principal::OrgKey {
            key_id: key.id,
            organization_id: org,
            roles: key.roles,
            label: key.name,
        }),
        // A partner or organization key without its organization cannot exist.
        _ => Err(INVALID),
    }
}

/// 403 unless `held` includes `p`.
pub fn require(held: Permissions, p: Permission) -> Result<(), ServiceError> {
    if held.has(p) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(format!(
            "this needs the {p} permission on the organization"
        )))
    }
}

/// The permissions a set of roles gives on an organization: system roles from the code, custom
/// roles from the organization's own (a role of another organization gives nothing).
pub async fn role_permissions(
    state: &Services,
    org: OrganizationId,
    roles: &[i64],
) -> Result<Permissions, ServiceError> {
    let mut ps = Permissions::NONE;
    for r in roles.iter().filter(|r| **r < FIRST_CUSTOM_ROLE_ID) {
        if let Some(role) = system_role(*r) {
            ps = ps.union(role.permissions);
        }
    }
    if roles.iter().any(|r| *r >= FIRST_CUSTOM_ROLE_ID) {
        for role in state.store.list_roles(org).await? {
            if roles.contains(&role.id) {
                ps = ps.union(role.permissions);
            }
        }
    }
    Ok(ps)
}

impl Principal {
    pub fn platform(&self) -> Result<PlatformAdmin, ServiceError> {
        match self {
            Principal::Platform { key_id, label } => Ok(PlatformAdmin {
                key_id: *key_id,
                label: label.clone(),
            }),
            _ => Err(ServiceError::Forbidden(
                "this needs a platform key".to_owned(),
            )),
        }
    }

    /// Soft-deleted organizations exist only for the platform.
    fn sees_deleted(&self) -> bool {
        matches!(self, Principal::Platform { .. })
    }

    /// The caller's permissions on the organization `id` (child of `parent_id`, deleted or
    /// not) and its membership there: [`Self::access`] without the organization itself (the
    /// access check reads no more of it than decides access). 404 outside reach.
    pub async fn reach(
        &self,
        state: &Services,
        id: OrganizationId,
        parent_id: Option<OrganizationId>,
        deleted: bool,
    ) -> Result<(Permissions, Option<Member>), ServiceError> {
        if deleted && !self.sees_deleted() {
            return Err(ServiceError::NotFound);
        }
        Ok(match self {
            Principal::Platform { .. } => (Permissions::all(), None),
            Principal::Partner { partner_id, .. } => {
                if id != *partner_id && parent_id != Some(*partner_id) {
                    return Err(ServiceError::NotFound);
                }
                (Permissions::all(), None)
            }
            Principal::OrgKey {
                organization_id,
                roles,
                ..
            } => {
                if *organization_id != id {
                    return Err(ServiceError::NotFound);
                }
                (role_permissions(state, id, roles).await?, None)
            }
            Principal::User { user_id, .. } => {
                let Some(m) = state.store.find_member(id, *user_id).await? else {
                    return Err(ServiceError::NotFound);
                };
                (role_permissions(state, id, &m.roles).await?, Some(m))
            }
        })
    }

    /// Access to an organization the caller may reach, with its permissions there; 404 outside
    /// its reach, never 403, so that nothing learns what exists beyond it.
    pub async fn access(
        &self,
        state: &Services,
        org: Organization,
    ) -> Result<OrgAccess<'_>, ServiceError> {
        let (permissions, member) = self
            .reach(state, org.id, org.parent_id, org.is_deleted())
            .await?;
        if crate::context::changes() {
            if org.status == OrgStatus::Suspended && self.is_own(&org) {
                return Err(suspended(&org));
            }
            self.may_change()?;
        }
        Ok(OrgAccess {
            principal: self,
            org,
            permissions,
            member,
        })
    }

    /// A suspended partner's key changes nothing, of its children either (nor makes new ones).
    pub fn may_change(&self) -> Result<(), ServiceError> {
        match self {
            Principal::Partner {
                suspended: true, ..
            } => Err(ServiceError::Suspended(
                "the partner organization is suspended: its key may read, not change".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller is the organization's own (one of its keys, a partner key of the
    /// partner itself, a member), rather than one above it (the platform, its partner).
    /// Reached through [`Self::access`], a person is a member.
    fn is_own(&self, org: &Organization) -> bool {
        match self {
            Principal::Platform { .. } => false,
            Principal::Partner { partner_id, .. } => org.id == *partner_id,
            Principal::OrgKey { .. } | Principal::User { .. } => true,
        }
    }

    /// The person behind the call, if it is a person.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Principal::User { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }

    /// Who acted, as the audit log records it.
    pub fn audit_actor(&self) -> Actor {
        match self {
            Principal::Platform { key_id, label } => {
                Actor::new(ActorType::PlatformKey, key_id, Some(label.clone()))
            }
            Principal::Partner { key_id, label, .. } => {
                Actor::new(ActorType::PartnerKey, key_id, Some(label.clone()))
            }
            Principal::OrgKey { key_id, label, .. } => {
                Actor::new(ActorType::OrganizationKey, key_id, Some(label.clone()))
            }
            Principal::User { user_id, label, .. } => {
                Actor::new(ActorType::User, user_id, Some(label.clone()))
            }
        }
    }

    /// A label for logs and records: who acted.
    pub fn actor(&self) -> String {
        match self {
            Principal::Platform { key_id, .. }
            | Principal::Partner { key_id, .. }
            | Principal::OrgKey { key_id, .. } => format!("key:{key_id}"),
            Principal::User { user_id, .. } => format!("user:{user_id}"),
        }
    }
}
