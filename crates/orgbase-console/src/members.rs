//! An organization's members on its page (`members:read`): name, e-mail and roles.
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::Form;
use orgbase_api::service::access::OrgAccess;
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::{Permission, ValidationErrors};
use orgbase_store::MemberQuery;
use serde::Deserialize;

use crate::invitations::{offered_role, role_name, ROLES};
use crate::organizations::org_id;
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
    let may_manage = access.permissions.has(Permission::MembersManage) && !access.org.is_deleted();
    Ok(Some(MembersSection {
        total: page.total,
        may_manage,
        members: page
            .members
            .iter()
            .map(|m| MemberRow {
                id: m.id,
                owner: m.is_owner(),
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

#[derive(Deserialize)]
pub(crate) struct MemberForm {
    csrf: Option<String>,
    #[serde(default)]
    role: String,
}

/// Changes a member's role (`role`) or removes them (`remove`): the API's own, so nobody grants
/// what they lack, acts on a member who holds more, or touches the owner.
pub(crate) async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path((id, member, action)): Path<(String, String, String)>,
    Form(form): Form<MemberForm>,
) -> Result<Redirect, PageError> {
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
            // The role changes; the workspaces stay as they are.
            let workspaces = target.workspaces.iter().map(|w| w.to_string()).collect();
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
