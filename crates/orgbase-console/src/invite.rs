//! The invitation's landing page: where the e-mailed link (`{public URL}/invite/{token}`) leads.
//! It shows the organization and who invited; a new person sets a password there and is signed
//! in, a person with an account joins (and signs in as usual). Accepting is the API's own
//! (`invitations::accept`), so its rules and audit entry are the same.
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::service::{invitations, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::ValidationErrors;
use serde::Deserialize;

use crate::session::{self, Console};
use crate::views::InvitePage;
use crate::{render, PageError};

/// `/invite/{token}`, the e-mailed link: to the console's page, where the console's cookies
/// (its CSRF token) are sent.
pub(crate) async fn link(Path(token): Path<String>) -> Result<Redirect, PageError> {
    token_of(&token)?;
    Ok(Redirect::to(&format!("/console/invite/{token}")))
}

/// A token as the links carry it: letters, digits, `_` and `-` (anything else is no token of
/// ours, and must not reach a redirect's address).
fn token_of(raw: &str) -> Result<&str, PageError> {
    if !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(raw)
    } else {
        Err(ServiceError::NotFound.into())
    }
}

/// The landing page.
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Option<Console>,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let token = token_of(&token)?;
    let (csrf, set) = session::csrf_token(&state, &headers);
    let page = landing(&state, &csrf, who.as_ref(), token, None).await?;
    Ok(session::with_csrf_cookie(page, set))
}

async fn landing(
    state: &AppState,
    csrf: &str,
    who: Option<&Console>,
    token: &str,
    errors: Option<ValidationErrors>,
) -> Result<Response, PageError> {
    let preview = invitations::preview(state, token).await?;
    let error = |field: &str| {
        errors.as_ref().and_then(|e| {
            e.0.iter()
                .find(|f| f.field == field)
                .map(|f| f.message.clone())
        })
    };
    let page = InvitePage {
        csrf,
        token,
        organization: preview.organization.name.clone(),
        inviter: preview.inviter,
        email: preview.email.as_str().to_owned(),
        has_account: preview.has_account,
        signed_in_as: who.map(|c| c.label.clone()),
        expires: preview.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        password_error: error("password"),
        confirmation_error: error("password_confirmation"),
    };
    let status = if errors.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, render(&page)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct AcceptForm {
    csrf: Option<String>,
    password: Option<String>,
    password_confirmation: Option<String>,
}

/// Accepts: a new person is signed in with the session accepting starts; a person with an
/// account goes to their organizations if signed in, else to the sign-in page.
pub(crate) async fn accept(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Option<Console>,
    Path(token): Path<String>,
    Form(form): Form<AcceptForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let token = token_of(&token)?;
    let blank = |v: Option<String>| v.filter(|s| !s.is_empty());
    match invitations::accept(
        &state,
        token,
        blank(form.password),
        blank(form.password_confirmation),
        ValidationErrors::new(),
    )
    .await
    {
        Ok((member, started)) => {
            let org_page = format!("/console/organizations/{}", member.organization_id);
            Ok(match started {
                Some(s) => crate::sign_in::signed_in(&state, &s.token, &org_page),
                None if who.is_some() => Redirect::to(&org_page).into_response(),
                None => Redirect::to("/console/sign-in").into_response(),
            })
        }
        Err(ServiceError::Validation(errors)) => {
            let (csrf, _) = session::csrf_token(&state, &headers);
            landing(&state, &csrf, who.as_ref(), token, Some(errors)).await
        }
        Err(e) => Err(e.into()),
    }
}
