//! The wallet: the seed's `POST /api/admin/organizations/{organization}/charge`, a top-up, and
//! the balances and their ledger for the organization.
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orgbase_domain::wallet::{
    parse_amount, parse_reason, Entry, EntryKind, NewEntry, Service, MAX_SMS_POINTS,
};
use orgbase_domain::{Permission, ValidationErrors};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::extract::{Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service;
use crate::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct ChargeInput {
    /// Amount to charge, in minor units (1–100000000).
    #[schema(required = true, value_type = i64, minimum = 1, maximum = 100_000_000, example = 1000)]
    pub amount: Field<i64>,
    /// Service type: sms, voice, whatsapp, email, ai, phone_number, subscription, other.
    #[schema(required = true, value_type = String, pattern = r"^(sms|voice|whatsapp|email|ai|phone_number|subscription|other)$", example = "sms")]
    pub service: Field<String>,
    /// Required when service is 'sms'. Number of SMS points, credited to the SMS-point balance.
    #[schema(value_type = i64, minimum = 1, maximum = 10_000_000, example = 100)]
    pub sms_point: Field<i64>,
    /// Optional reason for the charge.
    #[schema(value_type = Option<String>, max_length = 500, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "Monthly SMS package")]
    pub reason: Field<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct CreditInput {
    /// Amount to add, in minor units (1–100000000).
    #[schema(required = true, value_type = i64, minimum = 1, maximum = 100_000_000, example = 5000)]
    pub amount: Field<i64>,
    #[schema(value_type = Option<String>, max_length = 500, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "Top-up by bank transfer")]
    pub reason: Field<String>,
}

/// The seed's answer to a charge.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeAnswer {
    pub success: bool,
    pub message: String,
    /// Always null, as in the source API.
    #[schema(value_type = Option<Object>)]
    pub data: Option<()>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletView {
    /// Minor units of `currency`.
    pub balance: i64,
    pub sms_points: i64,
    pub currency: String,
    /// Null before the first entry.
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    pub id: Uuid,
    /// `charge` or `credit`.
    pub kind: String,
    pub service: Option<String>,
    /// Minor units moved (positive; `kind` says which way).
    pub amount: i64,
    /// SMS points added.
    pub sms_points: i64,
    pub balance_after: i64,
    pub sms_points_after: i64,
    pub reason: Option<String>,
    pub created_at: String,
}

impl From<Entry> for EntryView {
    fn from(e: Entry) -> Self {
        Self {
            id: e.id,
            kind: e.kind.as_str().to_owned(),
            service: e.service.map(|s| s.as_str().to_owned()),
            amount: e.amount,
            sms_points: e.sms_points,
            balance_after: e.balance_after,
            sms_points_after: e.sms_points_after,
            reason: e.reason,
            created_at: rfc3339(&e.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryPage {
    pub data: Vec<EntryView>,
    /// Pass as `cursor` for older entries; null on the last page.
    pub next_cursor: Option<String>,
}

/// The `Idempotency-Key` header: 1–255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("");
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "invalid_value",
            "must be 1–255 visible ASCII characters",
        ));
    }
    Ok(Some(s.to_owned()))
}

/// An optional reason: trimmed, checked, empty taken as none.
fn optional_reason(field: Field<String>, e: &mut ValidationErrors) -> Option<String> {
    field
        .nullable("reason", e)
        .flatten()
        .and_then(|r| e.check(parse_reason("reason", &r)))
        .filter(|r| !r.is_empty())
}

/// Charge an organization's wallet (platform only).
#[utoipa::path(
    post, path = "/api/admin/organizations/{organization}/charge", operation_id = "chargeWallet", tag = "Wallet",
    params(
        ("organization" = Uuid, Path, description = "Organization UUID"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[\x21-\x7E]+$", description = "The same key and body replays the first answer and charges once"),
    ),
    request_body = ChargeInput,
    responses(
        (status = 200, description = "Charge processed successfully", body = ChargeAnswer),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The balance does not cover the charge; nothing was charged", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named; or the key was used for another request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn charge(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body, mut errors): JsonBody<ChargeInput>,
) -> Result<Json<ChargeAnswer>, ApiError> {
    let admin = who.platform()?;
    let key = idempotency_key(&headers)?;
    let org = service::wallet::target(&state, &who, org_id(&id)?).await?;
    let e = &mut errors;
    let amount = body
        .amount
        .required("amount", e)
        .and_then(|v| e.check(parse_amount("amount", v)));
    let service = body.service.required("service", e).and_then(|s| {
        Service::parse(&s).or_else(|| {
            e.add(
                "service",
                "invalid_value",
                format!("must be one of {}", Service::names()),
            );
            None
        })
    });
    let sms_point = body.sms_point.optional("sms_point", e);
    let sms_points = match (service, sms_point) {
        (Some(Service::Sms), None) => {
            e.add("sms_point", "required", "is required when service is sms");
            0
        }
        (Some(Service::Sms), Some(p)) if !(1..=MAX_SMS_POINTS).contains(&p) => {
            e.add(
                "sms_point",
                "out_of_range",
                format!("must be a whole number from 1 to {MAX_SMS_POINTS}"),
            );
            0
        }
        (Some(Service::Sms), Some(p)) => p,
        // Optional in the source API, and meaningful for sms only: otherwise it is ignored.
        _ => 0,
    };
    let reason = optional_reason(body.reason, e);
    errors.clone().into_result()?;
    let (Some(amount), Some(service)) = (amount, service) else {
        return Err(errors.into());
    };
    let currency = service::wallet::currency_for(&state, &org).await?;
    let entry = NewEntry {
        service: Some(service),
        sms_points,
        ..service::wallet::new_entry(&who, &org, EntryKind::Charge, amount, reason, key, currency)
    };
    let done = service::wallet::append(&state, &admin, entry).await?;
    tracing::info!(organization_id = %org.id, entry_id = %done.id, amount, actor = %who.actor(), "wallet charged");
    Ok(Json(ChargeAnswer {
        success: true,
        message: "Charge processed successfully".into(),
        data: None,
    }))
}

/// Top up an organization's wallet (platform only).
#[utoipa::path(
    post, path = "/api/admin/organizations/{organization}/credit", operation_id = "creditWallet", tag = "Wallet",
    params(
        ("organization" = Uuid, Path, description = "Organization UUID"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[\x21-\x7E]+$", description = "The same key and body replays the first answer and credits once"),
    ),
    request_body = CreditInput,
    responses(
        (status = 200, description = "Credited; the balances after it", body = WalletView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named; or the key was used for another request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn credit(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body, mut errors): JsonBody<CreditInput>,
) -> Result<Json<WalletView>, ApiError> {
    let admin = who.platform()?;
    let key = idempotency_key(&headers)?;
    let org = service::wallet::target(&state, &who, org_id(&id)?).await?;
    let e = &mut errors;
    let amount = body
        .amount
        .required("amount", e)
        .and_then(|v| e.check(parse_amount("amount", v)));
    let reason = optional_reason(body.reason, e);
    errors.into_result()?;
    let currency = service::wallet::currency_for(&state, &org).await?;
    let amount = amount.expect("validated");
    let entry = service::wallet::new_entry(
        &who,
        &org,
        EntryKind::Credit,
        amount,
        reason,
        key,
        currency.clone(),
    );
    let done = service::wallet::append(&state, &admin, entry).await?;
    tracing::info!(organization_id = %org.id, entry_id = %done.id, amount = done.amount, actor = %who.actor(), "wallet credited");
    Ok(Json(WalletView {
        balance: done.balance_after,
        sms_points: done.sms_points_after,
        currency,
        updated_at: Some(rfc3339(&done.created_at)),
    }))
}

/// The organization's balances.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/wallet", operation_id = "getWallet", tag = "Wallet",
    params(("organizationId" = Uuid, Path)),
    responses(
        (status = 200, description = "The balances", body = WalletView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks wallet:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<WalletView>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::WalletRead).await?;
    let w = service::wallet::get(&state, &access).await?;
    Ok(Json(WalletView {
        balance: w.balance,
        sms_points: w.sms_points,
        currency: w.currency,
        updated_at: w.updated_at.as_ref().map(rfc3339),
    }))
}

/// The wallet's ledger, newest first.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/wallet/transactions", operation_id = "listWalletTransactions", tag = "Wallet",
    params(
        ("organizationId" = Uuid, Path),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = EntryPage),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks wallet:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn transactions(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::WalletRead).await?;
    let mut limit = 20u32;
    let mut before = None;
    let mut e = ValidationErrors::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => limit = n,
                _ => e.add("limit", "out_of_range", "must be an integer from 1 to 100"),
            },
            "cursor" => match URL_SAFE_NO_PAD
                .decode(v.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<Uuid>().ok())
            {
                Some(id) => before = Some(id),
                None => e.add(
                    "cursor",
                    "invalid_cursor",
                    "is not a cursor this API gave out",
                ),
            },
            other => e.add(
                other,
                "unknown_parameter",
                "is not a parameter of this list",
            ),
        }
    }
    e.into_result()?;
    let mut rows = service::wallet::entries(&state, &access, before, limit + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| URL_SAFE_NO_PAD.encode(r.id.to_string()))
    } else {
        None
    };
    Ok((
        StatusCode::OK,
        Json(EntryPage {
            data: rows.into_iter().map(EntryView::from).collect(),
            next_cursor,
        }),
    )
        .into_response())
}
