//! Invitations: the seed's `POST …/invite` and `POST /api/organizations/invite/{token}/accept`,
//! and the list, revoke and resend a user of them needs next.
//!
//! The token (256 random bits, `obi_…`) travels only by e-mail, as a link ending in
//! `/invite/{token}`; only its hash is stored, and no API answer ever carries it. Accepting
//! consumes it in the same transaction that adds the member, so two accepts cannot both win.
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use orgbase_domain::people::{parse_person_name, ROLE_MEMBER};
use orgbase_domain::{now, Email, Invitation, Permission, ValidationErrors};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::extract::{Field, JsonBody, OptionalJsonBody};
use crate::native::views::rfc3339;
use crate::native::views::{Done, Envelope};
use crate::service;
use crate::service::roles::checked_roles;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<i64>,
    /// pending, accepted, revoked or expired.
    pub status: String,
    pub invited_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub accepted_at: Option<String>,
    pub revoked_at: Option<String>,
    /// How many times it was sent.
    pub sends: i32,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            status: i.state_at(now()).as_str().to_owned(),
            id: i.id,
            organization_id: i.organization_id.0,
            email: i.email.as_str().to_owned(),
            name: i.name,
            roles: i.roles,
            invited_by: i.invited_by,
            created_at: rfc3339(&i.created_at),
            expires_at: rfc3339(&i.expires_at),
            accepted_at: i.accepted_at.as_ref().map(rfc3339),
            revoked_at: i.revoked_at.as_ref().map(rfc3339),
            sends: i.sends,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub data: Vec<InvitationView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct InviteInput {
    /// Required: where the invitation goes.
    #[schema(required = true, value_type = String, max_length = 254, pattern = r#"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$"#, example = "john@example.com")]
    pub email: Field<String>,
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "John Doe")]
    pub name: Field<String>,
    /// Role ids the person will have (default `[3]`, member). Not the owner role.
    #[schema(value_type = Vec<i64>, min_items = 1, example = json!([3]))]
    pub roles: Field<Vec<i64>>,
}

/// Invite a new user to the organization.
#[utoipa::path(
    post, path = "/api/organizations/{organizationId}/invite", operation_id = "inviteMember", tag = "Invitations",
    params(("organizationId" = Uuid, Path, description = "ID of the organization to invite the user to")),
    request_body = InviteInput,
    responses(
        (status = 200, description = "Invitation sent successfully.", body = Envelope<InvitationView>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks invitations:manage, or would grant more than the caller holds", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member, or a pending invitation exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Saved, but the e-mail could not be sent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn invite(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body, mut errors): JsonBody<InviteInput>,
) -> Result<Json<Envelope<InvitationView>>, ApiError> {
    let access =
        service::load_with(&state, &who, org_id(&id)?, Permission::InvitationsManage).await?;
    let org = access.org.clone();
    let e = &mut errors;
    let email = body
        .email
        .required("email", e)
        .and_then(|v| e.check(Email::parse("email", &v)));
    let name = body
        .name
        .nullable("name", e)
        .flatten()
        .and_then(|n| e.check(parse_person_name("name", &n)));
    let roles = body.roles.optional("roles", e);
    let roles = checked_roles(
        &state,
        org.id,
        "roles",
        Some(roles.unwrap_or_else(|| vec![ROLE_MEMBER])),
        false,
        e,
    )
    .await?;
    errors.clone().into_result()?;
    let (Some(email), Some(roles)) = (email, roles) else {
        return Err(errors.into());
    };
    let inv = service::invitations::invite(&state, &access, email, name, roles).await?;
    Ok(Envelope::ok("Invitation sent successfully.", inv.into()))
}

/// List an organization's invitations: pending ones, or all with `status=all`.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/invitations", operation_id = "listInvitations", tag = "Invitations",
    params(
        ("organizationId" = Uuid, Path),
        ("status" = Option<String>, Query, description = "`pending` (default) or `all`"),
    ),
    responses(
        (status = 200, description = "The invitations, newest first (never their tokens)", body = InvitationList),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks invitations:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<InvitationList>, ApiError> {
    let access =
        service::load_with(&state, &who, org_id(&id)?, Permission::InvitationsManage).await?;
    let mut all = false;
    let mut e = ValidationErrors::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("status", "all") => all = true,
            ("status", "pending") => all = false,
            ("status", _) => e.add("status", "invalid_value", "must be pending or all"),
            (other, _) => e.add(
                other,
                "unknown_parameter",
                "is not a parameter of this list",
            ),
        }
    }
    e.into_result()?;
    let list = service::invitations::list(&state, &access, all).await?;
    Ok(Json(InvitationList {
        data: list.into_iter().map(InvitationView::from).collect(),
    }))
}

fn invitation_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// Revoke an invitation: its link stops working at once.
#[utoipa::path(
    delete, path = "/api/organizations/{organizationId}/invitations/{invitationId}", operation_id = "revokeInvitation", tag = "Invitations",
    params(("organizationId" = Uuid, Path), ("invitationId" = Uuid, Path)),
    responses(
        (status = 200, description = "Revoked", body = Done),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks invitations:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Accepted or revoked already", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path((id, inv)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    let access =
        service::load_with(&state, &who, org_id(&id)?, Permission::InvitationsManage).await?;
    service::invitations::revoke(&state, &access, invitation_id(&inv)?).await?;
    Ok(Done::ok("Invitation revoked"))
}

/// Send an invitation again, with a new link; the previous link stops working.
#[utoipa::path(
    post, path = "/api/organizations/{organizationId}/invitations/{invitationId}/resend", operation_id = "resendInvitation", tag = "Invitations",
    params(("organizationId" = Uuid, Path), ("invitationId" = Uuid, Path)),
    responses(
        (status = 200, description = "Sent again", body = Envelope<InvitationView>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks invitations:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Accepted or revoked already", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The e-mail could not be sent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resend(
    State(state): State<AppState>,
    who: Principal,
    Path((id, inv)): Path<(String, String)>,
) -> Result<Json<Envelope<InvitationView>>, ApiError> {
    let access =
        service::load_with(&state, &who, org_id(&id)?, Permission::InvitationsManage).await?;
    let inv = service::invitations::resend(&state, &access, invitation_id(&inv)?).await?;
    Ok(Envelope::ok("Invitation sent successfully.", inv.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct AcceptInput {
    /// 8–128 characters: required for a person without an account, ignored otherwise.
    #[schema(value_type = String, example = "password123")]
    pub password: Field<String>,
    /// Must equal `password`.
    #[schema(value_type = String, example = "password123")]
    pub password_confirmation: Field<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub organization_id: Uuid,
    pub member_id: i64,
    pub user_id: Uuid,
    /// A session, when this request set the password (a person who had an account logs in as
    /// usual: the link alone never opens an existing account).
    pub session: Option<crate::native::views::NewSession>,
}

/// Accept the invitation and set the password.
///
/// A new person sets a password (8–128 characters, confirmed). A person who already has an
/// account joins without it changing.
#[utoipa::path(
    post, path = "/api/organizations/invite/{inviteToken}/accept", operation_id = "acceptInvitation", tag = "Invitations",
    params(("inviteToken" = String, Path, description = "Invite token sent to the user")),
    request_body = AcceptInput,
    responses(
        (status = 200, description = "Password set successfully.", body = Envelope<Accepted>),
        (status = 404, description = "No such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Accepted already", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Password missing, too short or long, or not confirmed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    OptionalJsonBody(body, mut errors): OptionalJsonBody<AcceptInput>,
) -> Result<axum::response::Response, ApiError> {
    let password = body.password.optional("password", &mut errors);
    let confirmation = body
        .password_confirmation
        .optional("password_confirmation", &mut errors);
    let (member, session) =
        service::invitations::accept(&state, &token, password, confirmation, errors).await?;
    let message = if session.is_some() {
        "Password set successfully."
    } else {
        "Invitation accepted."
    };
    let session = session.map(Into::into);
    Ok(crate::native::secret_answer(
        axum::http::StatusCode::OK,
        Envelope::ok(
            message,
            Accepted {
                organization_id: member.organization_id.0,
                member_id: member.id,
                user_id: member.user_id.0,
                session,
            },
        ),
    ))
}
