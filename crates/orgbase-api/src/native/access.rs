//! The access check: may an organization handle a call or a message now, and if not, every
//! reason why (`orgbase_domain::access_check`). One organization by `GET`, or up to 100 pairs
//! at once for a media server by `POST /api/access/check`.
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use orgbase_domain::access_check::{Channel, Reason};
use orgbase_domain::{OrganizationId, ValidationErrors};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{org_id, Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service::access_check::{self, Verdict, BATCH_MAX};
use crate::service::ServiceError;
use crate::AppState;

/// The answer: allowed, or every reason not.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessView {
    /// True when `reasons` is empty.
    pub allowed: bool,
    #[schema(value_type = String, example = "sms", pattern = "^(voice|sms)$")]
    pub channel: &'static str,
    pub organization_id: Uuid,
    /// Every reason the channel is refused, in a stable order; empty when allowed.
    pub reasons: Vec<ReasonView>,
    /// When the check was made (RFC 3339).
    pub checked_at: String,
}

/// One reason, by a stable code.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonView {
    /// `organization_deleted`, `organization_suspended`, `organization_inactive`,
    /// `billing_overdue`, `insufficient_balance`, `insufficient_sms_points`, `sms_not_enabled`,
    /// `sms_brand_missing`, `sms_campaign_missing` or `channel_not_entitled`.
    #[schema(value_type = String, example = "sms_brand_missing")]
    pub code: &'static str,
    pub message: String,
}

impl From<Verdict> for AccessView {
    fn from(v: Verdict) -> Self {
        Self {
            allowed: v.allowed(),
            channel: v.channel.as_str(),
            organization_id: v.organization_id.0,
            reasons: v
                .reasons
                .into_iter()
                .map(|Reason { code, message }| ReasonView { code, message })
                .collect(),
            checked_at: rfc3339(&v.checked_at),
        }
    }
}

fn channel(e: &mut ValidationErrors, field: &str, v: Option<&str>) -> Option<Channel> {
    match v {
        None => {
            e.add(field, "required", "is required: voice or sms");
            None
        }
        Some(v) => Channel::parse(v).or_else(|| {
            e.add(field, "invalid_value", "must be voice or sms");
            None
        }),
    }
}

/// May the organization handle a call (`voice`) or a message (`sms`) now?
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/access", operation_id = "checkAccess", tag = "Access",
    params(
        ("organizationId" = Uuid, Path),
        ("channel" = String, Query, pattern = "^(voice|sms)$", description = "`voice` or `sms`"),
    ),
    responses(
        (status = 200, description = "The verdict, with every reason it is not allowed", body = AccessView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks org:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No channel, or not voice or sms", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn check(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AccessView>, ApiError> {
    let id = org_id(&id)?;
    let mut e = ValidationErrors::new();
    let mut given = None;
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "channel" if given.is_none() => given = Some(v.into_owned()),
            "channel" => e.add("channel", "invalid_value", "is given more than once"),
            other => e.add(
                other,
                "unknown_parameter",
                "is not a parameter of this check",
            ),
        }
    }
    let channel = channel(&mut e, "channel", given.as_deref());
    e.into_result()?;
    let channel = channel.expect("validated");
    Ok(Json(
        access_check::check(&state, &who, id, channel).await?.into(),
    ))
}

/// A batch of checks.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct BatchInput {
    /// 1–100 pairs, answered in the same order.
    #[schema(required = true, value_type = Vec<PairInput>, min_items = 1, max_items = 100)]
    pub checks: Field<Vec<Value>>,
}

/// One pair to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairInput {
    pub organization_id: Uuid,
    #[schema(pattern = "^(voice|sms)$")]
    pub channel: String,
}

/// The answers, in the order of the checks.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub results: Vec<BatchResult>,
}

/// A verdict, or why the pair could not be checked (an organization outside the caller's
/// reach: 404; without `org:read` there: 403).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    Checked(AccessView),
    Refused(PairRefused),
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PairRefused {
    pub organization_id: Uuid,
    #[schema(value_type = String, pattern = "^(voice|sms)$")]
    pub channel: &'static str,
    pub error: PairError,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairError {
    /// 404 or 403, as the single check would answer.
    pub status: u16,
    /// `not_found` or `forbidden`.
    #[schema(value_type = String)]
    pub code: &'static str,
    pub detail: String,
}

/// Up to 100 access checks at once (a media server checking many organizations).
#[utoipa::path(
    post, path = "/api/access/check", operation_id = "checkAccessBatch", tag = "Access",
    request_body = BatchInput,
    responses(
        (status = 200, description = "One result per pair, in order", body = BatchAnswer),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid pairs, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn check_batch(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body, mut e): JsonBody<BatchInput>,
) -> Result<Json<BatchAnswer>, ApiError> {
    let items = body.checks.required("checks", &mut e).unwrap_or_default();
    if items.len() > BATCH_MAX || (items.is_empty() && e.is_empty()) {
        e.add("checks", "invalid_length", "must hold 1–100 pairs");
    }
    let mut pairs: Vec<(OrganizationId, Channel)> = Vec::new();
    for (i, item) in items.iter().enumerate().take(BATCH_MAX) {
        let at = |f: &str| format!("checks[{i}].{f}");
        let Some(obj) = item.as_object() else {
            e.add(
                format!("checks[{i}]"),
                "invalid_type",
                "must be {organizationId, channel}",
            );
            continue;
        };
        for k in obj
            .keys()
            .filter(|k| *k != "organizationId" && *k != "channel")
        {
            e.add(at(k), "unknown_field", "is not a field of a pair");
        }
        let org = match obj.get("organizationId") {
            None | Some(Value::Null) => {
                e.add(at("organizationId"), "required", "is required");
                None
            }
            Some(v) => v.as_str().and_then(|s| s.parse::<Uuid>().ok()).or_else(|| {
                e.add(
                    at("organizationId"),
                    "invalid_value",
                    "must be an organization id",
                );
                None
            }),
        };
        let ch = match obj.get("channel") {
            None | Some(Value::Null) => channel(&mut e, &at("channel"), None),
            Some(Value::String(s)) => channel(&mut e, &at("channel"), Some(s)),
            Some(_) => {
                e.add(at("channel"), "invalid_type", "must be voice or sms");
                None
            }
        };
        if let (Some(o), Some(c)) = (org, ch) {
            pairs.push((OrganizationId(o), c));
        }
    }
    e.into_result()?;
    let answers = access_check::check_many(&state, &who, &pairs).await?;
    let results = pairs
        .iter()
        .zip(answers)
        .map(|((id, c), a)| match a {
            Ok(v) => BatchResult::Checked(v.into()),
            Err(err) => {
                let (status, code, detail) = match err {
                    ServiceError::Forbidden(d) => (403, "forbidden", d),
                    _ => (
                        404,
                        "not_found",
                        "no such organization within reach".to_owned(),
                    ),
                };
                BatchResult::Refused(PairRefused {
                    organization_id: id.0,
                    channel: c.as_str(),
                    error: PairError {
                        status,
                        code,
                        detail,
                    },
                })
            }
        })
        .collect();
    Ok(Json(BatchAnswer { results }))
}
