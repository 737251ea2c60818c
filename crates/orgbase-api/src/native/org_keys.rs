//! `/api/organizations/{organizationId}/api-keys`: an organization's own keys, each acting with
//! the roles it was given (never more than its creator holds). The secret is in the answer to
//! its creation and nowhere else, ever.
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use orgbase_domain::credential::parse_key_name;
use orgbase_domain::{ApiKey, ApiKeyId, KeyKind, OrgType, Permission, ValidationErrors};
use orgbase_store::KeyQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::extract::{Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service;
use crate::service::roles::checked_roles;
use crate::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct CreateOrgKey {
    /// 1–100 characters, for people to tell keys apart.
    #[schema(required = true, value_type = String, max_length = 100, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "crm sync")]
    pub name: Field<String>,
    /// Role ids the key acts with (at least one; not the owner role).
    #[schema(required = true, value_type = Vec<i64>, min_items = 1, example = json!([5]))]
    pub roles: Field<Vec<i64>>,
    /// `organization` (default), or `partner` on an organization of type partner: the key then
    /// acts for the partner on itself and its children (its roles are not used).
    #[schema(value_type = String, pattern = r"^(organization|partner)$", example = "organization")]
    pub scope: Field<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgKeyView {
    pub id: Uuid,
    pub name: String,
    pub kind: KeyKind,
    pub organization_id: Option<Uuid>,
    pub roles: Vec<i64>,
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for OrgKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.0,
            name: k.name,
            kind: k.kind,
            organization_id: k.organization_id.map(|o| o.0),
            roles: k.roles,
            prefix: k.prefix,
            created_at: rfc3339(&k.created_at),
            revoked_at: k.revoked_at.as_ref().map(rfc3339),
        }
    }
}

/// A key just made: `key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedOrgKey {
    pub id: Uuid,
    pub name: String,
    pub kind: KeyKind,
    pub organization_id: Option<Uuid>,
    pub roles: Vec<i64>,
    pub prefix: String,
    /// The secret. Store it now: it cannot be shown again.
    pub key: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgKeyList {
    pub data: Vec<OrgKeyView>,
}

/// Create an organization key.
#[utoipa::path(
    post, path = "/api/organizations/{organizationId}/api-keys", operation_id = "createOrganizationKey", tag = "Keys",
    params(("organizationId" = Uuid, Path)),
    request_body = CreateOrgKey,
    responses(
        (status = 201, description = "Key created; `key` is shown this once", body = CreatedOrgKey),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks keys:manage, or would grant more than the caller holds", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body, mut errors): JsonBody<CreateOrgKey>,
) -> Result<axum::response::Response, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::KeysManage).await?;
    let org = access.org.id;
    let e = &mut errors;
    let name = body
        .name
        .required("name", e)
        .and_then(|n| e.check(parse_key_name("name", &n)));
    let roles = body.roles.required("roles", e);
    let roles = checked_roles(&state, org, "roles", roles, false, e).await?;
    let mut kind = KeyKind::Organization;
    match body.scope.optional("scope", e).as_deref() {
        None | Some("organization") => {}
        // Right in form, wrong for this organization: a code of its own.
        Some("partner") if access.org.org_type != OrgType::Partner => e.add(
            "scope",
            "not_partner",
            "partner scope is only for organizations of type partner",
        ),
        Some("partner") => kind = KeyKind::Partner,
        Some(_) => e.add("scope", "invalid_value", "must be organization or partner"),
    }
    errors.clone().into_result()?;
    let (Some(name), Some(roles)) = (name, roles) else {
        return Err(errors.into());
    };
    let (key, plain) = service::keys::create_org_key(&state, &access, name, roles, kind).await?;
    Ok(crate::native::secret_answer(
        StatusCode::CREATED,
        Json(CreatedOrgKey {
            id: key.id.0,
            name: key.name,
            kind: key.kind,
            organization_id: Some(org.0),
            roles: key.roles,
            prefix: key.prefix,
            key: plain,
            created_at: rfc3339(&key.created_at),
        }),
    ))
}

/// List an organization's keys, without their secrets.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/api-keys", operation_id = "listOrganizationKeys", tag = "Keys",
    params(
        ("organizationId" = Uuid, Path),
        ("includeRevoked" = Option<bool>, Query, description = "Include revoked keys"),
    ),
    responses(
        (status = 200, description = "The keys", body = OrgKeyList),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks keys:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<OrgKeyList>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::KeysManage).await?;
    let mut q = KeyQuery {
        organization_id: Some(access.org.id),
        ..Default::default()
    };
    let mut e = ValidationErrors::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("includeRevoked", "true") => q.include_revoked = true,
            ("includeRevoked", "false") => q.include_revoked = false,
            ("includeRevoked", _) => {
                e.add("includeRevoked", "invalid_value", "must be true or false")
            }
            (other, _) => e.add(
                other,
                "unknown_parameter",
                "is not a parameter of this list",
            ),
        }
    }
    e.into_result()?;
    let keys = service::keys::list_org_keys(&state, &access, q.include_revoked).await?;
    Ok(Json(OrgKeyList {
        data: keys.into_iter().map(OrgKeyView::from).collect(),
    }))
}

/// Revoke one of the organization's keys at once.
#[utoipa::path(
    delete, path = "/api/organizations/{organizationId}/api-keys/{keyId}", operation_id = "revokeOrganizationKey", tag = "Keys",
    params(("organizationId" = Uuid, Path), ("keyId" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks keys:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::KeysManage).await?;
    let key_id: ApiKeyId = key.parse().map_err(|_| ApiError::NotFound)?;
    service::keys::revoke_org_key(&state, &access, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
