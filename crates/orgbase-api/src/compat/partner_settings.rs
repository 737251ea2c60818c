//! The partner settings API, exactly as `seeds/000_ae36b88f515525f7.txt` documents it:
//! `POST /api/v2/updateOrganization?token=…&targetOrganizationId=…`.
//!
//! Each setting in the body is checked and applied on its own; all that pass are committed in
//! one transaction; the answer lists what was updated and what failed, with a reason for each
//! failure. Nothing passing is a 400 with the same lists.
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use orgbase_domain::plan::parse_plan_id;
use orgbase_domain::{
    parse_external_id, Email, OrgName, OrgStatus, OrganizationId, OrganizationPatch,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::auth::{authenticate_once, Authenticated, Principal};
use crate::error::ApiError;
use crate::service::{self, ServiceError, SettingChange};
use crate::AppState;

/// The settings, in the order the document lists them (and the answer reports them).
const SETTINGS: [&str; 11] = [
    "active",
    "productPlanId",
    "offeredProductPlanId",
    "email",
    "orgName",
    "smsEnabled",
    "smsBrandId",
    "smsCampaignId",
    "vidaPremium",
    "externalAccountId",
    "externalBillingId",
];

/// The answer, as the document shows it, plus a reason per failed setting.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsAnswer {
    pub success: bool,
    pub message: String,
    pub updated_settings: Vec<String>,
    /// Null when every setting passed.
    pub failed_settings: Option<Vec<String>>,
    /// Why each failed setting failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reasons: Option<BTreeMap<String, String>>,
}

/// An answer without settings: a credential, target or body problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsError {
    pub success: bool,
    pub message: String,
}

/// A refusal before any setting was tried. A 400 has the settings answer's shape, with no
/// setting updated and `failedSettings` null (none was tried), so that a client reading the
/// documented 400 finds its lists; other statuses are `{success, message}`.
fn refuse(status: StatusCode, message: &str) -> Response {
    if status == StatusCode::BAD_REQUEST {
        let body = SettingsAnswer {
            success: false,
            message: message.to_owned(),
            updated_settings: Vec::new(),
            failed_settings: None,
            failure_reasons: None,
        };
        return (status, Json(body)).into_response();
    }
    (
        status,
        Json(SettingsError {
            success: false,
            message: message.to_owned(),
        }),
    )
        .into_response()
}

/// Any other error (the store unavailable, an internal failure), in this surface's shape.
pub(crate) fn refuse_error(e: ApiError) -> Response {
    e.into_response_shaped(|status, _, detail| refuse(status, &detail))
}

/// What the settings came to.
#[derive(Default)]
struct Outcome {
    updated: Vec<String>,
    failed: BTreeMap<String, String>,
}

impl Outcome {
    fn pass(&mut self, s: &str) {
        self.updated.push(s.to_owned());
    }
    fn fail(&mut self, s: &str, reason: impl Into<String>) {
        self.failed.insert(s.to_owned(), reason.into());
    }
    fn answer(self) -> Response {
        let rank = |s: &String| {
            SETTINGS
                .iter()
                .position(|k| k == s)
                .unwrap_or(SETTINGS.len())
        };
        let mut updated = self.updated;
        updated.sort_by_key(|s| (rank(s), s.clone()));
        let mut failed: Vec<String> = self.failed.keys().cloned().collect();
        failed.sort_by_key(|s| (rank(s), s.clone()));
        let ok = !updated.is_empty();
        let body = SettingsAnswer {
            success: ok,
            message: if ok {
                "Organization settings updated".into()
            } else {
                "No organization settings were updated".into()
            },
            updated_settings: updated,
            failed_settings: (!failed.is_empty()).then_some(failed),
            failure_reasons: (!self.failed.is_empty()).then_some(self.failed),
        };
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        (status, Json(body)).into_response()
    }
}

fn bool_of(v: &Value) -> Result<bool, &'static str> {
    v.as_bool().ok_or("must be a boolean")
}

fn str_of(v: &Value) -> Result<&str, &'static str> {
    match v {
        Value::String(s) => Ok(s),
        Value::Null => Err("must not be null"),
        _ => Err("must be a string"),
    }
}

/// A nullable string: `Ok(None)` for null (remove it).
fn opt_str_of(v: &Value) -> Result<Option<&str>, &'static str> {
    match v {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        _ => Err("must be a string or null"),
    }
}

/// The settings of `body` as the service's one-setting changes, in the order they are tried
/// (brand and campaign before enabling SMS, which may rely on them; the plan before the offer,
/// so that an offer this request makes outlives the plan move taking up a standing one), and
/// the settings refused as written.
fn parse_settings(body: &Map<String, Value>) -> (Vec<(String, SettingChange)>, Outcome) {
    const ORDER: [&str; 11] = [
        "active",
        "orgName",
        "email",
        "smsBrandId",
        "smsCampaignId",
        "smsEnabled",
        "vidaPremium",
        "externalAccountId",
        "externalBillingId",
        "productPlanId",
        "offeredProductPlanId",
    ];
    let mut out = Outcome::default();
    let mut settings = Vec::new();
    for key in ORDER {
        let Some(v) = body.get(key) else { continue };
        match parse_one(key, v) {
            Ok(change) => settings.push((key.to_owned(), change)),
            Err(reason) => out.fail(key, reason),
        }
    }
    for key in body.keys().filter(|k| !SETTINGS.contains(&k.as_str())) {
        out.fail(key, "unknown setting");
    }
    (settings, out)
}

/// One setting as a change, or why it is refused as written.
fn parse_one(key: &str, v: &Value) -> Result<SettingChange, String> {
    let mut p = OrganizationPatch::default();
    match key {
        "active" => {
            let on = bool_of(v)?;
            p.status = Some(if on {
                OrgStatus::Active
            } else {
                OrgStatus::Inactive
            });
        }
        "orgName" => p.name = Some(OrgName::parse(key, str_of(v)?).map_err(|e| e.message)?),
        "email" => {
            let email = Email::parse(key, str_of(v)?).map_err(|e| e.message)?;
            return Ok(SettingChange::OwnerEmail(email));
        }
        "smsBrandId" | "smsCampaignId" | "externalAccountId" | "externalBillingId" => {
            let id = opt_str_of(v)?
                .map(|s| parse_external_id(key, s))
                .transpose()
                .map_err(|e| e.message)?;
            let slot = match key {
                "smsBrandId" => &mut p.sms_brand_id,
                "smsCampaignId" => &mut p.sms_campaign_id,
                "externalAccountId" => &mut p.external_account_id,
                _ => &mut p.external_billing_id,
            };
            *slot = Some(id);
        }
        "smsEnabled" => p.sms_enabled = Some(bool_of(v)?),
        "vidaPremium" => p.premium = Some(bool_of(v)?),
        // An id no plan can have is no plan.
        "productPlanId" => {
            p.product_plan_id = Some(parse_plan_id(key, str_of(v)?).map_err(|_| NO_PLAN)?)
        }
        _ => {
            let id = opt_str_of(v)?
                .map(|s| parse_plan_id(key, s))
                .transpose()
                .map_err(|_| NO_PLAN)?;
            p.offered_product_plan_id = Some(id);
        }
    }
    Ok(SettingChange::Organization(Box::new(p)))
}

const NO_PLAN: &str = "no such plan";

/// Why a setting failed, in this surface's words.
fn reason(key: &str, e: &ServiceError) -> String {
    match e {
        ServiceError::Validation(errors) => {
            if errors.0.iter().any(|f| f.code == "sms_setup_incomplete") {
                return if key == "smsEnabled" {
                    "enabling SMS needs a smsBrandId and a smsCampaignId, stored or in this request"
                } else {
                    "SMS is enabled: its ids cannot be removed"
                }
                .into();
            }
            match errors.0.iter().find(|f| f.code == "unknown_plan") {
                Some(f) => f.message.clone(),
                None => errors
                    .0
                    .first()
                    .map(|f| f.message.clone())
                    .unwrap_or_else(|| "invalid".into()),
            }
        }
        ServiceError::Forbidden(_) if key == "active" => {
            "the organization is suspended; only the platform lifts a suspension".into()
        }
        ServiceError::Forbidden(detail) => detail.clone(),
        ServiceError::Conflict { detail, .. }
        | ServiceError::Upstream { detail, .. }
        | ServiceError::PaymentRequired { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

/// Update Organization Settings.
///
/// The token is a platform key or the key of the target's partner, in the query string (never
/// logged). Each setting is applied on its own; those that pass are committed together.
#[utoipa::path(
    post, path = "/api/v2/updateOrganization", operation_id = "updateOrganizationSettings", tag = "Partner settings",
    params(
        ("token" = String, Query, description = "Vida API Token: a platform key or the target's partner key"),
        ("targetOrganizationId" = String, Query, description = "Target Organization Id to update settings for"),
    ),
    request_body(content = Object, description = "Any of: active, productPlanId, offeredProductPlanId, email, orgName, smsEnabled, smsBrandId, smsCampaignId, vidaPremium, externalAccountId, externalBillingId"),
    responses(
        (status = 200, description = "At least one setting was successfully updated", body = SettingsAnswer),
        (status = 400, description = "No setting passed (`failedSettings` names them), or the body or target is missing or malformed (no setting tried: `updatedSettings` empty, `failedSettings` null)", body = SettingsAnswer),
        (status = 401, description = "Missing or invalid token", body = SettingsError),
        (status = 404, description = "No such organization within the token's reach", body = SettingsError),
        (status = 429, description = "Over the rate limit of the partner (or platform key), with `Retry-After`; nothing applied", body = SettingsError),
    )
)]
pub async fn update_organization(
    State(state): State<AppState>,
    earlier: Option<axum::Extension<Authenticated>>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut token = None;
    let mut target = None;
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "token" => token = Some(v.into_owned()),
            "targetOrganizationId" => target = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the token query parameter is required",
        );
    };
    let who = match authenticate_once(&state, earlier.as_deref(), &token).await {
        Ok(p @ (Principal::Platform { .. } | Principal::Partner { .. })) => p,
        Ok(_) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "the token must be a platform key or a partner key",
            )
        }
        Err(ApiError::Unauthorized { detail, .. }) => {
            return refuse(StatusCode::UNAUTHORIZED, detail)
        }
        Err(e) => return refuse_error(e),
    };
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the targetOrganizationId query parameter is required",
        );
    };
    let Ok(org_id) = target.parse::<OrganizationId>() else {
        return refuse(StatusCode::NOT_FOUND, "no such organization");
    };
    // A body that could not be read (over the size limit): refused after the credential.
    let body = match body {
        Ok(b) => b,
        Err(e) => return refuse(e.status(), &e.body_text()),
    };
    let body: Map<String, Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return refuse(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
        Err(e) if body.is_empty() => {
            let _ = e;
            Map::new()
        }
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("the body is not valid JSON: {e}"),
            )
        }
    };
    match apply(&state, &who, org_id, &body).await {
        Ok(r) => r,
        Err(ApiError::NotFound) => refuse(StatusCode::NOT_FOUND, "no such organization"),
        Err(e) => refuse_error(e),
    }
}

async fn apply(
    state: &AppState,
    who: &Principal,
    org_id: OrganizationId,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let (settings, mut out) = parse_settings(body);
    match service::update_settings(state, who, org_id, &settings).await {
        Ok(results) => {
            for (key, r) in results {
                match r {
                    Ok(()) => out.pass(&key),
                    Err(e) => out.fail(&key, reason(&key, &e)),
                }
            }
            tracing::info!(
                organization_id = %org_id,
                actor = %who.actor(),
                updated = ?out.updated,
                failed = ?out.failed.keys().collect::<Vec<_>>(),
                "organization settings updated"
            );
            Ok(out.answer())
        }
        Err(ServiceError::Conflict {
            code: "organization_deleted",
            ..
        }) => {
            let mut out = Outcome::default();
            for k in body.keys() {
                out.fail(k, "the organization is deleted");
            }
            Ok(out.answer())
        }
        Err(e) => Err(e.into()),
    }
}
