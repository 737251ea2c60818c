//! The organizations: a list to search and filter, and one organization's page (details, the
//! access check, its status, the audit log).
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::service::{self, access_check, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::access_check::Channel;
use orgbase_domain::{
    AuditEntry, AuditQuery, OrgStatus, OrgType, Organization, OrganizationId, OrganizationPatch,
    Permission, ValidationErrors,
};
use orgbase_store::{OrganizationQuery, StatusFilter};
use serde::Deserialize;
use serde_json::Value;

use crate::session::{self, Console};
use crate::views::{AccessRow, AuditRow, OrgDetails, OrgRow, OrganizationPage, OrganizationsPage};
use crate::{render, PageError};

/// Rows a page shows.
const PAGE: u32 = 50;
/// Audit entries the organization page shows, newest first.
const AUDIT_SHOWN: u32 = 30;
/// The statuses the list filters by; `deleted` only for the platform.
const STATUSES: [&str; 4] = ["active", "inactive", "suspended", "deleted"];

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    /// `normal` or `partner`.
    #[serde(default, rename = "type")]
    org_type: String,
    /// A partner's id: its children.
    #[serde(default)]
    partner: String,
    /// One `key=value` the metadata must hold.
    #[serde(default)]
    metadata: String,
    /// The last id of the previous page.
    after: Option<String>,
}

/// The organizations the signed-in principal may see: a person's own, a partner's children,
/// every one for the platform; searched by name or slug, filtered by status, type, partner and
/// metadata, paged by cursor.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let (csrf, set) = session::csrf_token(&state, &headers);
    let q = query.q.trim();
    let q_error = (!q.is_empty() && q.chars().count() < 3)
        .then(|| "Search with 3 characters or more.".to_owned());
    let status = match query.status.as_str() {
        "" => None,
        "deleted" => Some(StatusFilter::Deleted),
        s => Some(StatusFilter::Is(OrgStatus::parse(s).ok_or_else(|| {
            PageError::new(StatusCode::BAD_REQUEST, "Not valid", "No such status.")
        })?)),
    };
    let org_type = match query.org_type.as_str() {
        "" => None,
        t => Some(OrgType::parse(t).ok_or_else(|| {
            PageError::new(StatusCode::BAD_REQUEST, "Not valid", "No such type.")
        })?),
    };
    let partner_filter = query.partner.trim();
    let partner_error = (!partner_filter.is_empty()
        && partner_filter.parse::<OrganizationId>().is_err())
    .then(|| "A partner is named by its id (a UUID).".to_owned());
    let metadata = query.metadata.trim();
    let metadata_pair = metadata
        .split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty());
    let metadata_error = (!metadata.is_empty() && metadata_pair.is_none())
        .then(|| "Write the metadata as key=value.".to_owned());
    let before = match query.after.as_deref() {
        None | Some("") => None,
        Some(a) => Some(org_id(a)?),
    };
    let refused = q_error.is_some() || partner_error.is_some() || metadata_error.is_some();
    let mut rows = if refused {
        Vec::new()
    } else {
        service::organizations::list(
            &state,
            &who.principal,
            OrganizationQuery {
                limit: PAGE + 1,
                before,
                status,
                include_deleted: status == Some(StatusFilter::Deleted),
                q: (!q.is_empty()).then(|| q.to_owned()),
                org_type,
                parent_id: partner_filter.parse().ok(),
                metadata: metadata_pair.into_iter().collect(),
                ..OrganizationQuery::default()
            },
        )
        .await?
    };
    let next = (rows.len() > PAGE as usize).then(|| {
        rows.truncate(PAGE as usize);
        let last = rows.last().expect("a full page").id;
        let last = last.to_string();
        next_page(&[
            ("q", q),
            ("status", &query.status),
            ("type", &query.org_type),
            ("partner", partner_filter),
            ("metadata", metadata),
            ("after", &last),
        ])
    });
    let page = OrganizationsPage {
        user: &who.label,
        csrf: &csrf,
        q,
        q_error,
        statuses: STATUSES.iter().map(|s| (*s, *s == query.status)).collect(),
        types: ["normal", "partner"]
            .iter()
            .map(|t| (*t, *t == query.org_type))
            .collect(),
        partner: partner_filter,
        partner_error,
        metadata,
        metadata_error,
        rows: rows.iter().map(row).collect(),
        is_platform: who.principal.platform().is_ok(),
        next,
    };
    Ok(session::with_csrf_cookie(render(&page), set))
}

/// The address of the next page: the same search, and the cursor.
fn next_page(pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("/console/organizations?{}", query.join("&"))
}

/// A query string value, percent-encoded.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn row(o: &Organization) -> OrgRow {
    OrgRow {
        id: o.id.to_string(),
        name: o.name.clone(),
        slug: o.slug.clone(),
        status: status_of(o),
        org_type: o.org_type.as_str(),
        created: o.created_at.format("%Y-%m-%d").to_string(),
    }
}

fn status_of(o: &Organization) -> &'static str {
    if o.is_deleted() {
        "deleted"
    } else {
        o.status.as_str()
    }
}

pub(crate) fn org_id(raw: &str) -> Result<OrganizationId, PageError> {
    raw.parse()
        .map_err(|_| PageError::from(ServiceError::NotFound))
}

/// One organization.
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (csrf, set) = session::csrf_token(&state, &headers);
    let page = organization_page(&state, &who, &csrf, org_id(&id)?, Refused::Nothing).await?;
    Ok(session::with_csrf_cookie(page, set))
}

/// A form of the organization page that was refused: what it sent, and why.
pub(crate) enum Refused {
    Nothing,
    /// The suspension's reason, and the message.
    Status(String, String),
    /// The amount to credit, and the message.
    Credit(String, String),
    /// The address invited, and the message.
    Invite(String, String),
    /// The new key's name, and the message.
    Key(String, String),
    /// The deletion's message.
    Delete(String),
    /// The plan change's message.
    Plan(String),
    /// The ownership transfer's message.
    Transfer(String),
    /// The new webhook endpoint's form as sent, and why it was refused.
    Webhook(crate::webhooks::EndpointForm, ValidationErrors),
}

/// The organization page again after a form of it was refused: `refused` takes the form's
/// messages, joined, and says which form and what it sent.
pub(crate) async fn refused_page(
    state: &AppState,
    headers: &HeaderMap,
    who: &Console,
    id: OrganizationId,
    errors: &ValidationErrors,
    refused: impl FnOnce(String) -> Refused,
) -> Result<Response, PageError> {
    let (csrf, _) = session::csrf_token(state, headers);
    let message = errors
        .0
        .iter()
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join(" ");
    organization_page(state, who, &csrf, id, refused(message)).await
}

/// The organization page, with a refused form's values and message next to its fields (422).
pub(crate) async fn organization_page(
    state: &AppState,
    who: &Console,
    csrf: &str,
    id: OrganizationId,
    refused: Refused,
) -> Result<Response, PageError> {
    let access =
        service::organizations::load_with(state, &who.principal, id, Permission::OrgRead).await?;
    let mut checks = Vec::new();
    for channel in [Channel::Voice, Channel::Sms] {
        let v = access_check::check(state, &who.principal, id, channel).await?;
        checks.push(AccessRow {
            channel: channel.as_str(),
            allowed: v.allowed(),
            reasons: v.reasons.into_iter().map(|r| (r.code, r.message)).collect(),
        });
    }
    // The timeline needs `audit:read`; without it the page shows none.
    let audit = if access.permissions.has(Permission::AuditRead) {
        service::audit::list_org(
            state,
            &access,
            AuditQuery {
                limit: AUDIT_SHOWN,
                ..AuditQuery::default()
            },
        )
        .await?
    } else {
        Vec::new()
    };
    let wallet = crate::wallet::section(state, &access).await?;
    let invitations = crate::invitations::section(state, &access).await?;
    let members = crate::members::section(state, &access).await?;
    let keys = crate::keys::section(state, &access).await?;
    let plans = crate::plans::section(state, &access).await?;
    let mut webhooks = crate::webhooks::org_section(state, &access).await?;
    let may_set_status = access.is_platform() || access.is_parent_partner();
    let org = &access.org;
    let status = match refused {
        Refused::Nothing => StatusCode::OK,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let (mut reason, mut status_error) = (String::new(), None);
    let (mut credit_amount, mut credit_error) = (String::new(), None);
    let (mut invite_email, mut invite_error) = (String::new(), None);
    let (mut key_name, mut key_error) = (String::new(), None);
    let (mut delete_error, mut plan_error, mut transfer_error) = (None, None, None);
    match refused {
        Refused::Nothing => {}
        Refused::Status(r, m) => (reason, status_error) = (r, Some(m)),
        Refused::Credit(a, m) => (credit_amount, credit_error) = (a, Some(m)),
        Refused::Invite(e, m) => (invite_email, invite_error) = (e, Some(m)),
        Refused::Key(n, m) => (key_name, key_error) = (n, Some(m)),
        Refused::Delete(m) => delete_error = Some(m),
        Refused::Plan(m) => plan_error = Some(m),
        Refused::Transfer(m) => transfer_error = Some(m),
        Refused::Webhook(form, errors) => {
            if let Some(hooks) = &mut webhooks {
                hooks.new.refused(&form, &errors);
            }
        }
    }
    let page = OrganizationPage {
        user: &who.label,
        csrf,
        org: OrgDetails {
            id: org.id.to_string(),
            name: org.name.clone(),
            slug: org.slug.clone(),
            org_type: org.org_type.as_str(),
            status: status_of(org),
            suspended: org.status == OrgStatus::Suspended && !org.is_deleted(),
            status_reason: org.status_reason.clone(),
            country: org.country_code.clone(),
            plan: org.product_plan_id.clone(),
            offered_plan: org.offered_product_plan_id.clone(),
            parent_id: org.parent_id.map(|p| p.to_string()),
            is_partner: org.org_type == OrgType::Partner,
            sms: sms_summary(org),
            created: org.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            deleted: org.is_deleted(),
        },
        access: checks,
        may_set_status: may_set_status && !org.is_deleted(),
        may_delete: access.is_owner_or_platform() && !org.is_deleted(),
        may_restore: access.is_platform() && org.is_deleted(),
        delete_error,
        reason: &reason,
        status_error,
        wallet,
        credit_amount: &credit_amount,
        credit_error,
        invitations,
        members,
        invite_email: &invite_email,
        invite_error,
        keys,
        key_name: &key_name,
        key_error,
        transfer_error,
        webhooks,
        plans,
        plan_error,
        audit: audit.iter().map(audit_row).collect(),
    };
    Ok((status, render(&page)).into_response())
}

fn sms_summary(org: &Organization) -> String {
    let on = if org.sms.enabled {
        "enabled"
    } else {
        "not enabled"
    };
    let part = |name: &str, v: &Option<String>| match v {
        Some(v) => format!("{name} {v}"),
        None => format!("no {name}"),
    };
    format!(
        "{on}; {}; {}",
        part("brand", &org.sms.brand_id),
        part("campaign", &org.sms.campaign_id)
    )
}

fn audit_row(e: &AuditEntry) -> AuditRow {
    let shown = |v: &Value| match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    AuditRow {
        at: e.occurred_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        action: e.action.clone(),
        actor: e
            .actor
            .label
            .clone()
            .or_else(|| e.actor.id.clone())
            .unwrap_or_else(|| e.actor.kind.as_str().to_owned()),
        surface: e.surface.as_str(),
        changes: e
            .changes
            .iter()
            .map(|(field, c)| (field.clone(), shown(&c.before), shown(&c.after)))
            .collect(),
    }
}

#[derive(Deserialize)]
pub(crate) struct StatusForm {
    csrf: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    reason: String,
}

/// Suspends (with a reason) or reactivates: the API's organization update, so its rules apply
/// (a suspension needs a reason; the platform and the organization's partner may).
pub(crate) async fn set_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(id): Path<String>,
    Form(form): Form<StatusForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    let status = OrgStatus::parse(&form.status)
        .ok_or_else(|| PageError::new(StatusCode::BAD_REQUEST, "Not valid", "No such status."))?;
    let reason = form.reason.trim();
    let patch = OrganizationPatch {
        status: Some(status),
        status_reason: Some(
            (status != OrgStatus::Active && !reason.is_empty()).then(|| reason.to_owned()),
        ),
        ..OrganizationPatch::default()
    };
    match service::organizations::update(&state, &who.principal, id, patch, None).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/organizations/{id}")).into_response()),
        Err(ServiceError::Validation(errors)) => {
            refused_page(&state, &headers, &who, id, &errors, |m| {
                Refused::Status(reason.to_owned(), m)
            })
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct LifeForm {
    csrf: Option<String>,
    /// The delete form's "I mean it" box.
    confirm: Option<String>,
}

/// Deletes (soft: restorable) or restores the organization: the API's own, so the owner or the
/// platform may delete, and only the platform restores.
pub(crate) async fn life(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<LifeForm>,
) -> Result<Response, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let id = org_id(&id)?;
    match action.as_str() {
        "delete" => {
            if form.confirm.as_deref() != Some("yes") {
                let errors = ValidationErrors::single(
                    "confirm",
                    "required",
                    "tick the box to confirm the deletion",
                );
                return refused_page(&state, &headers, &who, id, &errors, Refused::Delete).await;
            }
            service::organizations::delete(&state, &who.principal, id, None).await?;
        }
        "restore" => {
            let admin = who.principal.platform()?;
            service::organizations::restore(&state, &admin, &who.principal, id).await?;
        }
        _ => return Err(ServiceError::NotFound.into()),
    }
    // A deleted organization exists for the platform only.
    Ok(
        match service::organizations::load(&state, &who.principal, id).await {
            Ok(_) => Redirect::to(&format!("/console/organizations/{id}")).into_response(),
            Err(_) => Redirect::to("/console/organizations").into_response(),
        },
    )
}
