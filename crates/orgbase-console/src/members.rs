//! An organization's members on its page (`members:read`): name, e-mail, roles and workspaces;
//! with `members:manage`, a member's role and workspaces changed or the member removed; for the
//! owner (or those above it), ownership transferred.
use axum::extract::{Path, RawForm, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::service::access::OrgAccess;
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::{Permission, ValidationErrors};
use orgbase_store::MemberQuery;
use serde::Deserialize;

use crate::invitations::{offered_role, role_name, ROLES};
use crate::organizations::{org_id, refused_page, Refused};
use crate::session::{self, Console};
use crate::views::{MemberRow, MembersSection};
use crate::PageError;

/// Members the page shows; the total says how many there are.
const SHOWN: u32 = 50;

pub(crate) async fn section(
    state: &AppState,
    access: &OrgAccess<'_>,
) -> Result<Option<MembersSection>, ServiceError> {
    if !access.permissions.has(Permission::MembersRead) {
        return Ok(None);
    }
    let stats = service::members::stats(state, access).await?;
    let q = MemberQuery {
        organization_id: access.org.id,
        offset: 0,
        limit: SHOWN,
        role: None,
        workspace: None,
        q: None,
    };
    let page = service::members::list(state, access, &q, stats).await?;
    let workspaces = service::workspaces::list(state, access).await?;
    let may_manage = access.permissions.has(Permission::MembersManage) && !access.org.is_deleted();
    let may_transfer = access.is_owner_or_platform() && !access.org.is_deleted();
    Ok(Some(MembersSection {
        total: page.total,
        may_manage,
        may_transfer,
        members: page
            .members
            .iter()
            .map(|m| MemberRow {
                id: m.id,
                owner: m.is_owner(),
                workspace_options: workspaces
                    .iter()
                    .map(|w| {
                        (
                            w.id.to_string(),
                            w.name.clone(),
                            m.workspaces.contains(&w.id),
                        )
                    })
                    .collect(),
                workspaces: workspaces
                    .iter()
                    .filter(|w| m.workspaces.contains(&w.id))
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                role_options: ROLES
                    .iter()
                    .map(|(id, n)| (*id, *n, m.roles.contains(id)))
                    .collect(),
                name: m.name.clone(),
                email: m.email.as_str().to_owned(),
                roles: m
                    .roles
                    .iter()
                    .map(|r| role_name(*r))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
    }))
}

/// A member's form: its CSRF token, the role, and the workspaces ticked (a field repeated for
/// each, so read from the raw body). `workspaces` says the form listed the workspaces at all;
/// without it they are kept.
#[derive(Default)]
pub(crate) struct MemberForm {
    csrf: Option<String>,
    role: String,
    workspaces_listed: bool,
    workspaces: Vec<String>,
}

impl MemberForm {
    fn parse(body: &[u8]) -> Self {
        let mut f = MemberForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "csrf" => f.csrf = Some(v.into_owned()),
                "role" => f.role = v.into_owned(),
                "workspaces" => f.workspaces_listed = true,
                "workspace" => f.workspaces.push(v.into_owned()),
                _ => {}
            }
        }
        f
    }
}

/// Changes a member's role and workspaces (`role`) or removes them (`remove`): the API's own,
/// so nobody grants what they lack, acts on a member who holds more, or touches the owner.
pub(crate) async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path((id, member, action)): Path<(String, String, String)>,
    RawForm(body): RawForm,
) -> Result<Redirect, PageError> {
    let form = MemberForm::parse(&body);
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let member: i64 = member
        .parse()
        .map_err(|_| PageError::from(ServiceError::NotFound))?;
    let access = service::organizations::load(&state, &who.principal, id).await?;
    match action.as_str() {
        "role" => {
            let mut errors = ValidationErrors::new();
            let role = offered_role(&form.role, &mut errors);
            errors
                .clone()
                .into_result()
                .map_err(ServiceError::Validation)?;
            let target = service::members::get(&state, &access, member).await?;
            let role = vec![role.expect("checked")];
            // Without the workspaces listed, they stay as they are.
            let workspaces = if form.workspaces_listed {
                form.workspaces
            } else {
                target.workspaces.iter().map(|w| w.to_string()).collect()
            };
            service::members::update(
                &state,
                &access,
                target,
                Some(role),
                Some(workspaces),
                errors,
            )
            .await?;
        }
        "remove" => service::members::remove(&state, &access, member).await?,
        _ => return Err(ServiceError::NotFound.into()),
    }
    Ok(Redirect::to(&format!("/console/organizations/{id}")))
}

#[derive(Deserialize)]
pub(crate) struct TransferForm {
    csrf: Option<String>,
    #[serde(default)]
    member: String,
    /// The form's "I mean it" box.
    confirm: Option<String>,
}

/// Makes a member the owner: the API's transfer, so only the owner or those above it may.
pub(crate) async fn transfer(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(id): Path<String>,
    Form(form): Form<TransferForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let errors = if form.confirm.as_deref() != Some("yes") {
        ValidationErrors::single(
            "confirm",
            "required",
            "tick the box to confirm the transfer",
        )
    } else if let Ok(member) = form.member.parse::<i64>() {
        let access = service::organizations::load(&state, &who.principal, id).await?;
        match service::members::transfer_ownership(&state, &access, member).await {
            Ok(_) => {
                return Ok(Redirect::to(&format!("/console/organizations/{id}")).into_response())
            }
            Err(ServiceError::Validation(errors)) => errors,
            Err(e) => return Err(e.into()),
        }
    } else {
        ValidationErrors::single("memberId", "required", "choose the new owner")
    };
    refused_page(&state, &headers, &who, id, &errors, Refused::Transfer).await
}
