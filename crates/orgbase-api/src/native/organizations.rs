//! `/api/organizations…`: the seed's organization routes and what a user of them needs next.
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orgbase_domain::{
    parse_avatar_url, parse_entitlements, parse_external_id, parse_kyc_level,
    parse_placement_group, parse_rate_limit, parse_recording_lifespan, parse_status_reason,
    CountryCode, Metadata, NewOrganization, OrgName, OrgStatus, OrgType, Organization,
    OrganizationId, OrganizationPatch, Slug, ValidationErrors,
};
use orgbase_store::{OrganizationQuery, StatusFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{nested, org_id, Field, JsonBody};
use crate::native::views::OrganizationView;
use crate::service::{self, etag, parse_etag, Creator, IfMatch};
use crate::AppState;
use orgbase_domain::people::parse_person_name;
use orgbase_domain::{Email, Permission, User, UserId};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The fields a client may write. On create, `name` and `countryCode` are required. Server-owned
/// fields (`id`, `owner`, `version`, timestamps, plan and billing state) are not among them: a
/// request naming one is refused as an unknown field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct OrganizationInput {
    /// At most 100 characters, at least one not blank (blanks at the ends are dropped).
    #[schema(value_type = String, max_length = 100, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "My Organization")]
    pub name: Field<String>,
    /// ISO 3166-1 alpha-2.
    #[schema(value_type = String, example = "US")]
    pub country_code: Field<String>,
    /// `[a-z0-9-]`, 3–48, unique; made from the name when not given.
    #[schema(value_type = String, pattern = r"^[a-z0-9-]{3,48}$", example = "my-organization")]
    pub slug: Field<String>,
    /// An `https` URL of at most 2048 characters, or null.
    #[schema(value_type = Option<String>, max_length = 2048, example = "https://example.com/avatar.png")]
    pub avatar_url: Field<String>,
    /// `active`, `inactive` or `suspended` (a suspension needs `statusReason`).
    #[schema(value_type = String, pattern = r"^(active|inactive|suspended)$", example = "active")]
    pub status: Field<String>,
    /// At most 500 characters.
    #[schema(value_type = Option<String>, max_length = 500, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "Violation of terms")]
    pub status_reason: Field<String>,
    /// `normal` (default) or `partner`.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = r"^(normal|partner)$", example = "normal")]
    pub org_type: Field<String>,
    /// The partner organization that owns this one.
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Field<String>,
    /// `{enabled, brandId, campaignId}`; enabling needs both ids (given or stored).
    #[schema(value_type = SmsInput)]
    pub sms: Field<Value>,
    #[schema(value_type = Option<String>, max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$", example = "AC_123")]
    pub external_account_id: Field<String>,
    #[schema(value_type = Option<String>, max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$")]
    pub external_billing_id: Field<String>,
    /// 0–3.
    #[schema(value_type = i64, minimum = 0, maximum = 3)]
    pub kyc_level: Field<i64>,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:-]{1,64}$", example = "shared")]
    pub placement_group: Field<String>,
    /// Requests per second for this organization's credentials (burst: twice that), overriding
    /// its plan's; `null` returns it to its plan's. Platform only.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100_000)]
    pub rate_limit: Field<i64>,
    /// The organization's own grants, on top of its plan's.
    #[schema(value_type = Vec<String>)]
    pub entitlements: Field<Vec<String>>,
    /// Given keys merge into the stored preferences.
    #[schema(value_type = PreferencesInput)]
    pub preferences: Field<Value>,
    /// Merged into the stored metadata; a key set to null is removed. At most 50 keys of
    /// `[A-Za-z0-9_.-]{1,64}`, values string, number or boolean, 8 KiB in all.
    #[schema(value_type = Object)]
    pub metadata: Field<Value>,
    /// The plan (platform or the organization's partner; after creation). A plan billed
    /// through a provider is set only on a subscribed organization, and changes at the
    /// provider first.
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "starter")]
    pub product_plan_id: Field<String>,
    /// A plan offered before checkout, or null (platform or the organization's partner).
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "pro")]
    pub offered_product_plan_id: Field<String>,
    /// On create by the platform: the owner's e-mail. A person without an account is invited to
    /// set a password. (With a session, the caller becomes the owner.) Ownership changes later
    /// only by a transfer.
    #[schema(value_type = String, max_length = 254, pattern = r#"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$"#, example = "owner@example.com")]
    pub owner_email: Field<String>,
    /// On create, with `ownerEmail`: the owner's name for a new account.
    #[schema(value_type = String, max_length = 100, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "Ann Owner")]
    pub owner_name: Field<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SmsInput {
    #[schema(value_type = bool)]
    pub enabled: Field<bool>,
    #[schema(value_type = Option<String>)]
    pub brand_id: Field<String>,
    #[schema(value_type = Option<String>)]
    pub campaign_id: Field<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PreferencesInput {
    #[schema(value_type = bool)]
    pub use_platform_url: Field<bool>,
    /// 1–1825, or -1 for no limit.
    #[schema(value_type = Option<i64>)]
    pub recording_lifespan_days: Field<i64>,
}

fn parse_with<T, U>(
    v: Option<T>,
    errors: &mut ValidationErrors,
    f: impl FnOnce(T) -> Result<U, orgbase_domain::FieldError>,
) -> Option<U> {
    v.and_then(|v| errors.check(f(v)))
}

/// `Some(None)` stays a clear; `Some(Some(v))` is parsed.
fn parse_nullable<T, U>(
    v: Option<Option<T>>,
    errors: &mut ValidationErrors,
    f: impl FnOnce(T) -> Result<U, orgbase_domain::FieldError>,
) -> Option<Option<U>> {
    match v? {
        None => Some(None),
        Some(v) => errors.check(f(v)).map(Some),
    }
}

impl OrganizationInput {
    /// Every field's own checks; what spans fields is the domain's.
    fn into_patch(self, errors: &mut ValidationErrors) -> (OrganizationPatch, Option<OrgType>) {
        let e = errors;
        let mut p = OrganizationPatch {
            name: parse_with(self.name.optional("name", e), e, |v| {
                OrgName::parse("name", &v)
            }),
            country_code: parse_with(self.country_code.optional("countryCode", e), e, |v| {
                CountryCode::parse("countryCode", &v)
            }),
            slug: parse_with(self.slug.optional("slug", e), e, |v| {
                Slug::parse("slug", &v)
            }),
            avatar_url: parse_nullable(self.avatar_url.nullable("avatarUrl", e), e, |v| {
                parse_avatar_url("avatarUrl", &v)
            }),
            status: parse_with(self.status.optional("status", e), e, |v| {
                OrgStatus::parse(&v).ok_or_else(|| {
                    let m = if v == "deleted" {
                        "use DELETE to delete an organization"
                    } else {
                        "must be one of active, inactive, suspended"
                    };
                    orgbase_domain::FieldError::new("status", "invalid_value", m)
                })
            }),
            status_reason: parse_nullable(self.status_reason.nullable("statusReason", e), e, |v| {
                parse_status_reason("statusReason", &v)
            }),
            org_type: parse_with(self.org_type.optional("type", e), e, |v| {
                OrgType::parse(&v).ok_or_else(|| {
                    orgbase_domain::FieldError::new(
                        "type",
                        "invalid_value",
                        "must be normal or partner",
                    )
                })
            }),
            parent_id: parse_nullable(self.parent_id.nullable("parentId", e), e, |v| {
                v.parse::<OrganizationId>().map_err(|_| {
                    orgbase_domain::FieldError::new("parentId", "invalid_value", "must be a UUID")
                })
            }),
            external_account_id: parse_nullable(
                self.external_account_id.nullable("externalAccountId", e),
                e,
                |v| parse_external_id("externalAccountId", &v),
            ),
            external_billing_id: parse_nullable(
                self.external_billing_id.nullable("externalBillingId", e),
                e,
                |v| parse_external_id("externalBillingId", &v),
            ),
            kyc_level: parse_with(self.kyc_level.optional("kycLevel", e), e, |v| {
                parse_kyc_level("kycLevel", v)
            }),
            placement_group: parse_with(
                self.placement_group.optional("placementGroup", e),
                e,
                |v| parse_placement_group("placementGroup", &v),
            ),
            rate_limit: parse_nullable(self.rate_limit.nullable("rateLimit", e), e, |v| {
                parse_rate_limit("rateLimit", v)
            }),
            entitlements: parse_with(self.entitlements.optional("entitlements", e), e, |v| {
                parse_entitlements("entitlements", v)
            }),
            product_plan_id: parse_with(
                self.product_plan_id.optional("productPlanId", e),
                e,
                |v| orgbase_domain::plan::parse_plan_id("productPlanId", &v),
            ),
            offered_product_plan_id: parse_nullable(
                self.offered_product_plan_id
                    .nullable("offeredProductPlanId", e),
                e,
                |v| orgbase_domain::plan::parse_plan_id("offeredProductPlanId", &v),
            ),
            ..Default::default()
        };
        if let Some(Some(sms)) = nested::<SmsInput>(self.sms, "sms", e, false) {
            p.sms_enabled = sms.enabled.optional("sms.enabled", e);
            p.sms_brand_id = parse_nullable(sms.brand_id.nullable("sms.brandId", e), e, |v| {
                parse_external_id("sms.brandId", &v)
            });
            p.sms_campaign_id =
                parse_nullable(sms.campaign_id.nullable("sms.campaignId", e), e, |v| {
                    parse_external_id("sms.campaignId", &v)
                });
        }
        if let Some(Some(pref)) =
            nested::<PreferencesInput>(self.preferences, "preferences", e, false)
        {
            p.use_platform_url = pref
                .use_platform_url
                .optional("preferences.usePlatformUrl", e);
            p.recording_lifespan_days = parse_nullable(
                pref.recording_lifespan_days
                    .nullable("preferences.recordingLifespanDays", e),
                e,
                |v| parse_recording_lifespan("preferences.recordingLifespanDays", v),
            );
        }
        if let Some(meta) = self.metadata.optional("metadata", e) {
            match meta {
                Value::Object(obj) => {
                    let mut m = BTreeMap::new();
                    for (k, v) in obj {
                        if v.is_null() {
                            m.insert(k, None);
                        } else if e.check(Metadata::check_entry("metadata", &k, &v)).is_some() {
                            m.insert(k, Some(v));
                        }
                    }
                    p.metadata = Some(m);
                }
                _ => e.add("metadata", "invalid_type", "must be an object"),
            }
        }
        let t = p.org_type;
        (p, t)
    }
}

async fn org_response(
    state: &AppState,
    status: StatusCode,
    org: Organization,
    location: bool,
) -> Result<Response, ApiError> {
    let id = org.id;
    let tag = etag(org.version);
    let plan = service::plan_terms(state, &org.product_plan_id).await?;
    let mut res = (status, Json(OrganizationView::new(org, &plan))).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    if location {
        if let Ok(v) = HeaderValue::from_str(&format!("/api/organizations/{id}")) {
            h.insert(header::LOCATION, v);
        }
    }
    Ok(res)
}

fn if_match(headers: &HeaderMap) -> Option<IfMatch> {
    headers
        .get(header::IF_MATCH)
        .map(|v| IfMatch::parse(v.to_str().unwrap_or("\"invalid\"")))
}

/// Create an organization.
#[utoipa::path(
    post, path = "/api/organizations", operation_id = "createOrganization", tag = "Organizations",
    request_body = OrganizationInput,
    responses(
        (status = 201, description = "Organization created", body = OrganizationView,
         headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The slug is taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body, mut errors): JsonBody<OrganizationInput>,
) -> Result<Response, ApiError> {
    let owner_email = body.owner_email.clone().optional("ownerEmail", &mut errors);
    let owner_name = body.owner_name.clone().optional("ownerName", &mut errors);
    let named_owner = |errors: &mut ValidationErrors| {
        owner_email
            .clone()
            .and_then(|e| errors.check(Email::parse("ownerEmail", &e)))
            .map(|email| {
                let name = owner_name
                    .clone()
                    .and_then(|n| errors.check(parse_person_name("ownerName", &n)))
                    .unwrap_or_else(|| email.as_str().split('@').next().unwrap_or("").into());
                let t = orgbase_domain::now();
                User {
                    id: UserId::new(),
                    email,
                    name,
                    password_hash: None,
                    created_at: t,
                    updated_at: t,
                }
            })
    };
    let mut body = body;
    let creator = match &who {
        Principal::Platform { .. } => Creator::Platform(who.platform()?, named_owner(&mut errors)),
        Principal::Partner { partner_id, .. } => {
            // A partner creates its own children: the parent is the partner, whatever is given.
            match body.parent_id.clone().nullable("parentId", &mut errors) {
                Some(Some(p)) if p.parse::<OrganizationId>().ok() != Some(*partner_id) => errors
                    .add(
                        "parentId",
                        "invalid_parent",
                        "a partner creates its own children only",
                    ),
                _ => {}
            }
            body.parent_id = Field::Value(partner_id.to_string());
            Creator::Partner(*partner_id, named_owner(&mut errors))
        }
        Principal::User { user_id, .. } => {
            // Who may name an owner depends on the credential, not the body: a 403, as PATCH
            // answers for a field the caller may not set.
            if owner_email.is_some() || owner_name.is_some() {
                return Err(ApiError::Forbidden(
                    "you become the owner of what you create; transfer ownership later".into(),
                ));
            }
            Creator::Person(*user_id)
        }
        Principal::OrgKey { .. } => {
            return Err(ApiError::Forbidden(
                "an organization key cannot create organizations".into(),
            ))
        }
    };
    for (given, field) in [
        (
            !matches!(body.product_plan_id, Field::Absent),
            "productPlanId",
        ),
        (
            !matches!(body.offered_product_plan_id, Field::Absent),
            "offeredProductPlanId",
        ),
    ] {
        if given {
            errors.add(
                field,
                "not_allowed",
                "an organization starts on starter; set or offer a plan with PATCH",
            );
        }
    }
    let name = body.name.clone().required("name", &mut errors);
    let country = body
        .country_code
        .clone()
        .required("countryCode", &mut errors);
    // The required ones are checked above; the patch re-reads them only as optional.
    let body = OrganizationInput {
        name: Field::Absent,
        country_code: Field::Absent,
        owner_email: Field::Absent,
        owner_name: Field::Absent,
        product_plan_id: Field::Absent,
        offered_product_plan_id: Field::Absent,
        ..body
    };
    let (rest, org_type) = body.into_patch(&mut errors);
    // What only the platform decides is not set at creation by anyone else either. A partner
    // may create a child switched off (status inactive), but not suspended, nor of another type.
    let mut reserved = service::platform_only_fields(&rest);
    if let Principal::Partner { .. } = &who {
        reserved.retain(|f| !matches!(*f, "status" | "statusReason" | "parentId"));
        if rest.status == Some(OrgStatus::Suspended) {
            reserved.push("status");
        }
    }
    if org_type.is_some()
        && !matches!(who, Principal::Platform { .. })
        && !reserved.contains(&"type")
    {
        reserved.push("type");
    }
    if !matches!(who, Principal::Platform { .. }) && !reserved.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "only the platform may set {}",
            reserved.join(", ")
        )));
    }
    let name = name.and_then(|n| errors.check(OrgName::parse("name", &n)));
    let country = country.and_then(|c| errors.check(CountryCode::parse("countryCode", &c)));
    let (Some(name), Some(country_code)) = (name, country) else {
        return Err(errors.into());
    };
    let new = NewOrganization {
        name,
        slug: rest.slug.clone(),
        country_code,
        org_type: org_type.unwrap_or(OrgType::Normal),
        parent_id: rest.parent_id.flatten(),
        owner: None,
        rest,
    };
    let (org, _) = service::create(&state, &who, creator, new, errors).await?;
    tracing::info!(organization_id = %org.id, actor = %who.actor(), "organization created");
    org_response(&state, StatusCode::CREATED, org, true).await
}

/// Get an organization by id.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}", operation_id = "getOrganization", tag = "Organizations",
    params(("organizationId" = Uuid, Path, description = "The organization ID")),
    responses(
        (status = 200, description = "Organization found", body = OrganizationView, headers(("ETag" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let org = service::load_with(&state, &who, org_id(&id)?, Permission::OrgRead)
        .await?
        .org;
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| parse_etag(t.trim(), true) == Some(org.version))
        });
    if unchanged {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag(org.version)) {
            res.headers_mut().insert(header::ETAG, v);
        }
        return Ok(res);
    }
    org_response(&state, StatusCode::OK, org, false).await
}

/// Update an organization's details. Only the fields given change.
#[utoipa::path(
    patch, path = "/api/organizations/{organizationId}", operation_id = "updateOrganization", tag = "Organizations",
    params(
        ("organizationId" = Uuid, Path, description = "The organization ID"),
        ("If-Match" = Option<String>, Header, description = "Apply only if the ETag still matches"),
    ),
    request_body = OrganizationInput,
    responses(
        (status = 200, description = "Organization updated", body = OrganizationView, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Slug taken, or the organization is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not match", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body, mut errors): JsonBody<OrganizationInput>,
) -> Result<Response, ApiError> {
    let id = org_id(&id)?;
    for (given, field) in [
        (!matches!(body.owner_email, Field::Absent), "ownerEmail"),
        (!matches!(body.owner_name, Field::Absent), "ownerName"),
    ] {
        if given {
            errors.add(
                field,
                "unknown_field",
                "is taken only on create; ownership moves by a transfer",
            );
        }
    }
    let (patch, _) = body.into_patch(&mut errors);
    if !errors.is_empty() {
        // Reach first: a credential from elsewhere learns nothing from validation errors.
        service::load(&state, &who, id).await?;
        return Err(errors.into());
    }
    let (before, org) = service::update(&state, &who, id, patch, if_match(&headers)).await?;
    // An uploaded avatar replaced by a URL of the caller's: its files go.
    state.avatars.forget_replaced(
        &state,
        id,
        before.avatar_url.as_deref(),
        org.avatar_url.as_deref(),
    );
    org_response(&state, StatusCode::OK, org, false).await
}

/// Delete an organization (soft: restorable by the platform).
#[utoipa::path(
    delete, path = "/api/organizations/{organizationId}", operation_id = "deleteOrganization", tag = "Organizations",
    params(
        ("organizationId" = Uuid, Path, description = "The organization ID"),
        ("If-Match" = Option<String>, Header, description = "Delete only if the ETag still matches"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not match", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    service::delete(&state, &who, org_id(&id)?, if_match(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restore a soft-deleted organization (platform only).
#[utoipa::path(
    post, path = "/api/admin/organizations/{organizationId}/restore", operation_id = "restoreOrganization", tag = "Admin",
    params(("organizationId" = Uuid, Path, description = "The organization ID")),
    responses(
        (status = 200, description = "Restored, with the status it had", body = OrganizationView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn restore(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let admin = who.platform()?;
    let org = service::restore(&state, &admin, &who, org_id(&id)?).await?;
    org_response(&state, StatusCode::OK, org, false).await
}

/// A page of organizations, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationPage {
    pub data: Vec<OrganizationView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn encode_cursor(id: OrganizationId) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

fn decode_cursor(s: &str) -> Option<OrganizationId> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// Parses the list's query string; every unknown or invalid parameter is reported.
pub fn parse_list_query(raw: Option<&str>) -> Result<OrganizationQuery, ApiError> {
    let mut q = OrganizationQuery {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    let mut e = ValidationErrors::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if v.contains('\0') {
            e.add(
                k.as_ref(),
                "invalid_characters",
                "must not contain NUL characters",
            );
            continue;
        }
        match k.as_ref() {
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                _ => e.add(
                    "limit",
                    "out_of_range",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                ),
            },
            "cursor" => match decode_cursor(&v) {
                Some(id) => q.before = Some(id),
                None => e.add(
                    "cursor",
                    "invalid_cursor",
                    "is not a cursor this API gave out",
                ),
            },
            "status" => match v.as_ref() {
                "deleted" => q.status = Some(StatusFilter::Deleted),
                s => match OrgStatus::parse(s) {
                    Some(s) => q.status = Some(StatusFilter::Is(s)),
                    None => e.add(
                        "status",
                        "invalid_value",
                        "must be one of active, inactive, suspended, deleted",
                    ),
                },
            },
            "type" => match OrgType::parse(&v) {
                Some(t) => q.org_type = Some(t),
                None => e.add("type", "invalid_value", "must be normal or partner"),
            },
            "parentId" => match v.parse::<OrganizationId>() {
                Ok(id) => q.parent_id = Some(id),
                Err(_) => e.add("parentId", "invalid_value", "must be a UUID"),
            },
            "q" => {
                let t = orgbase_domain::validation::trim_pattern_space(&v);
                if t.chars().count() < 3 || t.chars().count() > 100 {
                    e.add("q", "invalid_length", "must be 3–100 characters");
                } else {
                    q.q = Some(t.to_owned());
                }
            }
            "externalAccountId" => q.external_account_id = Some(v.into_owned()),
            "includeDeleted" => match v.as_ref() {
                "true" => q.include_deleted = true,
                "false" => q.include_deleted = false,
                _ => e.add("includeDeleted", "invalid_value", "must be true or false"),
            },
            other => match other
                .strip_prefix("metadata[")
                .and_then(|r| r.strip_suffix(']'))
            {
                Some(key) if Metadata::is_valid_key(key) => {
                    q.metadata.push((key.to_owned(), v.into_owned()))
                }
                Some(_) => e.add(other, "invalid_key", "is not a valid metadata key"),
                None => e.add(
                    other,
                    "unknown_parameter",
                    "is not a parameter of this list",
                ),
            },
        }
    }
    e.into_result()?;
    Ok(q)
}

/// List organizations (platform), newest first, cursor-paged and filtered.
#[utoipa::path(
    get, path = "/api/organizations", operation_id = "listOrganizations", tag = "Organizations",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("status" = Option<String>, Query, description = "active, inactive, suspended or deleted"),
        ("type" = Option<String>, Query, description = "normal or partner"),
        ("parentId" = Option<Uuid>, Query, description = "Children of this partner"),
        ("q" = Option<String>, Query, min_length = 3, max_length = 100, description = "Case-insensitive substring of the name or slug, 3–100 characters"),
        ("externalAccountId" = Option<String>, Query),
        ("includeDeleted" = Option<bool>, Query, description = "Include soft-deleted organizations"),
        ("metadata[key]" = Option<String>, Query, description = "Metadata `key` equals the value; repeatable"),
    ),
    responses(
        (status = 200, description = "A page of organizations", body = OrganizationPage),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Json<OrganizationPage>, ApiError> {
    let q = parse_list_query(raw.as_deref())?;
    let limit = q.limit as usize;
    let mut rows = service::list(
        &state,
        &who,
        OrganizationQuery {
            limit: q.limit + 1,
            ..q
        },
    )
    .await?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|o| encode_cursor(o.id))
    } else {
        None
    };
    Ok(Json(OrganizationPage {
        data: views(&state, rows).await?,
        next_cursor,
    }))
}

/// The views of a page of organizations, each plan's entitlements read once.
async fn views(
    state: &AppState,
    rows: Vec<Organization>,
) -> Result<Vec<OrganizationView>, ApiError> {
    let mut plans: std::collections::HashMap<String, service::PlanTerms> = Default::default();
    let mut out = Vec::with_capacity(rows.len());
    for o in rows {
        if !plans.contains_key(&o.product_plan_id) {
            let terms = service::plan_terms(state, &o.product_plan_id).await?;
            plans.insert(o.product_plan_id.clone(), terms);
        }
        let terms = &plans[&o.product_plan_id];
        out.push(OrganizationView::new(o, terms));
    }
    Ok(out)
}
