//! People: users, their sessions, their membership of organizations, the roles that say what a
//! member may do, workspaces, and invitations.
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::credential::SecretHash;
use crate::ids::{OrganizationId, UserId};
use crate::validation::{has_control, trim_pattern_space};
use crate::FieldError;

/// Prefix of a session token.
pub const SESSION_PREFIX: &str = "obs_";
/// Prefix of an invitation token (travels only by e-mail).
pub const INVITE_PREFIX: &str = "obi_";
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;

/// An e-mail address, trimmed and lower-cased: the same person however they type it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// A practical check (RFC 5321 lengths, one `@`, a dotted domain, no spaces or controls),
    /// not the full RFC 5322 grammar that no mail system accepts in practice.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let e = trim_pattern_space(raw).to_lowercase();
        let bad = |m: &str| Err(FieldError::new(field, "invalid_email", m));
        if e.is_empty() {
            return Err(FieldError::new(field, "required", "must not be empty"));
        }
        if e.len() > 254 {
            return bad("must be at most 254 characters");
        }
        let Some((local, domain)) = e.rsplit_once('@') else {
            return bad("must be an e-mail address");
        };
        let domain_ok = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c));
        if !domain_ok || !local_ok {
            return bad("must be an e-mail address");
        }
        Ok(Self(e))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Wraps an address read back from storage (checked when it was written).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's display name: at most 100 characters as sent, at least one after trimming, no
/// control characters.
pub fn parse_person_name(field: &str, raw: &str) -> Result<String, FieldError> {
    let n = trim_pattern_space(raw);
    if n.is_empty() {
        return Err(FieldError::new(field, "required", "must not be empty"));
    }
    if raw.chars().count() > 100 {
        return Err(FieldError::new(
            field,
            "too_long",
            "must be at most 100 characters",
        ));
    }
    if has_control(n) {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            "must not contain control characters",
        ));
    }
    Ok(n.to_owned())
}

/// A new password: 8–128 characters (counted as characters, not bytes), taken as typed.
pub fn check_password(field: &str, raw: &str) -> Result<(), FieldError> {
    let n = raw.chars().count();
    if n < PASSWORD_MIN {
        return Err(FieldError::new(
            field,
            "too_short",
            format!("must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if n > PASSWORD_MAX {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("must be at most {PASSWORD_MAX} characters"),
        ));
    }
    Ok(())
}

/// A person. `password_hash` is an argon2id PHC string; `None` until the person sets one (an
/// owner named by the platform who has not accepted the invitation yet).
#[derive(Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("has_password", &self.password_hash.is_some())
            .finish_non_exhaustive()
    }
}

/// A login session. The token is kept only as its hash.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub user_id: UserId,
    pub hash: SecretHash,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    pub fn is_valid_at(&self, t: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && t < self.expires_at
    }
}

macro_rules! permissions {
    ($($variant:ident = $bit:expr, $name:literal;)*) => {
        /// One thing a role may allow. The catalogue is fixed; custom roles pick from it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission { $($variant),* }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Permission::$variant),)* _ => None }
            }
            fn bit(self) -> u32 {
                match self { $(Permission::$variant => 1 << $bit),* }
            }
        }
    };
}

permissions! {
    OrgRead = 0, "org:read";
    OrgUpdate = 1, "org:update";
    MembersRead = 2, "members:read";
    MembersManage = 3, "members:manage";
    InvitationsManage = 4, "invitations:manage";
    WorkspacesManage = 5, "workspaces:manage";
    RolesManage = 6, "roles:manage";
    WalletRead = 7, "wallet:read";
    BillingManage = 8, "billing:manage";
    KeysManage = 9, "keys:manage";
    WebhooksManage = 10, "webhooks:manage";
    AuditRead = 11, "audit:read";
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Permissions(u32);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);
    pub fn all() -> Self {
        Self::of(Permission::ALL)
    }
    pub fn of(ps: &[Permission]) -> Self {
        Self(ps.iter().fold(0, |acc, p| acc | p.bit()))
    }
    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    /// Whether every permission of `other` is also in `self`.
    pub fn covers(self, other: Self) -> bool {
        other.0 & !self.0 == 0
    }
    /// The permissions of `other` missing from `self`.
    pub fn missing(self, other: Self) -> Vec<Permission> {
        other.iter().filter(|p| !self.has(*p)).collect()
    }
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.has(*p))
    }
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

pub const ROLE_OWNER: i64 = 1;
pub const ROLE_ADMIN: i64 = 2;
pub const ROLE_MEMBER: i64 = 3;
pub const ROLE_BILLING: i64 = 4;
pub const ROLE_VIEWER: i64 = 5;
/// Custom roles are numbered from here; below it the ids are the system's.
pub const FIRST_CUSTOM_ROLE_ID: i64 = 100;

/// A role: a system role (ids 1–5, the same in every deployment) or an organization's own.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub id: i64,
    /// `None` for system roles.
    pub organization_id: Option<OrganizationId>,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Permissions,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Role {
    pub fn is_system(&self) -> bool {
        self.organization_id.is_none()
    }
}

/// The system roles: owner and admin hold everything (what only the owner may do, such as
/// handing over ownership, is tied to being the owner, not to a permission).
pub fn system_roles() -> Vec<Role> {
    use Permission::*;
    let role = |id, name: &str, description: &str, ps: Permissions| Role {
        id,
        organization_id: None,
        name: name.into(),
        description: Some(description.into()),
        permissions: ps,
        created_at: None,
        updated_at: None,
    };
    vec![
        role(
            ROLE_OWNER,
            "owner",
            "Owns the organization: every permission, and the only one who can hand it over",
            Permissions::all(),
        ),
        role(ROLE_ADMIN, "admin", "Every permission", Permissions::all()),
        role(
            ROLE_MEMBER,
            "member",
            "Sees the organization and its members",
            Permissions::of(&[OrgRead, MembersRead]),
        ),
        role(
            ROLE_BILLING,
            "billing",
            "Manages plans, billing and the wallet",
            Permissions::of(&[OrgRead, WalletRead, BillingManage]),
        ),
        role(
            ROLE_VIEWER,
            "viewer",
            "Reads the organization, its members and its wallet; changes nothing",
            Permissions::of(&[OrgRead, MembersRead, WalletRead]),
        ),
    ]
}

pub fn system_role(id: i64) -> Option<Role> {
    system_roles().into_iter().find(|r| r.id == id)
}

/// A role name: 1–50 characters, no control characters.
pub fn parse_role_name(field: &str, raw: &str) -> Result<String, FieldError> {
    let n = trim_pattern_space(raw);
    if n.is_empty() {
        return Err(FieldError::new(field, "required", "must not be empty"));
    }
    if raw.chars().count() > 50 {
        return Err(FieldError::new(
            field,
            "too_long",
            "must be at most 50 characters",
        ));
    }
    if has_control(n) {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            "must not contain control characters",
        ));
    }
    Ok(n.to_owned())
}

/// A description: up to 500 characters.
pub fn parse_description(field: &str, raw: &str) -> Result<String, FieldError> {
    let d = trim_pattern_space(raw);
    if d.chars().count() > 500 {
        return Err(FieldError::new(
            field,
            "too_long",
            "must be at most 500 characters",
        ));
    }
    Ok(d.to_owned())
}

/// Permission names from a request: each must be in the catalogue.
pub fn parse_permissions(field: &str, raw: &[String]) -> Result<Permissions, FieldError> {
    let mut ps = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        match Permission::parse(s) {
            Some(p) => ps.push(p),
            None => {
                return Err(FieldError::new(
                    format!("{field}[{i}]"),
                    "unknown_permission",
                    format!(
                        "{s:?} is not a permission; the catalogue: {}",
                        Permission::ALL
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        }
    }
    Ok(Permissions::of(&ps))
}

/// A workspace of an organization: a group its members can be placed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: Uuid,
    pub organization_id: OrganizationId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A person's membership of an organization. Member ids are integers, as in the source API.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: i64,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    /// The person's name and e-mail, read with the membership.
    pub name: String,
    pub email: Email,
    pub roles: Vec<i64>,
    pub workspaces: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Member {
    pub fn is_owner(&self) -> bool {
        self.roles.contains(&ROLE_OWNER)
    }
}

/// An invitation to join an organization. The token is kept only as its hash.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: Uuid,
    pub organization_id: OrganizationId,
    pub email: Email,
    pub name: Option<String>,
    pub roles: Vec<i64>,
    pub hash: SecretHash,
    /// Who invited: `user:<id>` or `key:<id>`.
    pub invited_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// How many times it was sent (1 at first, +1 per resend).
    pub sends: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

impl Invitation {
    pub fn state_at(&self, t: DateTime<Utc>) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if t >= self.expires_at {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }
}

/// The default lifetime of an invitation.
pub fn default_invitation_ttl() -> Duration {
    Duration::days(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("email", "  Ann@Example.COM ")
                .unwrap()
                .as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@exa mple.com",
            "ann@@example.com",
            "ann@-example.com",
            "a..b@example.com",
            "<ann>@example.com",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse("email", &format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(Email::parse("email", "jörg@müller.de").is_ok());
    }

    #[test]
    fn passwords_are_counted_in_characters() {
        assert!(check_password("password", "1234567").is_err());
        assert!(check_password("password", "12345678").is_ok());
        assert!(check_password("password", &"é".repeat(128)).is_ok());
        assert!(check_password("password", &"é".repeat(129)).is_err());
    }

    #[test]
    fn permission_sets() {
        use Permission::*;
        let all = Permissions::all();
        let member = Permissions::of(&[OrgRead, MembersRead]);
        assert!(all.covers(member));
        assert!(!member.covers(all));
        assert_eq!(
            member.missing(Permissions::of(&[OrgRead, KeysManage])),
            vec![KeysManage]
        );
        assert_eq!(Permission::ALL.len(), 12);
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
        }
        assert!(parse_permissions("permissions", &["org:read".into(), "nope".into()]).is_err());
    }

    #[test]
    fn system_roles_have_fixed_ids() {
        let ids: Vec<i64> = system_roles().iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert!(!system_role(ROLE_VIEWER)
            .unwrap()
            .permissions
            .has(Permission::OrgUpdate));
    }

    #[test]
    fn invitation_states() {
        let t = Utc::now();
        let mut inv = Invitation {
            id: Uuid::now_v7(),
            organization_id: OrganizationId::new(),
            email: Email::parse("e", "a@b.co").unwrap(),
            name: None,
            roles: vec![3],
            hash: SecretHash::of("x"),
            invited_by: "key:x".into(),
            created_at: t,
            expires_at: t + Duration::days(7),
            accepted_at: None,
            revoked_at: None,
            sends: 1,
        };
        assert_eq!(inv.state_at(t), InvitationState::Pending);
        assert_eq!(
            inv.state_at(t + Duration::days(8)),
            InvitationState::Expired
        );
        inv.revoked_at = Some(t);
        assert_eq!(inv.state_at(t), InvitationState::Revoked);
    }
}
