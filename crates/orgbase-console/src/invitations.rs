//! An organization's pending invitations on its page, and the invite form, for those who manage
//! invitations.
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::service::access::OrgAccess;
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::people::parse_person_name;
use orgbase_domain::{Email, Permission, ValidationErrors};
use serde::Deserialize;

use crate::organizations::{org_id, refused_page, Refused};
use crate::session::{self, Console};
use crate::views::{InvitationRow, InvitationsSection};
use crate::PageError;

/// The roles the form offers: the system roles but the owner (given only by a transfer).
pub(crate) const ROLES: [(i64, &str); 4] =
    [(2, "admin"), (3, "member"), (4, "billing"), (5, "viewer")];

/// The pending invitations, for those who manage invitations.
pub(crate) async fn section(
    state: &AppState,
    access: &OrgAccess<'_>,
) -> Result<Option<InvitationsSection>, ServiceError> {
    if !access.permissions.has(Permission::InvitationsManage) || access.org.is_deleted() {
        return Ok(None);
    }
    let pending = service::invitations::list(state, access, false).await?;
    Ok(Some(InvitationsSection {
        pending: pending
            .iter()
            .map(|i| InvitationRow {
                id: i.id.to_string(),
                email: i.email.as_str().to_owned(),
                roles: i
                    .roles
                    .iter()
                    .map(|r| role_name(*r))
                    .collect::<Vec<_>>()
                    .join(", "),
                expires: i.expires_at.format("%Y-%m-%d").to_string(),
            })
            .collect(),
        roles: ROLES.iter().map(|(id, n)| (*id, *n, *id == 3)).collect(),
    }))
}

/// The role a form chose, if it is one of [`ROLES`]; an error for `role` otherwise.
pub(crate) fn offered_role(raw: &str, errors: &mut ValidationErrors) -> Option<i64> {
    let role = raw
        .parse::<i64>()
        .ok()
        .filter(|r| ROLES.iter().any(|(id, _)| id == r));
    if role.is_none() {
        errors.add("role", "invalid_value", "choose one of the roles offered");
    }
    role
}

pub(crate) fn role_name(id: i64) -> String {
    match id {
        1 => "owner".to_owned(),
        _ => ROLES
            .iter()
            .find(|(r, _)| *r == id)
            .map_or_else(|| format!("role {id}"), |(_, n)| (*n).to_owned()),
    }
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    csrf: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// Invites a person: the API's invitation (its rules, its e-mail, its audit entry).
pub(crate) async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(id): Path<String>,
    Form(form): Form<InviteForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let access = service::organizations::load(&state, &who.principal, id).await?;
    let mut errors = ValidationErrors::new();
    let email = errors.check(Email::parse("email", &form.email));
    let name = match form.name.trim() {
        "" => None,
        n => errors.check(parse_person_name("name", n)),
    };
    let role = offered_role(&form.role, &mut errors);
    if let (Some(email), Some(role), true) = (email, role, errors.is_empty()) {
        match service::invitations::invite(&state, &access, email, name, vec![role]).await {
            Ok(_) => {
                return Ok(Redirect::to(&format!("/console/organizations/{id}")).into_response())
            }
            Err(ServiceError::Validation(e)) => errors = e,
            // Already a member, or invited already: said next to the address.
            Err(ServiceError::Conflict { detail, .. }) => errors.add("email", "conflict", detail),
            Err(e) => return Err(e.into()),
        }
    }
    drop(access);
    refused_page(&state, &headers, &who, id, &errors, |m| {
        Refused::Invite(form.email, m)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    pub(crate) csrf: Option<String>,
}

/// Resends (a new link; the old one stops working) or revokes an invitation: the API's own.
pub(crate) async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path((id, invitation, action)): Path<(String, String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Redirect, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let invitation: uuid::Uuid = invitation
        .parse()
        .map_err(|_| PageError::from(ServiceError::NotFound))?;
    let access = service::organizations::load(&state, &who.principal, id).await?;
    match action.as_str() {
        "resend" => service::invitations::resend(&state, &access, invitation).await?,
        "revoke" => service::invitations::revoke(&state, &access, invitation).await?,
        _ => return Err(ServiceError::NotFound.into()),
    };
    Ok(Redirect::to(&format!("/console/organizations/{id}")))
}
