//! Signing in (a platform or partner key, or e-mail and password) and out.
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::auth::{authenticate, Principal};
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::Email;
use serde::Deserialize;

use crate::session::{self, Console};
use crate::views::SignInPage;
use crate::{render, PageError};

/// Where signing in leads.
const HOME: &str = "/console/organizations";

/// The sign-in page; a signed-in visitor goes on to the organizations.
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Option<Console>,
) -> Response {
    if who.is_some() {
        return Redirect::to("/console/organizations").into_response();
    }
    let (csrf, set) = session::csrf_token(&state, &headers);
    let page = SignInPage {
        csrf: &csrf,
        email: "",
        key_error: None,
        password_error: None,
    };
    session::with_csrf_cookie(render(&page), set)
}

#[derive(Deserialize)]
pub(crate) struct KeyForm {
    csrf: Option<String>,
    #[serde(default)]
    key: String,
}

/// An operator signs in with a platform key, a partner with its partner key (which reaches the
/// partner and its children). An organization's key is for programs, not people: refused.
pub(crate) async fn with_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let key = form.key.trim();
    let refused = |message: &str| {
        let (csrf, _) = session::csrf_token(&state, &headers);
        let page = SignInPage {
            csrf: &csrf,
            email: "",
            key_error: Some(message.to_owned()),
            password_error: None,
        };
        (StatusCode::UNAUTHORIZED, render(&page)).into_response()
    };
    if key.is_empty() {
        return Ok(refused("Enter a platform or partner key."));
    }
    match authenticate(&state, key).await {
        Ok(Principal::Platform { .. } | Principal::Partner { .. }) => {
            Ok(signed_in(&state, key, HOME))
        }
        Ok(_) => Ok(refused(
            "This is an organization's key: operators sign in with a platform key, partners \
             with a partner key, and people with their e-mail and password.",
        )),
        Err(ServiceError::Unauthorized { detail, .. }) => Ok(refused(detail)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    csrf: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// A person signs in with e-mail and password, through the API's login and its throttle.
pub(crate) async fn with_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let refused = |status: StatusCode, message: &str| {
        let (csrf, _) = session::csrf_token(&state, &headers);
        let page = SignInPage {
            csrf: &csrf,
            email: &form.email,
            key_error: None,
            password_error: Some(message.to_owned()),
        };
        (status, render(&page)).into_response()
    };
    // A malformed address cannot belong to anyone: the same answer as an unknown one.
    let email = Email::parse("email", &form.email).ok();
    let address = orgbase_api::context::origin().client_address;
    match service::sessions::login(&state, email, form.password.clone(), address.as_deref()).await {
        Ok((_, started)) => Ok(signed_in(&state, &started.token, HOME)),
        Err(ServiceError::Unauthorized { detail, .. }) => {
            Ok(refused(StatusCode::UNAUTHORIZED, detail))
        }
        Err(ServiceError::TooManyRequests { detail, .. }) => {
            Ok(refused(StatusCode::TOO_MANY_REQUESTS, &detail))
        }
        Err(e) => Err(e.into()),
    }
}

/// Signed in with `credential`: its cookie set, on to `page`.
pub(crate) fn signed_in(state: &AppState, credential: &str, page: &str) -> Response {
    let mut to = Redirect::to(page).into_response();
    to.headers_mut()
        .append(SET_COOKIE, session::sign_in_cookie(state, credential));
    to
}

#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    csrf: Option<String>,
}

/// Signs out: a person's session ends (its token stops working everywhere); the cookie goes.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Option<Console>,
    Form(form): Form<SignOutForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    if let Some(Console {
        principal: who @ Principal::User { .. },
        ..
    }) = &who
    {
        service::sessions::logout(&state, who).await?;
    }
    let mut to = Redirect::to("/console/sign-in").into_response();
    to.headers_mut()
        .append(SET_COOKIE, session::sign_out_cookie(&state));
    Ok(to)
}
