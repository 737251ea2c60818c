//! An organization's own API keys on its page (`keys:manage`): the active ones, a form to make
//! one (its secret shown once, on the page that answers the form), and revoking.
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::service::access::OrgAccess;
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::{ApiKeyId, KeyKind, Permission, ValidationErrors};
use serde::Deserialize;

use crate::invitations::{offered_role, role_name, CsrfOnly, ROLES};
use crate::organizations::{org_id, refused_page, Refused};
use crate::session::{self, Console};
use crate::views::{KeyRow, KeysSection, NewKeyPage};
use crate::{render_secret, PageError};

/// The active keys, for those who manage keys.
pub(crate) async fn section(
    state: &AppState,
    access: &OrgAccess<'_>,
) -> Result<Option<KeysSection>, ServiceError> {
    if !access.permissions.has(Permission::KeysManage) || access.org.is_deleted() {
        return Ok(None);
    }
    let keys = service::keys::list_org_keys(state, access, false).await?;
    Ok(Some(KeysSection {
        keys: keys
            .iter()
            .map(|k| KeyRow {
                id: k.id.to_string(),
                name: k.name.clone(),
                prefix: k.prefix.clone(),
                kind: k.kind.as_str(),
                roles: k
                    .roles
                    .iter()
                    .map(|r| role_name(*r))
                    .collect::<Vec<_>>()
                    .join(", "),
                created: k.created_at.format("%Y-%m-%d").to_string(),
            })
            .collect(),
        roles: ROLES.iter().map(|(id, n)| (*id, *n, *id == 5)).collect(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct NewKeyForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// Makes a key with one role; the answer is a page showing its secret, once.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(id): Path<String>,
    Form(form): Form<NewKeyForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let access = service::organizations::load(&state, &who.principal, id).await?;
    let mut errors = ValidationErrors::new();
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        errors.add("name", "invalid_value", "name the key: 1 to 100 characters");
    }
    let role = offered_role(&form.role, &mut errors);
    if let (Some(role), true) = (role, errors.is_empty()) {
        match service::keys::create_org_key(
            &state,
            &access,
            name.to_owned(),
            vec![role],
            KeyKind::Organization,
        )
        .await
        {
            Ok((key, secret)) => {
                let (csrf, _) = session::csrf_token(&state, &headers);
                let page = NewKeyPage {
                    user: &who.label,
                    csrf: &csrf,
                    organization_id: id.to_string(),
                    organization: access.org.name.clone(),
                    name: key.name,
                    secret,
                };
                let answer = render_secret(&page);
                return Ok((StatusCode::CREATED, answer).into_response());
            }
            Err(ServiceError::Validation(e)) => errors = e,
            Err(e) => return Err(e.into()),
        }
    }
    drop(access);
    refused_page(&state, &headers, &who, id, &errors, |m| {
        Refused::Key(form.name, m)
    })
    .await
}

/// Revokes one of the organization's keys: it stops working at once.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path((id, key)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Redirect, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let key: ApiKeyId = key
        .parse()
        .map_err(|_| PageError::from(ServiceError::NotFound))?;
    let access = service::organizations::load(&state, &who.principal, id).await?;
    service::keys::revoke_org_key(&state, &access, key).await?;
    Ok(Redirect::to(&format!("/console/organizations/{id}")))
}
