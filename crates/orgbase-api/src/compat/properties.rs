//! The properties API, exactly as `seeds/002_984e239e5bee0639.txt` documents it:
//! `PATCH /v1/orgs/{org_id}/properties` with `{"updates": {...}}`, all or nothing.
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use orgbase_domain::{
    parse_recording_lifespan, OrgName, OrgStatus, Organization, OrganizationId, OrganizationPatch,
    Permission,
};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::auth::{authenticate_once, Authenticated, Principal};
use crate::error::ApiError;
use crate::service;
use crate::AppState;

/// The organization as the properties API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgProperties {
    pub id: String,
    pub org_slug: String,
    pub org_display_name: String,
    pub org_image_url: Option<String>,
    pub org_plan: String,
    /// ISO 8601 with milliseconds, UTC.
    pub org_creation_date: String,
    pub kyc_level: i16,
    pub placement_group: String,
    pub is_deleted: bool,
    pub is_stripe_overdue: bool,
    pub is_suspended: bool,
    pub org_rate_limit: i32,
    pub org_type: String,
    /// The plan's entitlements and the organization's own.
    pub entitlements: Vec<String>,
    #[schema(value_type = Object)]
    pub preferences: Value,
}

/// One failure: a stable code and a sentence.
#[derive(Debug, Serialize, ToSchema)]
pub struct PropertyError {
    pub error: String,
    pub message: String,
}

/// `{data, errors}`: data on success (errors null), errors on failure (data null).
#[derive(Debug, Serialize, ToSchema)]
pub struct PropertiesAnswer {
    pub data: Option<OrgProperties>,
    pub errors: Option<Vec<PropertyError>>,
}

fn fail(status: StatusCode, errors: Vec<(&str, String)>) -> Response {
    let errors = errors
        .into_iter()
        .map(|(e, m)| PropertyError {
            error: e.to_owned(),
            message: m,
        })
        .collect();
    (
        status,
        Json(PropertiesAnswer {
            data: None,
            errors: Some(errors),
        }),
    )
        .into_response()
}

fn one(status: StatusCode, code: &str, message: &str) -> Response {
    fail(status, vec![(code, message.to_owned())])
}

/// Any other error (the store unavailable, an internal failure, a version conflict), in this
/// surface's shape, its code the native one in capitals.
pub(crate) fn one_error(e: ApiError) -> Response {
    e.into_response_shaped(|status, code, detail| one(status, &code.to_ascii_uppercase(), &detail))
}

/// The placement group as the document names it: its default, `blandshared`, is this
/// platform's `shared` (as `use_bland_url` is `usePlatformUrl`); any other passes as it is.
fn placement_group(group: String) -> String {
    if group == orgbase_domain::DEFAULT_PLACEMENT_GROUP {
        "blandshared".to_owned()
    } else {
        group
    }
}

pub async fn properties_of(state: &AppState, o: Organization) -> Result<OrgProperties, ApiError> {
    let plan = service::plan_terms(state, &o.product_plan_id).await?;
    let entitlements = o.entitlements_with(&plan.entitlements);
    let rate_limit = o.rate_limit_with(plan.rate_limit).per_second;
    let mut preferences = json!({"use_bland_url": o.preferences.use_platform_url});
    if let Some(d) = o.preferences.recording_lifespan_days {
        preferences["recording_lifespan_days"] = json!(d);
    }
    Ok(OrgProperties {
        id: o.id.to_string(),
        org_slug: o.slug,
        org_display_name: o.name,
        org_image_url: o.avatar_url,
        org_plan: o.product_plan_id,
        org_creation_date: o.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        kyc_level: o.kyc_level,
        placement_group: placement_group(o.placement_group),
        is_deleted: o.deleted_at.is_some(),
        is_stripe_overdue: o.billing_overdue,
        is_suspended: o.status == OrgStatus::Suspended,
        org_rate_limit: rate_limit,
        org_type: o.org_type.as_str().to_owned(),
        entitlements,
        preferences,
    })
}

/// Checks `updates` whole: the change it makes, or every error in it.
/// A JSON number that is a whole number, also when written with a point (`30.0`), as JSON
/// Schema's `integer` is.
fn whole_number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
            .map(|f| f as i64)
    })
}

fn parse_updates(body: &Bytes) -> Result<OrganizationPatch, Vec<(&'static str, String)>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| vec![("INVALID_JSON", format!("the body is not valid JSON: {e}"))])?;
    let Value::Object(mut top) = value else {
        return Err(vec![(
            "INVALID_BODY",
            "the body must be a JSON object".into(),
        )]);
    };
    let mut errors = Vec::new();
    let updates = top.remove("updates");
    for k in top.keys() {
        errors.push((
            "INVALID_BODY",
            format!("{k:?} is not a field of this request; send {{\"updates\": {{...}}}}"),
        ));
    }
    let updates: Map<String, Value> = match updates {
        Some(Value::Object(m)) => m,
        Some(_) => {
            errors.push(("INVALID_UPDATES", "updates must be an object".into()));
            return Err(errors);
        }
        None => {
            errors.push(("MISSING_UPDATES", "updates is required".into()));
            return Err(errors);
        }
    };
    let mut patch = OrganizationPatch::default();
    for (k, v) in updates {
        match k.as_str() {
            "org_display_name" => match v.as_str() {
                // At most 30 characters as sent, one or more after trimming.
                Some(s) if !s.trim().is_empty() && s.chars().count() <= 30 => {
                    match OrgName::parse("org_display_name", s) {
                        Ok(n) => patch.name = Some(n),
                        Err(e) => errors.push(("INVALID_ORG_DISPLAY_NAME", e.message)),
                    }
                }
                Some(_) => errors.push((
                    "INVALID_ORG_DISPLAY_NAME",
                    "org_display_name must be between 1 and 30 characters".into(),
                )),
                None => errors.push((
                    "INVALID_ORG_DISPLAY_NAME",
                    "org_display_name must be a string".into(),
                )),
            },
            "preferences" => match v {
                Value::Object(prefs) => {
                    for (pk, pv) in prefs {
                        match pk.as_str() {
                            "use_bland_url" => match pv.as_bool() {
                                Some(b) => patch.use_platform_url = Some(b),
                                None => errors.push((
                                    "INVALID_PREFERENCE",
                                    "preferences.use_bland_url must be a boolean".into(),
                                )),
                            },
                            "recording_lifespan_days" => match whole_number(&pv) {
                                Some(d) => match parse_recording_lifespan(
                                    "preferences.recording_lifespan_days",
                                    d,
                                ) {
                                    Ok(d) => patch.recording_lifespan_days = Some(Some(d)),
                                    Err(_) => errors.push((
                                        "INVALID_PREFERENCE",
                                        "preferences.recording_lifespan_days must be between 1 \
                                         and 1825, or -1 to disable retention"
                                            .into(),
                                    )),
                                },
                                None => errors.push((
                                    "INVALID_PREFERENCE",
                                    "preferences.recording_lifespan_days must be an integer".into(),
                                )),
                            },
                            other => errors.push((
                                "INVALID_PREFERENCE_KEY",
                                format!("{other:?} is not a preference"),
                            )),
                        }
                    }
                }
                _ => errors.push((
                    "INVALID_PREFERENCES",
                    "preferences must be an object".into(),
                )),
            },
            other => errors.push((
                "INVALID_KEY",
                format!("{other:?} is not a property; valid keys: org_display_name, preferences"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

/// Update Organization Properties.
///
/// The `authorization` header carries the key, with or without `Bearer `. Any invalid key or
/// value: 400 with every error, and nothing applied.
#[utoipa::path(
    patch, path = "/v1/orgs/{org_id}/properties", operation_id = "updateOrganizationProperties", tag = "Properties",
    params(
        ("org_id" = String, Path, description = "The unique identifier of the organization."),
        ("authorization" = String, Header, description = "Your API key for authentication."),
    ),
    request_body(content = Object, description = "{\"updates\": {\"org_display_name\"?: string (1–30), \"preferences\"?: {\"use_bland_url\"?: bool, \"recording_lifespan_days\"?: 1–1825 or -1}}}"),
    responses(
        (status = 200, description = "The updated organization properties", body = PropertiesAnswer),
        (status = 400, description = "Invalid keys or values; nothing applied", body = PropertiesAnswer),
        (status = 401, description = "Missing or invalid key", body = PropertiesAnswer),
        (status = 403, description = "The key may not update this organization", body = PropertiesAnswer),
        (status = 404, description = "No such organization within reach", body = PropertiesAnswer),
        (status = 429, description = "Over the rate limit of the key's organization (`RATE_LIMITED`), with `Retry-After`; nothing applied", body = PropertiesAnswer),
    )
)]
pub async fn update_properties(
    State(state): State<AppState>,
    earlier: Option<axum::Extension<Authenticated>>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(raw) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return one(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "the authorization header is required",
        );
    };
    let raw = raw.trim();
    let token = match raw.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => raw,
    };
    if token.is_empty() {
        return one(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "the authorization header is required",
        );
    }
    let who: Principal = match authenticate_once(&state, earlier.as_deref(), token).await {
        Ok(p) => p,
        Err(ApiError::Unauthorized { detail, .. }) => {
            return one(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", detail)
        }
        Err(e) => return one_error(e),
    };
    let Ok(id) = org_id.parse::<OrganizationId>() else {
        return one(StatusCode::NOT_FOUND, "NOT_FOUND", "no such organization");
    };
    match apply(&state, &who, id, &body).await {
        Ok(r) => r,
        Err(ApiError::NotFound) => one(StatusCode::NOT_FOUND, "NOT_FOUND", "no such organization"),
        Err(ApiError::Forbidden(m)) => one(StatusCode::FORBIDDEN, "FORBIDDEN", &m),
        Err(ApiError::Conflict { detail, .. }) => one(StatusCode::CONFLICT, "CONFLICT", &detail),
        Err(ApiError::Validation(v)) => fail(
            StatusCode::BAD_REQUEST,
            v.0.into_iter()
                .map(|e| ("INVALID_VALUE", format!("{}: {}", e.field, e.message)))
                .collect(),
        ),
        Err(e) => one_error(e),
    }
}

async fn apply(
    state: &AppState,
    who: &Principal,
    id: OrganizationId,
    body: &Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Reach and permission before the body: a stranger learns nothing from validation.
    let access = service::load_with(state, who, id, Permission::OrgUpdate).await?;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "PAYLOAD_TOO_LARGE"
            } else {
                "INVALID_BODY"
            };
            return Ok(one(e.status(), code, &e.body_text()));
        }
    };
    let patch = match parse_updates(body) {
        Ok(p) => p,
        Err(errors) => return Ok(fail(StatusCode::BAD_REQUEST, errors)),
    };
    drop(access);
    let (_, org) = service::update(state, who, id, patch, None).await?;
    let data = properties_of(state, org).await?;
    Ok((
        StatusCode::OK,
        Json(PropertiesAnswer {
            data: Some(data),
            errors: None,
        }),
    )
        .into_response())
}
