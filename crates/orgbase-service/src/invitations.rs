//! Invitations: making one, the e-mail that carries its token, revoking and resending it, and
//! accepting it.
use orgbase_domain::people::{check_password, INVITE_PREFIX, ROLE_OWNER};
use orgbase_domain::{
    now, Actor, ActorType, Email, Invitation, InvitationState, Member, NewSecret, Organization,
    SecretHash, Target, User, UserId, ValidationErrors,
};
use orgbase_mail::Mail;
use orgbase_store::{Acceptance, StoreError};
use uuid::Uuid;

use super::audit;
use super::sessions::Started;
use crate::access::OrgAccess;
use crate::{ServiceError, Services};

/// The link an invitation e-mail carries.
pub fn invite_link(state: &Services, token: &str) -> String {
    match &state.config.invite_url {
        Some(template) => template.replace("{token}", token),
        None => format!(
            "{}/invite/{token}",
            state.config.public_url.trim_end_matches('/')
        ),
    }
}

pub async fn send_invitation(
    state: &Services,
    org: &Organization,
    inv: &Invitation,
    token: &str,
    owner_setup: bool,
) -> Result<(), ServiceError> {
    let link = invite_link(state, token);
    let days = (inv.expires_at - inv.created_at).num_days().max(1);
    let (subject, intro) = if owner_setup {
        (
            format!("Set your password for {}", org.name),
            format!(
                "You are the owner of {} on Orgbase. Set your password to sign in:",
                org.name
            ),
        )
    } else {
        (
            format!("You are invited to join {}", org.name),
            format!(
                "You are invited to join {} on Orgbase. Accept here:",
                org.name
            ),
        )
    };
    let text = format!(
        "Hello{},\n\n{intro}\n\n{link}\n\nThe link works once and expires in {days} day(s). \
         If you did not expect this e-mail, ignore it.\n",
        inv.name
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default()
    );
    let mail = Mail {
        to: inv.email.as_str().to_owned(),
        to_name: inv.name.clone(),
        subject,
        text,
    };
    state.mailer.send(&mail).await.map_err(|e| {
        tracing::error!(invitation_id = %inv.id, error = %e, "sending an invitation failed");
        ServiceError::Upstream {
            code: "mail_failed",
            detail: "the invitation is saved but its e-mail could not be sent; resend it later"
                .into(),
        }
    })
}

pub fn new_invitation(
    state: &Services,
    org: &Organization,
    email: Email,
    name: Option<String>,
    roles: Vec<i64>,
    invited_by: String,
) -> (Invitation, String) {
    let secret = NewSecret::generate(INVITE_PREFIX);
    let t = now();
    let inv = Invitation {
        id: Uuid::now_v7(),
        organization_id: org.id,
        email,
        name,
        roles,
        hash: secret.hash,
        invited_by,
        created_at: t,
        expires_at: t + state.config.invitation_ttl,
        accepted_at: None,
        revoked_at: None,
        sends: 1,
    };
    (inv, secret.plain)
}

/// Invites the owner the platform named, who has no password yet, to set one.
pub async fn invite_owner(
    state: &Services,
    org: &Organization,
    owner: &User,
    actor: String,
) -> Result<(), ServiceError> {
    let (inv, token) = new_invitation(
        state,
        org,
        owner.email.clone(),
        Some(owner.name.clone()),
        vec![ROLE_OWNER],
        actor,
    );
    match state.store.insert_invitation(&inv, true).await {
        Ok(()) => {}
        // Already invited to set a password (by another organization's creation, say).
        Err(StoreError::Conflict {
            constraint: "invitation_pending",
        }) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    send_invitation(state, org, &inv, &token, true).await
}

/// The invitation of an owner named by the platform (to set a password) is the owner's and the
/// platform's business: an admin may not revoke or resend it. Answers the invitation it read.
async fn owner_setup_guard(
    state: &Services,
    access: &crate::access::OrgAccess<'_>,
    id: Uuid,
) -> Result<Invitation, ServiceError> {
    let inv = state.store.get_invitation(access.org.id, id).await?;
    if inv.roles.contains(&ROLE_OWNER) && !access.is_owner_or_platform() {
        return Err(ServiceError::Forbidden(
            "the owner's own invitation is handled by the owner or the platform".into(),
        ));
    }
    Ok(inv)
}

/// Invites `email` with `roles` (checked already) and mails the token; nobody grants roles
/// beyond their own. The invitation is kept even when the e-mail fails (a 502 says so: resend
/// it later).
pub async fn invite(
    state: &Services,
    access: &crate::access::OrgAccess<'_>,
    email: Email,
    name: Option<String>,
    roles: Vec<i64>,
) -> Result<Invitation, ServiceError> {
    access.require(orgbase_domain::Permission::InvitationsManage)?;
    let org = &access.org;
    access.may_grant(
        crate::access::role_permissions(state, org.id, &roles).await?,
        "roles",
    )?;
    let actor = access.principal.actor();
    let (inv, token) = new_invitation(state, org, email, name, roles, actor.clone());
    let entry = audit::on_org(
        access,
        "invitation.created",
        Target::new("invitation", inv.id),
    )
    .diff(None, Some(&inv));
    audit::record(vec![entry], state.store.insert_invitation(&inv, false)).await?;
    tracing::info!(organization_id = %org.id, invitation_id = %inv.id, actor = %actor, "invitation created");
    send_invitation(state, org, &inv, &token, false).await?;
    Ok(inv)
}

/// The organization's pending invitations, or all of them.
pub async fn list(
    state: &Services,
    access: &crate::access::OrgAccess<'_>,
    all: bool,
) -> Result<Vec<Invitation>, ServiceError> {
    access.require(orgbase_domain::Permission::InvitationsManage)?;
    let t = now();
    Ok(state
        .store
        .list_invitations(access.org.id, all)
        .await?
        .into_iter()
        .filter(|i| all || i.state_at(t) == orgbase_domain::InvitationState::Pending)
        .collect())
}

/// Revokes an invitation: its link stops working at once.
pub async fn revoke(
    state: &Services,
    access: &OrgAccess<'_>,
    id: Uuid,
) -> Result<Invitation, ServiceError> {
    access.require(orgbase_domain::Permission::InvitationsManage)?;
    let current = owner_setup_guard(state, access, id).await?;
    let at = now();
    let entry = audit::on_org(access, "invitation.revoked", Target::new("invitation", id)).diff(
        Some(&current),
        Some(&Invitation {
            revoked_at: Some(at),
            ..current.clone()
        }),
    );
    let revoked = state.store.revoke_invitation(access.org.id, id, at);
    let inv = audit::record(vec![entry], revoked).await?;
    tracing::info!(organization_id = %access.org.id, invitation_id = %inv.id, actor = %access.principal.actor(), "invitation revoked");
    Ok(inv)
}

/// Sends an invitation again with a new link; the previous link stops working.
pub async fn resend(
    state: &Services,
    access: &OrgAccess<'_>,
    id: Uuid,
) -> Result<Invitation, ServiceError> {
    access.require(orgbase_domain::Permission::InvitationsManage)?;
    let current = owner_setup_guard(state, access, id).await?;
    let secret = NewSecret::generate(INVITE_PREFIX);
    let expires = now() + state.config.invitation_ttl;
    let entry = audit::on_org(access, "invitation.resent", Target::new("invitation", id)).diff(
        Some(&current),
        Some(&Invitation {
            expires_at: expires,
            sends: current.sends + 1,
            ..current.clone()
        }),
    );
    let reissued = state
        .store
        .reissue_invitation(access.org.id, id, &secret.hash, expires);
    let inv = audit::record(vec![entry], reissued).await?;
    let owner_setup = inv.roles.contains(&ROLE_OWNER);
    send_invitation(state, &access.org, &inv, &secret.plain, owner_setup).await?;
    tracing::info!(organization_id = %access.org.id, invitation_id = %inv.id, actor = %access.principal.actor(), "invitation resent");
    Ok(inv)
}

fn gone(code: &'static str, detail: &str) -> ServiceError {
    ServiceError::Gone {
        code,
        detail: detail.into(),
    }
}

/// The pending invitation whose link carries `token`, and its organization: 404 for no such
/// token, 409 once accepted, 410 once revoked, expired or its organization deleted, 403 while
/// its organization is suspended.
async fn pending(
    state: &Services,
    token: &str,
) -> Result<(Invitation, Organization), ServiceError> {
    let not_found = ServiceError::NotFound;
    if !token.starts_with(INVITE_PREFIX) || token.len() > 128 {
        return Err(not_found);
    }
    let inv = state
        .store
        .find_invitation(&SecretHash::of(token))
        .await?
        .ok_or(not_found)?;
    match inv.state_at(now()) {
        InvitationState::Pending => {}
        InvitationState::Accepted => {
            return Err(ServiceError::Conflict {
                code: "invitation_used",
                detail: "this invitation was accepted already".into(),
            })
        }
        InvitationState::Revoked => {
            return Err(gone("invitation_revoked", "this invitation was revoked"))
        }
        InvitationState::Expired => {
            return Err(gone(
                "invitation_expired",
                "this invitation has expired; ask for a new one",
            ))
        }
    }
    let org = state.store.get_organization(inv.organization_id).await?;
    if org.is_deleted() {
        return Err(gone(
            "organization_deleted",
            "the organization of this invitation no longer exists",
        ));
    }
    // Joining is a change to the organization, by a person who would be its own.
    if org.status == orgbase_domain::OrgStatus::Suspended {
        return Err(crate::access::suspended(&org));
    }
    Ok((inv, org))
}

/// What the invitation's landing page shows before it is accepted.
pub struct Preview {
    pub organization: Organization,
    pub email: Email,
    pub name: Option<String>,
    /// Who invited, as a person would recognize them: a name, an e-mail, a key's name.
    pub inviter: String,
    /// The address has an account with a password already: accepting joins it, without a new
    /// password.
    pub has_account: bool,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The invitation behind `token`, for its landing page; refused as [`accept`] would be.
pub async fn preview(state: &Services, token: &str) -> Result<Preview, ServiceError> {
    let (inv, organization) = pending(state, token).await?;
    let has_account = state
        .store
        .find_user_by_email(&inv.email)
        .await?
        .is_some_and(|u| u.password_hash.is_some());
    let inviter = inviter_label(state, &inv.invited_by).await;
    Ok(Preview {
        organization,
        email: inv.email,
        name: inv.name,
        inviter,
        has_account,
        expires_at: inv.expires_at,
    })
}

/// `user:<id>` as the person's name and e-mail, `key:<id>` as the key's name; "the
/// organization's administrators" when neither can be found.
async fn inviter_label(state: &Services, invited_by: &str) -> String {
    let fallback = || "the organization's administrators".to_owned();
    match invited_by.split_once(':') {
        Some(("user", id)) => match id.parse() {
            Ok(id) => match state.store.get_user(UserId(id)).await {
                Ok(u) => format!("{} ({})", u.name, u.email.as_str()),
                Err(_) => fallback(),
            },
            Err(_) => fallback(),
        },
        Some(("key", id)) => match id.parse() {
            Ok(id) => match state.store.get_api_key(orgbase_domain::ApiKeyId(id)).await {
                Ok(k) => format!("{} (an API key)", k.name),
                Err(_) => fallback(),
            },
            Err(_) => fallback(),
        },
        _ => fallback(),
    }
}

/// Accepts the invitation whose link carries `token`: a new person sets a password (8–128
/// characters, confirmed) and is signed in; a person who has an account joins without it
/// changing. `errors` holds what parsing the body found.
pub async fn accept(
    state: &Services,
    token: &str,
    password: Option<String>,
    confirmation: Option<String>,
    mut errors: ValidationErrors,
) -> Result<(Member, Option<Started>), ServiceError> {
    let (inv, _) = pending(state, token).await?;
    let t = now();
    let existing = state.store.find_user_by_email(&inv.email).await?;
    let has_account = existing.as_ref().is_some_and(|u| u.password_hash.is_some());
    let acceptance = if has_account {
        errors.into_result()?;
        Acceptance::ExistingAccount
    } else {
        match &password {
            None => errors.add("password", "required", "is required to create the account"),
            Some(p) => {
                errors.check(check_password("password", p));
                if confirmation.as_deref() != Some(p.as_str()) {
                    errors.add("password_confirmation", "mismatch", "must equal password");
                }
            }
        }
        errors.into_result()?;
        let hash = state.passwords.hash(password.expect("validated")).await?;
        let name = inv
            .name
            .clone()
            .or_else(|| existing.as_ref().map(|u| u.name.clone()))
            .unwrap_or_else(|| {
                inv.email
                    .as_str()
                    .split('@')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            });
        Acceptance::SetPassword {
            user: User {
                id: UserId::new(),
                email: inv.email.clone(),
                name,
                password_hash: Some(hash),
                created_at: t,
                updated_at: t,
            },
        }
    };
    // The person accepting acts: the account they have, or the one made now.
    let person = match &acceptance {
        Acceptance::SetPassword { user } => existing.as_ref().map_or(user.id, |u| u.id),
        Acceptance::ExistingAccount => existing.as_ref().map_or(UserId::new(), |u| u.id),
    };
    let accepted_at = now();
    let entry = audit::entry(
        Actor::new(ActorType::User, person, Some(inv.email.as_str().to_owned())),
        Some(inv.organization_id),
        "invitation.accepted",
        Target::new("invitation", inv.id),
    )
    .diff(
        Some(&inv),
        Some(&Invitation {
            accepted_at: Some(accepted_at),
            ..inv.clone()
        }),
    );
    let accepted = state
        .store
        .accept_invitation(inv.id, accepted_at, &acceptance);
    let member = match audit::record(vec![entry], accepted).await {
        Ok(m) => m,
        Err(StoreError::Conflict {
            constraint: "invitation_not_pending",
        }) => {
            return Err(ServiceError::Conflict {
                code: "invitation_used",
                detail: "this invitation was accepted or revoked already".into(),
            })
        }
        Err(StoreError::Conflict {
            constraint: "invitation_expired",
        }) => {
            return Err(gone(
                "invitation_expired",
                "this invitation has expired; ask for a new one",
            ))
        }
        Err(StoreError::Conflict {
            constraint: "membership_ended",
        }) => {
            return Err(gone(
                "invitation_void",
                "this invitation was for a membership that has ended",
            ))
        }
        Err(StoreError::Conflict {
            constraint: "password_required",
        }) => {
            return Err(ServiceError::field(
                "password",
                "required",
                "is required to create the account",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(organization_id = %member.organization_id, member_id = member.id, invitation_id = %inv.id, "invitation accepted");
    // A person who set their password here is signed in; one who had an account logs in as
    // usual (the link alone never opens an existing account).
    let session = if has_account {
        None
    } else {
        Some(super::sessions::start_session(state, member.user_id, None).await?)
    };
    Ok((member, session))
}
