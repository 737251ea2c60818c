//! Who is using the console, and the CSRF check of its forms.
//!
//! - The credential cookie holds what the API would take as `Authorization: Bearer`: an
//!   operator's platform key or a person's session token. It is `HttpOnly` (no script reads it),
//!   `SameSite=Lax` (no other site's form or script sends it), `Secure` when the public URL is
//!   https, and scoped to `/console`. Each request authenticates it as the API does, so a
//!   revoked key or an ended session stops working at once.
//! - The CSRF cookie holds a random token, which every form repeats in a hidden field; a POST
//!   whose field does not match the cookie is refused (403) before anything runs. Another site
//!   can make a browser send the cookie, not read it, so it cannot fill in the field.
use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use orgbase_api::auth::{authenticate, Principal};
use orgbase_api::AppState;
use rand::RngCore;

use crate::PageError;

/// The cookie that holds the signed-in credential.
pub const CREDENTIAL_COOKIE: &str = "orgbase_console";
/// The cookie that holds the CSRF token.
pub const CSRF_COOKIE: &str = "orgbase_csrf";
/// The form field that repeats it.
pub const CSRF_FIELD: &str = "csrf";
/// Where the console's cookies are sent.
const PATH: &str = "/console";

/// A signed-in console user: the principal its credential stands for.
#[derive(Clone)]
pub struct Console {
    pub principal: Principal,
    /// What the header says about who is signed in.
    pub label: String,
}

/// The value of the cookie `name` among the request's cookies.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for the console: `HttpOnly`, `SameSite=Lax`, path `/console`, `Secure`
/// when the public URL is https; a session cookie (gone when the browser closes). An empty
/// value with `remove` clears it.
fn set_cookie(state: &AppState, name: &'static str, value: String, remove: bool) -> HeaderValue {
    let mut c = Cookie::build((name, value))
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.public_url.starts_with("https://"));
    if remove {
        c = c.max_age(cookie::time::Duration::ZERO);
    }
    HeaderValue::from_str(&c.build().encoded().to_string()).expect("a cookie is a valid header")
}

pub(crate) fn sign_in_cookie(state: &AppState, credential: &str) -> HeaderValue {
    set_cookie(state, CREDENTIAL_COOKIE, credential.to_owned(), false)
}

pub(crate) fn sign_out_cookie(state: &AppState) -> HeaderValue {
    set_cookie(state, CREDENTIAL_COOKIE, String::new(), true)
}

/// The request's CSRF token, or a new one with the header that sets it.
pub(crate) fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(t) = cookie_value(headers, CSRF_COOKIE) {
        return (t, None);
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let header = set_cookie(state, CSRF_COOKIE, token.clone(), false);
    (token, Some(header))
}

/// A page, with the CSRF cookie set if it was new.
pub(crate) fn with_csrf_cookie(page: Response, set: Option<HeaderValue>) -> Response {
    let mut page = page;
    if let Some(h) = set {
        page.headers_mut().append(SET_COOKIE, h);
    }
    page
}

/// Refuses a form whose CSRF field does not repeat the CSRF cookie: 403, nothing done.
pub(crate) fn check_csrf(headers: &HeaderMap, field: Option<&str>) -> Result<(), PageError> {
    let cookie = cookie_value(headers, CSRF_COOKIE);
    match (cookie, field) {
        (Some(c), Some(f)) if same(c.as_bytes(), f.as_bytes()) => Ok(()),
        _ => Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has no valid CSRF token: reload the page and send it again. Nothing was \
             changed.",
        )),
    }
}

/// Equal, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Not signed in (or no longer): to the sign-in page.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/console/sign-in").into_response()
    }
}

impl FromRequestParts<AppState> for Console {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SignIn> {
        let token = cookie_value(&parts.headers, CREDENTIAL_COOKIE).ok_or(SignIn)?;
        let principal = authenticate(state, &token).await.map_err(|_| SignIn)?;
        let label = match &principal {
            Principal::Platform { label, .. } => format!("platform key “{label}”"),
            Principal::Partner { label, .. } | Principal::OrgKey { label, .. } => {
                format!("key “{label}”")
            }
            Principal::User { label, .. } => label.clone(),
        };
        Ok(Console { principal, label })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Console {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Console as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}
