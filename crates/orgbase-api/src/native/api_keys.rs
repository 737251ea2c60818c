//! `/api/admin/api-keys`: platform keys, managed by the platform. The secret is in the answer to
//! its creation and nowhere else, ever.
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use orgbase_domain::credential::parse_key_name;
use orgbase_domain::{ApiKey, ApiKeyId, KeyKind, OrganizationId, ValidationErrors};
use orgbase_store::KeyQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service;
use crate::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CreateApiKey {
    /// 1–100 characters, for people to tell keys apart.
    #[schema(required = true, value_type = String, max_length = 100, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "billing sync")]
    pub name: Field<String>,
    /// `platform`, or `partner` with the partner organization's id.
    #[schema(required = true, value_type = String, pattern = r"^(platform|partner)$", example = "platform")]
    pub kind: Field<String>,
    /// The partner organization, for a partner key.
    #[schema(value_type = Option<Uuid>)]
    pub organization_id: Field<String>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub kind: KeyKind,
    pub organization_id: Option<Uuid>,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A key just made: `key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    pub id: Uuid,
    pub name: String,
    pub kind: KeyKind,
    pub organization_id: Option<Uuid>,
    pub prefix: String,
    /// The secret. Store it now: it cannot be shown again.
    pub key: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyView>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.0,
            name: k.name,
            kind: k.kind,
            organization_id: k.organization_id.map(|o| o.0),
            prefix: k.prefix,
            created_at: rfc3339(&k.created_at),
            revoked_at: k.revoked_at.as_ref().map(rfc3339),
        }
    }
}

impl CreatedApiKey {
    fn of(key: ApiKey, plain: String) -> Self {
        Self {
            id: key.id.0,
            name: key.name,
            kind: key.kind,
            organization_id: key.organization_id.map(|o| o.0),
            prefix: key.prefix,
            key: plain,
            created_at: rfc3339(&key.created_at),
        }
    }
}

/// Create an API key (platform only): a platform key, or a partner key for an organization of
/// type partner (it acts on that partner and its children).
#[utoipa::path(
    post, path = "/api/admin/api-keys", operation_id = "createPlatformKey", tag = "Admin",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Key created; `key` is shown this once", body = CreatedApiKey),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body, mut errors): JsonBody<CreateApiKey>,
) -> Result<axum::response::Response, ApiError> {
    let admin = who.platform()?;
    let name = body
        .name
        .required("name", &mut errors)
        .and_then(|n| errors.check(parse_key_name("name", &n)));
    let kind = match body.kind.required("kind", &mut errors).as_deref() {
        Some("platform") => Some(KeyKind::Platform),
        Some("partner") => Some(KeyKind::Partner),
        None => None,
        Some(_) => {
            errors.add("kind", "invalid_value", "must be platform or partner");
            None
        }
    };
    let org = body
        .organization_id
        .nullable("organizationId", &mut errors)
        .flatten();
    let partner = match (kind, org) {
        (Some(KeyKind::Platform), Some(_)) => {
            errors.add(
                "organizationId",
                "invalid_value",
                "a platform key belongs to no organization",
            );
            None
        }
        (Some(KeyKind::Partner), None) => {
            errors.add(
                "organizationId",
                "required",
                "a partner key needs its partner organization",
            );
            None
        }
        (Some(KeyKind::Partner), Some(id)) => match id.parse::<OrganizationId>() {
            Ok(id) => match service::keys::partner_refusal(&state, &admin, id).await? {
                None => Some(id),
                // Right in form, wrong for what is stored: a code of its own.
                Some(why) => {
                    errors.add("organizationId", "not_partner", why);
                    None
                }
            },
            Err(_) => {
                errors.add("organizationId", "invalid_value", "must be a UUID");
                None
            }
        },
        _ => None,
    };
    errors.into_result()?;
    let (key, plain) =
        service::keys::create(&state, &admin, name.expect("validated"), partner).await?;
    Ok(crate::native::secret_answer(
        StatusCode::CREATED,
        Json(CreatedApiKey::of(key, plain)),
    ))
}

/// List API keys (platform only), without their secrets.
#[utoipa::path(
    get, path = "/api/admin/api-keys", operation_id = "listPlatformKeys", tag = "Admin",
    params(("includeRevoked" = Option<bool>, Query, description = "Include revoked keys")),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Json<ApiKeyList>, ApiError> {
    let admin = who.platform()?;
    let mut q = KeyQuery::default();
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
    let keys = service::keys::list(&state, &admin, &q).await?;
    Ok(Json(ApiKeyList {
        data: keys.into_iter().map(ApiKeyView::from).collect(),
    }))
}

/// Revoke an API key at once (platform only). The last active platform key cannot be revoked.
#[utoipa::path(
    delete, path = "/api/admin/api-keys/{keyId}", operation_id = "revokePlatformKey", tag = "Admin",
    params(("keyId" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last active platform key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let admin = who.platform()?;
    let id: ApiKeyId = id.parse().map_err(|_| ApiError::NotFound)?;
    service::keys::revoke(&state, &admin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
