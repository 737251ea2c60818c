//! An organization's wallet on its page: the balances and the latest entries (`wallet:read`),
//! and the platform's credit form.
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::service::access::OrgAccess;
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::wallet::{parse_amount, parse_reason, EntryKind};
use orgbase_domain::{Permission, ValidationErrors};
use serde::Deserialize;

use crate::organizations::{org_id, refused_page, Refused};
use crate::session::{self, Console};
use crate::views::{LedgerRow, WalletSection};
use crate::PageError;

/// Ledger entries the page shows, newest first.
const ENTRIES_SHOWN: u32 = 10;

/// The wallet section, for those who may read it.
pub(crate) async fn section(
    state: &AppState,
    access: &OrgAccess<'_>,
) -> Result<Option<WalletSection>, ServiceError> {
    if !access.permissions.has(Permission::WalletRead) {
        return Ok(None);
    }
    let w = service::wallet::get(state, access).await?;
    let entries = service::wallet::entries(state, access, None, ENTRIES_SHOWN).await?;
    Ok(Some(WalletSection {
        balance: w.balance,
        sms_points: w.sms_points,
        currency: w.currency,
        may_credit: access.is_platform() && !access.org.is_deleted(),
        // A fresh key each time the form is shown: sending it twice credits once.
        credit_key: uuid::Uuid::new_v4().to_string(),
        entries: entries
            .iter()
            .map(|e| LedgerRow {
                at: e.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                kind: match e.kind {
                    EntryKind::Credit => "credit",
                    EntryKind::Charge => "charge",
                },
                amount: e.amount,
                balance_after: e.balance_after,
                reason: e.reason.clone().unwrap_or_default(),
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct CreditForm {
    csrf: Option<String>,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    key: Option<String>,
}

/// The platform credits the wallet: the API's credit (its rules, its audit entry), once per
/// form shown.
pub(crate) async fn credit(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(id): Path<String>,
    Form(form): Form<CreditForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let admin = who.principal.platform()?;
    let org = service::wallet::target(&state, &who.principal, id).await?;
    let mut errors = ValidationErrors::new();
    let amount = match form.amount.trim().parse::<i64>() {
        Ok(v) => errors.check(parse_amount("amount", v)),
        Err(_) => {
            errors.add(
                "amount",
                "invalid_value",
                "must be a whole number of minor units (cents)",
            );
            None
        }
    };
    let reason = errors
        .check(parse_reason("reason", &form.reason))
        .filter(|r| !r.is_empty());
    let key = form.key.filter(|k| {
        !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
    });
    if let (Some(amount), true) = (amount, errors.0.is_empty()) {
        let currency = service::wallet::currency_for(&state, &org).await?;
        let entry = service::wallet::new_entry(
            &who.principal,
            &org,
            EntryKind::Credit,
            amount,
            reason,
            key,
            currency,
        );
        match service::wallet::append(&state, &admin, entry).await {
            Ok(_) => {
                return Ok(Redirect::to(&format!("/console/organizations/{id}")).into_response())
            }
            Err(ServiceError::Validation(e)) => errors = e,
            Err(e) => return Err(e.into()),
        }
    }
    refused_page(&state, &headers, &who, id, &errors, |m| {
        Refused::Credit(form.amount, m)
    })
    .await
}
