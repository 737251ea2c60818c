//! The rules a storage transaction decides on what it has just read under its lock: whether an
//! invitation can be accepted and what accepting does, what may happen to the owner's
//! membership, when a role or the last platform key may go. Each backend reads the facts in its
//! own transaction and asks here; the answer is the same on every database. A refusal is named by
//! a stable code, which storage reports as a conflict of that name.
use chrono::{DateTime, Utc};

use crate::credential::{ApiKey, KeyKind};
use crate::people::{Invitation, InvitationState, Member, User, ROLE_OWNER};
use crate::UserId;

/// A change refused by a rule, named by a stable code (`invitation_expired`, `owner_role`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("refused by the rule {0}")]
pub struct Refusal(pub &'static str);

/// What accepting an invitation does about the person's account.
#[derive(Debug, Clone)]
pub enum Acceptance {
    /// The person has an account with a password: it stays as it is.
    ExistingAccount,
    /// Set this password hash: on a new account (made from `user`), or on an account that has
    /// none yet (an owner named by the platform).
    SetPassword { user: User },
}

/// What accepting an invitation does to the accounts, decided from the account (if any) that
/// holds the invitation's address.
#[derive(Debug, Clone)]
pub enum AccountStep {
    /// The account stays as it is.
    Keep(UserId),
    /// The account, which has no password yet, gets this one.
    SetPassword { id: UserId, password_hash: String },
    /// A new account, at the invitation's address.
    Create(User),
}

impl Invitation {
    /// An invitation is accepted once, while pending: not after it was accepted, revoked, or
    /// past its expiry.
    pub fn check_acceptable(&self, at: DateTime<Utc>) -> Result<(), Refusal> {
        match self.state_at(at) {
            InvitationState::Pending => Ok(()),
            InvitationState::Expired => Err(Refusal("invitation_expired")),
            InvitationState::Accepted | InvitationState::Revoked => {
                Err(Refusal("invitation_not_pending"))
            }
        }
    }

    /// An invitation is revoked or sent again while it is open: not once it was accepted or
    /// revoked (an expired one may still be revoked, or sent again with a new expiry).
    pub fn check_open(&self) -> Result<(), Refusal> {
        if self.accepted_at.is_some() || self.revoked_at.is_some() {
            return Err(Refusal("invitation_not_pending"));
        }
        Ok(())
    }

    /// What accepting does to the account at the invitation's address (`existing`). A person
    /// without a password must choose one; an account that has one keeps it; a new account
    /// takes the invitation's address, whatever the request said.
    pub fn account_step(
        &self,
        existing: Option<&User>,
        acceptance: &Acceptance,
    ) -> Result<AccountStep, Refusal> {
        match (existing, acceptance) {
            (Some(u), Acceptance::ExistingAccount) if u.password_hash.is_some() => {
                Ok(AccountStep::Keep(u.id))
            }
            (_, Acceptance::ExistingAccount) => Err(Refusal("password_required")),
            (Some(u), Acceptance::SetPassword { .. }) if u.password_hash.is_some() => {
                Ok(AccountStep::Keep(u.id))
            }
            (Some(u), Acceptance::SetPassword { user }) => Ok(AccountStep::SetPassword {
                id: u.id,
                password_hash: user.password_hash.clone().unwrap_or_default(),
            }),
            (None, Acceptance::SetPassword { user }) => Ok(AccountStep::Create(User {
                email: self.email.clone(),
                ..user.clone()
            })),
        }
    }

    /// The roles a new membership gets from this invitation. The owner role is never granted
    /// by an invitation: an owner named by the platform is a member from the start, and their
    /// invitation only sets a password. If they are no longer a member, it grants nothing.
    pub fn granted_roles(&self) -> Result<Vec<i64>, Refusal> {
        let roles: Vec<i64> = self
            .roles
            .iter()
            .copied()
            .filter(|r| *r != ROLE_OWNER)
            .collect();
        if roles.is_empty() {
            return Err(Refusal("membership_ended"));
        }
        Ok(roles)
    }

    /// A person who is a member already is not invited (the owner's own invitation, made with
    /// the organization, sets their password and is the exception).
    pub fn check_invitee(already_member: bool, owner_setup: bool) -> Result<(), Refusal> {
        if already_member && !owner_setup {
            return Err(Refusal("member_exists"));
        }
        Ok(())
    }
}

impl Member {
    /// The owner role moves only with a transfer of ownership: a change of roles neither gives
    /// it nor takes it away.
    pub fn check_roles_change(&self, roles: &[i64]) -> Result<(), Refusal> {
        if self.is_owner() != roles.contains(&ROLE_OWNER) {
            return Err(Refusal("owner_role"));
        }
        Ok(())
    }

    /// The owner is not removed: ownership is handed over first.
    pub fn check_removable(&self) -> Result<(), Refusal> {
        if self.is_owner() {
            return Err(Refusal("owner_role"));
        }
        Ok(())
    }
}

/// A role is deleted only when nothing holds it: no member, no active key, no pending
/// invitation (`holders` counts them).
pub fn check_role_unused(holders: u64) -> Result<(), Refusal> {
    if holders > 0 {
        return Err(Refusal("role_in_use"));
    }
    Ok(())
}

impl ApiKey {
    /// The last active platform key is not revoked: without it nobody could administer the
    /// platform. `other_platform_keys` counts the other active ones.
    pub fn check_revocable(&self, other_platform_keys: u64) -> Result<(), Refusal> {
        if self.kind == KeyKind::Platform && self.is_active() && other_platform_keys == 0 {
            return Err(Refusal("last_platform_key"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::Email;
    use crate::OrganizationId;

    fn invitation(roles: Vec<i64>) -> Invitation {
        let t = crate::now();
        Invitation {
            id: uuid::Uuid::now_v7(),
            organization_id: OrganizationId(uuid::Uuid::now_v7()),
            email: Email::parse("email", "ada@example.com").unwrap(),
            name: None,
            roles,
            hash: crate::SecretHash::of("obi_x"),
            invited_by: "key:1".into(),
            created_at: t,
            expires_at: t + chrono::Duration::days(7),
            accepted_at: None,
            revoked_at: None,
            sends: 1,
        }
    }

    fn user(email: &str, password: Option<&str>) -> User {
        let t = crate::now();
        User {
            id: UserId(uuid::Uuid::now_v7()),
            email: Email::parse("email", email).unwrap(),
            name: "Ada".into(),
            password_hash: password.map(str::to_owned),
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn an_invitation_is_accepted_once_and_in_time() {
        let mut inv = invitation(vec![3]);
        let t = inv.created_at;
        assert_eq!(inv.check_acceptable(t), Ok(()));
        assert_eq!(
            inv.check_acceptable(inv.expires_at),
            Err(Refusal("invitation_expired"))
        );
        inv.accepted_at = Some(t);
        assert_eq!(
            inv.check_acceptable(t),
            Err(Refusal("invitation_not_pending"))
        );
    }

    #[test]
    fn accepting_keeps_a_password_and_asks_for_a_missing_one() {
        let inv = invitation(vec![3]);
        let with = user("ada@example.com", Some("h"));
        let without = user("ada@example.com", None);
        let set = Acceptance::SetPassword {
            user: user("someone@else.example", Some("new")),
        };
        assert!(matches!(
            inv.account_step(Some(&with), &Acceptance::ExistingAccount),
            Ok(AccountStep::Keep(id)) if id == with.id
        ));
        assert!(matches!(
            inv.account_step(Some(&with), &set),
            Ok(AccountStep::Keep(id)) if id == with.id
        ));
        assert_eq!(
            inv.account_step(Some(&without), &Acceptance::ExistingAccount)
                .unwrap_err(),
            Refusal("password_required")
        );
        assert_eq!(
            inv.account_step(None, &Acceptance::ExistingAccount)
                .unwrap_err(),
            Refusal("password_required")
        );
        assert!(matches!(
            inv.account_step(Some(&without), &set),
            Ok(AccountStep::SetPassword { id, ref password_hash }) if id == without.id && password_hash == "new"
        ));
        // A new account takes the invitation's address.
        match inv.account_step(None, &set) {
            Ok(AccountStep::Create(u)) => assert_eq!(u.email, inv.email),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_owner_role_is_never_granted_by_an_invitation() {
        assert_eq!(invitation(vec![ROLE_OWNER, 3]).granted_roles(), Ok(vec![3]));
        assert_eq!(
            invitation(vec![ROLE_OWNER]).granted_roles(),
            Err(Refusal("membership_ended"))
        );
    }

    #[test]
    fn the_last_platform_key_stays() {
        let secret = crate::NewSecret::generate("obk_");
        let key = ApiKey::new_platform("k".into(), &secret);
        assert_eq!(key.check_revocable(0), Err(Refusal("last_platform_key")));
        assert_eq!(key.check_revocable(1), Ok(()));
        assert_eq!(check_role_unused(1), Err(Refusal("role_in_use")));
        assert_eq!(check_role_unused(0), Ok(()));
    }
}
