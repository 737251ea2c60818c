//! The audit log's reads: one organization's entries, and the platform's.
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use orgbase_domain::{AuditEntry, AuditQuery, ValidationErrors};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::service::{self, audit::PAGE_MAX};
use crate::AppState;

const DEFAULT_LIMIT: u32 = 50;

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub data: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

fn decode_cursor(s: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

fn time(e: &mut ValidationErrors, field: &str, v: &str) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(v) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            e.add(
                field,
                "invalid_value",
                "must be an RFC 3339 time (2026-01-31T12:00:00Z)",
            );
            None
        }
    }
}

/// Parses the log's query string; every unknown or invalid parameter is reported.
fn parse_query(raw: Option<&str>) -> Result<AuditQuery, ApiError> {
    let mut q = AuditQuery {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    let mut e = ValidationErrors::new();
    let text = |e: &mut ValidationErrors, k: &str, v: &str| {
        if v.is_empty() || v.chars().count() > 200 {
            e.add(k, "invalid_value", "must be 1–200 characters");
            None
        } else if v.contains('\0') {
            e.add(k, "invalid_characters", "must not contain NUL characters");
            None
        } else {
            Some(v.to_owned())
        }
    };
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=PAGE_MAX).contains(&n) => q.limit = n,
                _ => e.add(
                    "limit",
                    "out_of_range",
                    format!("must be an integer from 1 to {PAGE_MAX}"),
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
            "action" => q.action = text(&mut e, "action", &v),
            "actorId" => q.actor_id = text(&mut e, "actorId", &v),
            "targetId" => q.target_id = text(&mut e, "targetId", &v),
            "since" => q.since = time(&mut e, "since", &v),
            "until" => q.until = time(&mut e, "until", &v),
            other => e.add(
                other,
                "unknown_parameter",
                "is not a parameter of this list",
            ),
        }
    }
    e.into_result()?;
    Ok(q)
}

/// Asks for one entry more than a page holds, and makes the page and its cursor.
fn page(mut rows: Vec<AuditEntry>, limit: u32) -> AuditPage {
    let limit = limit as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|e| encode_cursor(e.id))
    } else {
        None
    };
    AuditPage {
        data: rows,
        next_cursor,
    }
}

/// An organization's audit log, newest first (`audit:read`).
///
/// Every change to the organization, its people, keys, wallet and billing: who made it, through
/// which API, and each changed field's value before and after. A partner key reading its own
/// partner organization reads its children's entries too.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/audit-log", operation_id = "listOrganizationAuditLog", tag = "Audit log",
    params(
        ("organizationId" = Uuid, Path),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 50"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("action" = Option<String>, Query, min_length = 1, max_length = 200, description = "Only this action (`organization.updated`)"),
        ("actorId" = Option<String>, Query, min_length = 1, max_length = 200, description = "Only changes by this key or person"),
        ("targetId" = Option<String>, Query, min_length = 1, max_length = 200, description = "Only changes to this object"),
        ("since" = Option<String>, Query, format = DateTime, description = "Only entries at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, format = DateTime, description = "Only entries before this RFC 3339 time"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks audit:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let access = service::load(&state, &who, org_id(&id)?).await?;
    let q = parse_query(raw.as_deref())?;
    let limit = q.limit;
    let rows = service::audit::list_org(
        &state,
        &access,
        AuditQuery {
            limit: limit + 1,
            ..q
        },
    )
    .await?;
    Ok(Json(page(rows, limit)))
}

/// The platform's audit log, newest first (platform keys): every organization's entries and the
/// platform-wide changes (plans, platform and partner keys, sign-ins, purges).
#[utoipa::path(
    get, path = "/api/admin/audit-log", operation_id = "listPlatformAuditLog", tag = "Audit log",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 50"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("action" = Option<String>, Query, min_length = 1, max_length = 200, description = "Only this action (`organization.updated`)"),
        ("actorId" = Option<String>, Query, min_length = 1, max_length = 200, description = "Only changes by this key or person"),
        ("targetId" = Option<String>, Query, min_length = 1, max_length = 200, description = "Only changes to this object"),
        ("since" = Option<String>, Query, format = DateTime, description = "Only entries at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, format = DateTime, description = "Only entries before this RFC 3339 time"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_all(
    State(state): State<AppState>,
    who: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let admin = who.platform()?;
    let q = parse_query(raw.as_deref())?;
    let limit = q.limit;
    let rows = service::audit::list_all(
        &state,
        &admin,
        AuditQuery {
            limit: limit + 1,
            ..q
        },
    )
    .await?;
    Ok(Json(page(rows, limit)))
}
