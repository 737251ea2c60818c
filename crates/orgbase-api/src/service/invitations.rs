//! Invitations: making one, and the e-mail that carries its token.
use orgbase_domain::people::{INVITE_PREFIX, ROLE_OWNER};
use orgbase_domain::{now, Email, Invitation, NewSecret, Organization, User};
use orgbase_mail::Mail;
use orgbase_store::StoreError;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

/// The link an invitation e-mail carries.
pub fn invite_link(state: &AppState, token: &str) -> String {
    format!(
        "{}/invite/{token}",
        state.config.public_url.trim_end_matches('/')
    )
}

pub async fn send_invitation(
    state: &AppState,
    org: &Organization,
    inv: &Invitation,
    token: &str,
    owner_setup: bool,
) -> Result<(), ApiError> {
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
        ApiError::Upstream {
            code: "mail_failed",
            detail: "the invitation is saved but its e-mail could not be sent; resend it later"
                .into(),
        }
    })
}

pub fn new_invitation(
    state: &AppState,
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
    state: &AppState,
    org: &Organization,
    owner: &User,
    actor: String,
) -> Result<(), ApiError> {
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
/// platform's business: an admin may not revoke or resend it.
pub async fn owner_setup_guard(
    state: &AppState,
    access: &crate::auth::OrgAccess<'_>,
    id: Uuid,
) -> Result<(), ApiError> {
    let inv = state.store.get_invitation(access.org.id, id).await?;
    if inv.roles.contains(&ROLE_OWNER) && !access.is_owner_or_platform() {
        return Err(ApiError::Forbidden(
            "the owner's own invitation is handled by the owner or the platform".into(),
        ));
    }
    Ok(())
}

/// Invites `email` with `roles` (checked already) and mails the token; nobody grants roles
/// beyond their own. The invitation is kept even when the e-mail fails (a 502 says so: resend
/// it later).
pub async fn invite(
    state: &AppState,
    access: &crate::auth::OrgAccess<'_>,
    email: Email,
    name: Option<String>,
    roles: Vec<i64>,
) -> Result<Invitation, ApiError> {
    access.require(orgbase_domain::Permission::InvitationsManage)?;
    let org = &access.org;
    access.may_grant(
        crate::auth::role_permissions(state, org.id, &roles).await?,
        "roles",
    )?;
    let actor = access.principal.actor();
    let (inv, token) = new_invitation(state, org, email, name, roles, actor.clone());
    state.store.insert_invitation(&inv, false).await?;
    tracing::info!(organization_id = %org.id, invitation_id = %inv.id, actor = %actor, "invitation created");
    send_invitation(state, org, &inv, &token, false).await?;
    Ok(inv)
}

/// The organization's pending invitations, or all of them.
pub async fn list(
    state: &AppState,
    access: &crate::auth::OrgAccess<'_>,
    all: bool,
) -> Result<Vec<Invitation>, ApiError> {
    let t = now();
    Ok(state
        .store
        .list_invitations(access.org.id, all)
        .await?
        .into_iter()
        .filter(|i| all || i.state_at(t) == orgbase_domain::InvitationState::Pending)
        .collect())
}
