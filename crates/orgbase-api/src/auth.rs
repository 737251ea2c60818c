//! Who is calling. The extractor turns the `Authorization: Bearer` credential into a
//! [`Principal`]; handlers then ask the principal for the access they need, and the services
//! take those access values, so an unchecked call does not compile.
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use orgbase_domain::{ApiKeyId, KeyKind, Organization, SecretHash};

use crate::error::ApiError;
use crate::AppState;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator, by a platform key: everything.
    Platform { key_id: ApiKeyId },
    // Partner keys, organization keys and user sessions slot in here, each with the rules of
    // what it may reach in `can_reach` and its permissions in the services.
}

/// Proof that the caller is the platform operator, needed by `/api/admin/…` services.
#[derive(Debug, Clone, Copy)]
pub struct PlatformAdmin {
    pub key_id: ApiKeyId,
}

/// Proof that the caller may act on one organization.
#[derive(Debug)]
pub struct OrgAccess<'a> {
    pub principal: &'a Principal,
    pub org: Organization,
}

const MISSING: ApiError = ApiError::Unauthorized {
    code: "missing_credentials",
    detail: "send a key as `Authorization: Bearer <key>`",
};
const INVALID: ApiError = ApiError::Unauthorized {
    code: "invalid_credentials",
    detail: "the credential is not valid",
};
const REVOKED: ApiError = ApiError::Unauthorized {
    code: "revoked_credentials",
    detail: "the credential has been revoked",
};

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(MISSING)?;
    let value = value.to_str().map_err(|_| INVALID)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(INVALID)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(INVALID);
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let key = state
            .store
            .find_api_key(&SecretHash::of(token))
            .await?
            .ok_or(INVALID)?;
        if !key.is_active() {
            return Err(REVOKED);
        }
        match key.kind {
            KeyKind::Platform => Ok(Principal::Platform { key_id: key.id }),
            // No route issues these yet; until their rules exist they open nothing.
            KeyKind::Partner | KeyKind::Organization => Err(INVALID),
        }
    }
}

impl Principal {
    pub fn platform(&self) -> Result<PlatformAdmin, ApiError> {
        match self {
            Principal::Platform { key_id } => Ok(PlatformAdmin { key_id: *key_id }),
        }
    }

    /// Whether the organization is within this caller's reach at all. Outside it, the answer is
    /// 404, never 403, so that nothing learns what exists beyond its reach.
    fn can_reach(&self, _org: &Organization) -> bool {
        match self {
            Principal::Platform { .. } => true,
        }
    }

    /// Soft-deleted organizations exist only for the platform.
    fn sees_deleted(&self) -> bool {
        matches!(self, Principal::Platform { .. })
    }

    /// Access to an organization the caller may reach, or 404.
    pub fn access(&self, org: Organization) -> Result<OrgAccess<'_>, ApiError> {
        if !self.can_reach(&org) || (org.is_deleted() && !self.sees_deleted()) {
            return Err(ApiError::NotFound);
        }
        Ok(OrgAccess {
            principal: self,
            org,
        })
    }

    /// A label for logs: which key acted.
    pub fn actor(&self) -> String {
        match self {
            Principal::Platform { key_id } => format!("key:{key_id}"),
        }
    }
}
