//! Who is calling: the `Authorization: Bearer` credential, turned into a [`Principal`] by the
//! extractor. What a principal may do is the service's ([`orgbase_service::access`]).
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use crate::error::ApiError;
use crate::AppState;

pub use orgbase_service::access::{
    authenticate, role_permissions, OrgAccess, PlatformAdmin, Principal,
};

const MISSING: ApiError = ApiError::Unauthorized {
    code: "missing_credentials",
    detail: "send a key or session token as `Authorization: Bearer <token>`",
};

fn invalid() -> ApiError {
    orgbase_service::access::INVALID.into()
}

/// A credential already authenticated earlier in the request (by the idempotency layer), with
/// whom it stands for, so that it is looked up once.
#[derive(Clone)]
pub struct Authenticated(pub String, pub Principal);

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(MISSING)?;
    let value = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(invalid());
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        authenticate_once(state, parts.extensions.get::<Authenticated>(), token).await
    }
}

/// The caller a token stands for, looked up once per request: the principal the idempotency
/// layer found for this very token, or a look-up now.
pub async fn authenticate_once(
    state: &AppState,
    earlier: Option<&Authenticated>,
    token: &str,
) -> Result<Principal, ApiError> {
    match earlier {
        Some(Authenticated(t, p)) if t == token => Ok(p.clone()),
        _ => Ok(authenticate(state, token).await?),
    }
}
