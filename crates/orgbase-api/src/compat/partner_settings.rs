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
use orgbase_domain::{
    now, parse_external_id, Email, OrgName, OrgStatus, Organization, OrganizationId, Target, UserId,
};
use orgbase_store::StoreError;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::auth::{authenticate_once, Authenticated, Principal};
use crate::error::ApiError;
use crate::service;
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

/// How often the settings are re-applied when the organization changed under the request.
const ATTEMPTS: usize = 16;

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

fn refuse(status: StatusCode, message: &str) -> Response {
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

/// Applies every setting of `body` to `current` on its own; answers the organization with what
/// passed, the owner's e-mail change if any, and the outcome.
async fn evaluate(
    state: &AppState,
    current: &Organization,
    body: &Map<String, Value>,
) -> Result<(Organization, Option<(UserId, Email)>, Outcome), ApiError> {
    let mut next = current.clone();
    let mut out = Outcome::default();
    let mut email_change = None;
    let get = |k: &str| body.get(k);

    if let Some(v) = get("orgName") {
        match str_of(v) {
            Ok(s) => match OrgName::parse("orgName", s) {
                Ok(n) => {
                    next.name = n.into_inner();
                    out.pass("orgName");
                }
                Err(e) => out.fail("orgName", e.message),
            },
            Err(r) => out.fail("orgName", r),
        }
    }
    if let Some(v) = get("active") {
        match bool_of(v) {
            Err(r) => out.fail("active", r),
            Ok(_) if current.status == OrgStatus::Suspended => out.fail(
                "active",
                "the organization is suspended; only the platform lifts a suspension",
            ),
            Ok(b) => {
                let status = if b {
                    OrgStatus::Active
                } else {
                    OrgStatus::Inactive
                };
                if status != next.status {
                    next.status = status;
                    next.status_reason = None;
                }
                out.pass("active");
            }
        }
    }
    if let Some(v) = get("offeredProductPlanId") {
        match opt_str_of(v) {
            Err(r) => out.fail("offeredProductPlanId", r),
            Ok(None) => {
                next.offered_product_plan_id = None;
                out.pass("offeredProductPlanId");
            }
            Ok(Some(id)) => match state.store.get_plan(id).await {
                Ok(p) => {
                    next.offered_product_plan_id = Some(p.id);
                    out.pass("offeredProductPlanId");
                }
                Err(StoreError::NotFound) => out.fail("offeredProductPlanId", "no such plan"),
                Err(e) => return Err(e.into()),
            },
        }
    }
    if let Some(v) = get("email") {
        match str_of(v).map(|s| Email::parse("email", s)) {
            Err(r) => out.fail("email", r),
            Ok(Err(e)) => out.fail("email", e.message),
            Ok(Ok(email)) => match current.owner {
                None => out.fail("email", "the organization has no owner"),
                Some(owner) => match state.store.find_user_by_email(&email).await? {
                    Some(u) if u.id != owner => {
                        out.fail("email", "the e-mail is used by another person")
                    }
                    Some(_) => out.pass("email"),
                    None => {
                        email_change = Some((owner, email));
                        out.pass("email");
                    }
                },
            },
        }
    }
    // Brand and campaign first: enabling SMS may rely on ids given in the same request.
    for (key, slot) in [
        ("smsBrandId", &mut next.sms.brand_id),
        ("smsCampaignId", &mut next.sms.campaign_id),
    ] {
        if let Some(v) = body.get(key) {
            match opt_str_of(v) {
                Err(r) => out.fail(key, r),
                Ok(None) => {
                    *slot = None;
                    out.pass(key);
                }
                Ok(Some(s)) => match parse_external_id(key, s) {
                    Ok(id) => {
                        *slot = Some(id);
                        out.pass(key);
                    }
                    Err(e) => out.fail(key, e.message),
                },
            }
        }
    }
    if let Some(v) = get("smsEnabled") {
        match bool_of(v) {
            Err(r) => out.fail("smsEnabled", r),
            Ok(true) if next.sms.brand_id.is_none() || next.sms.campaign_id.is_none() => out.fail(
                "smsEnabled",
                "enabling SMS needs a smsBrandId and a smsCampaignId, stored or in this request",
            ),
            Ok(b) => {
                next.sms.enabled = b;
                out.pass("smsEnabled");
            }
        }
    }
    // Removing an id that enabled SMS relies on fails that removal.
    if next.sms.enabled {
        for (key, stored, slot) in [
            (
                "smsBrandId",
                current.sms.brand_id.clone(),
                &mut next.sms.brand_id,
            ),
            (
                "smsCampaignId",
                current.sms.campaign_id.clone(),
                &mut next.sms.campaign_id,
            ),
        ] {
            if slot.is_none() {
                *slot = stored;
                out.updated.retain(|s| s != key);
                out.fail(key, "SMS is enabled: its ids cannot be removed");
            }
        }
    }
    if let Some(v) = get("vidaPremium") {
        match bool_of(v) {
            Ok(b) => {
                next.premium = b;
                out.pass("vidaPremium");
            }
            Err(r) => out.fail("vidaPremium", r),
        }
    }
    for (key, slot) in [
        ("externalAccountId", &mut next.external_account_id),
        ("externalBillingId", &mut next.external_billing_id),
    ] {
        if let Some(v) = body.get(key) {
            match opt_str_of(v) {
                Err(r) => out.fail(key, r),
                Ok(None) => {
                    *slot = None;
                    out.pass(key);
                }
                Ok(Some(s)) => match parse_external_id(key, s) {
                    Ok(id) => {
                        *slot = Some(id);
                        out.pass(key);
                    }
                    Err(e) => out.fail(key, e.message),
                },
            }
        }
    }
    for key in body.keys().filter(|k| !SETTINGS.contains(&k.as_str())) {
        out.fail(key, "unknown setting");
    }
    // Last: a plan tied to a billing provider changes there first, once everything else is known.
    if let Some(v) = get("productPlanId") {
        match str_of(v) {
            Err(r) => out.fail("productPlanId", r),
            Ok(id) => match state.store.get_plan(id).await {
                Err(StoreError::NotFound) => out.fail("productPlanId", "no such plan"),
                Err(e) => return Err(e.into()),
                Ok(plan) => match change_plan(state, current, &plan).await {
                    Ok(()) => {
                        // As the native PATCH does: the move takes up a standing offer of the
                        // plan, and an offer this request sets itself wins.
                        let offer = std::mem::replace(
                            &mut next.offered_product_plan_id,
                            current.offered_product_plan_id.clone(),
                        );
                        next.put_on_plan(plan.id);
                        if offer != current.offered_product_plan_id {
                            next.offered_product_plan_id = offer;
                        }
                        out.pass("productPlanId");
                    }
                    Err(reason) => out.fail("productPlanId", reason),
                },
            },
        }
    }
    Ok((next, email_change, out))
}

/// The provider side of a plan change: nothing for a plan without a provider; for one with,
/// the organization must have subscribed, and the provider must accept the change.
async fn change_plan(
    state: &AppState,
    org: &Organization,
    plan: &orgbase_domain::Plan,
) -> Result<(), String> {
    if org.product_plan_id == plan.id {
        return Ok(());
    }
    let current = org.subscription.as_ref().filter(|s| s.is_live());
    let Some(provider) = plan.provider else {
        // A free or manually billed plan while a subscription still charges: refused.
        return match current {
            Some(sub) => crate::billing::change_plan(state, org, sub, plan).await,
            None => Ok(()),
        };
    };
    let live = current.filter(|s| s.provider == provider);
    let Some(sub) = live else {
        return Err(format!(
            "the plan is billed through {}, and the organization has not subscribed: offer it \
             with offeredProductPlanId, and the customer completes checkout",
            provider.as_str()
        ));
    };
    crate::billing::change_plan(state, org, sub, plan).await
}

/// Update Organization Settings.
///
/// The token is a platform key or the key of the target's partner, in the query string (never
/// logged). Each setting is applied on its own; those that pass are committed together.
#[utoipa::path(
    post, path = "/api/v2/updateOrganization", tag = "Partner settings",
    params(
        ("token" = String, Query, description = "Vida API Token: a platform key or the target's partner key"),
        ("targetOrganizationId" = String, Query, description = "Target Organization Id to update settings for"),
    ),
    request_body(content = Object, description = "Any of: active, productPlanId, offeredProductPlanId, email, orgName, smsEnabled, smsBrandId, smsCampaignId, vidaPremium, externalAccountId, externalBillingId"),
    responses(
        (status = 200, description = "At least one setting was successfully updated", body = SettingsAnswer),
        (status = 400, description = "No setting passed, or the body or target is missing or malformed", body = SettingsAnswer),
        (status = 401, description = "Missing or invalid token", body = SettingsError),
        (status = 404, description = "No such organization within the token's reach", body = SettingsError),
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
    for _ in 0..ATTEMPTS {
        let access = service::load(state, who, org_id).await?;
        // A partner's key reaches its children here, not the partner itself: the target's
        // partner is the one that may change its settings (plans, the paid state, switching it
        // off), and a partner has none above it but the platform.
        if !access.is_platform() && !access.is_parent_partner() {
            return Err(ApiError::NotFound);
        }
        let current = access.org;
        if current.is_deleted() {
            let mut out = Outcome::default();
            for k in body.keys() {
                out.fail(k, "the organization is deleted");
            }
            return Ok(out.answer());
        }
        let (mut next, email_change, out) = evaluate(state, &current, body).await?;
        if next == current && email_change.is_none() {
            return Ok(out.answer());
        }
        next.version = current.version + 1;
        next.updated_at = now();
        let mut entry = service::audit::entry(
            who.audit_actor(),
            Some(org_id),
            "organization.updated",
            Target::new("organization", org_id),
        )
        .diff(Some(&current), Some(&next));
        if let Some((user, email)) = &email_change {
            let before = state.store.get_user(*user).await?.email;
            entry = entry.field(
                "ownerEmail",
                Value::from(before.as_str()),
                Value::from(email.as_str()),
            );
        }
        let write = state
            .store
            .update_organization_and_owner_email(&next, &current, email_change);
        match service::audit::record(vec![entry], write).await {
            Ok(()) => {
                tracing::info!(
                    organization_id = %org_id,
                    actor = %who.actor(),
                    updated = ?out.updated,
                    failed = ?out.failed.keys().collect::<Vec<_>>(),
                    "organization settings updated"
                );
                return Ok(out.answer());
            }
            // Changed meanwhile, or the e-mail was taken meanwhile: evaluate again.
            Err(StoreError::VersionMismatch)
            | Err(StoreError::Conflict {
                constraint: "user_email",
            }) => continue,
            Err(StoreError::Conflict {
                constraint: "organization_plan",
            }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict {
        code: "concurrent_update",
        detail: "the organization kept changing under this request; try again".into(),
    })
}
