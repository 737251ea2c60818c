//! Webhook endpoints and their deliveries: an organization's under
//! `/api/organizations/{organizationId}/webhooks…` (`webhooks:manage`; a partner's endpoints
//! also receive its children's events), the platform's under `/api/admin/webhooks…` (every
//! organization's events). The same handlers serve both, through [`Owner`].
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use orgbase_domain::organization::parse_web_url;
use orgbase_domain::webhook::{
    parse_description, parse_event_types, EventType, WebhookAttempt, WebhookEndpoint,
    WebhookMessage,
};
use orgbase_domain::{Permission, ValidationErrors};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{org_id, Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service;
use crate::service::webhooks::{EndpointChange, Scope};
use crate::AppState;

/// An endpoint, as answers show it (never its secret, but at its creation and rotation).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    #[schema(example = "01935f4e-7a9c-7d2e-b3c4-5f6a7b8c9d0e")]
    pub id: Uuid,
    /// The organization whose events it receives (with its children's, for a partner); null
    /// for the platform's, which receive every organization's.
    pub organization_id: Option<Uuid>,
    #[schema(example = "https://hooks.example.com/orgbase")]
    pub url: String,
    pub description: String,
    /// The event types it receives; empty for all.
    #[schema(value_type = Vec<String>, example = json!(["organization.status_changed", "member.added"]))]
    pub event_types: Vec<EventType>,
    pub disabled: bool,
    /// Why Orgbase disabled it (a 410 answer; five days of failures), if it did.
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation also signs, if it does.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&WebhookEndpoint> for EndpointView {
    fn from(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            organization_id: e.owner.organization_id().map(|o| o.0),
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: e.event_types.clone(),
            disabled: e.disabled,
            disabled_reason: e.disabled_reason.clone(),
            previous_secret_expires_at: e
                .previous_secret_expires_at
                .filter(|t| *t > orgbase_domain::now())
                .as_ref()
                .map(rfc3339),
            created_at: rfc3339(&e.created_at),
            updated_at: rfc3339(&e.updated_at),
        }
    }
}

/// An endpoint with its secret: shown at creation and rotation only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_…`: verify every delivery with it (Standard Webhooks). Shown this once.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub data: Vec<EndpointView>,
}

/// A creation's or a change's fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointInput {
    /// Where deliveries go: an http(s) URL reaching a public address.
    #[schema(value_type = String, max_length = 2048, example = "https://hooks.example.com/orgbase")]
    pub url: Field<String>,
    /// At most 500 characters.
    #[schema(value_type = String, max_length = 500, example = "CRM sync")]
    pub description: Field<String>,
    /// The event types to receive; empty (the default) for all.
    #[schema(value_type = Vec<String>)]
    pub event_types: Field<Vec<String>>,
    /// A disabled endpoint receives nothing; enabling it clears `disabledReason`.
    #[schema(value_type = bool)]
    pub disabled: Field<bool>,
}

/// A delivery of one event to the endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// `msg_…`.
    pub id: String,
    /// `evt_…`: the `webhook-id` header of every attempt.
    pub event_id: String,
    #[schema(value_type = String, example = "member.added")]
    pub event_type: EventType,
    /// `pending`, `delivered` or `failed`.
    #[schema(example = "delivered")]
    pub status: &'static str,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<WebhookMessage> for MessageView {
    fn from(m: WebhookMessage) -> Self {
        Self {
            id: m.id,
            event_id: m.event_id,
            event_type: m.event_type,
            status: m.status.as_str(),
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at.as_ref().map(rfc3339),
            created_at: rfc3339(&m.created_at),
            updated_at: rfc3339(&m.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageList {
    pub data: Vec<MessageView>,
    /// For the next page (`before`); null on the last.
    pub next_cursor: Option<String>,
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub id: String,
    pub attempted_at: String,
    /// The receiver's status, when it answered.
    pub status_code: Option<u16>,
    /// The first KiB of its answer.
    pub response: Option<String>,
    pub duration_ms: u32,
    /// Why there was no answer.
    pub error: Option<String>,
}

impl From<WebhookAttempt> for AttemptView {
    fn from(a: WebhookAttempt) -> Self {
        Self {
            id: a.id,
            attempted_at: rfc3339(&a.attempted_at),
            status_code: a.status_code,
            response: a.response,
            duration_ms: a.duration_ms,
            error: a.error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptList {
    pub message: MessageView,
    pub data: Vec<AttemptView>,
}

/// What the endpoint answered to an example event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestAnswer {
    pub event_id: String,
    /// Whether it answered 2xx.
    pub succeeded: bool,
    pub status_code: Option<u16>,
    pub response: Option<String>,
    pub duration_ms: u32,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    /// How many deliveries go again.
    pub requeued: u64,
}

/// Query of the message list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MessageQuery {
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(pattern = "^msg_[0-9a-f]{32}$")]
    before: Option<String>,
}

/// Whose endpoints a route manages.
enum Owner {
    Organization(String),
    Platform,
}

/// Runs `f` with the scope the caller may manage endpoints in.
async fn with_scope<T>(
    state: &AppState,
    who: &Principal,
    owner: Owner,
    f: impl AsyncFnOnce(&Scope<'_>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    match owner {
        Owner::Organization(id) => {
            let access =
                service::load_with(state, who, org_id(&id)?, Permission::WebhooksManage).await?;
            f(&Scope::Organization(&access)).await
        }
        Owner::Platform => {
            let admin = who.platform()?;
            f(&Scope::Platform(&admin)).await
        }
    }
}

fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// The fields of `body`, checked; `url` required on creation.
fn parse_input(
    body: EndpointInput,
    creating: bool,
    errors: &mut ValidationErrors,
) -> EndpointChange {
    let url = if creating {
        body.url.required("url", errors)
    } else {
        body.url.optional("url", errors)
    };
    let description = body.description.optional("description", errors);
    let event_types = body.event_types.optional("eventTypes", errors);
    EndpointChange {
        url: url.and_then(|u| errors.check(parse_web_url("url", &u, true))),
        description: description.and_then(|d| errors.check(parse_description("description", d))),
        event_types: event_types.and_then(|t| errors.check(parse_event_types("eventTypes", &t))),
        disabled: body.disabled.optional("disabled", errors),
    }
}

async fn list(
    state: AppState,
    who: Principal,
    owner: Owner,
) -> Result<Json<EndpointList>, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let all = service::webhooks::list(&state, scope).await?;
        Ok(Json(EndpointList {
            data: all.iter().map(EndpointView::from).collect(),
        }))
    })
    .await
}

async fn create(
    state: AppState,
    who: Principal,
    owner: Owner,
    body: EndpointInput,
    mut errors: ValidationErrors,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let mut change = parse_input(body, true, &mut errors);
        errors.into_result()?;
        let url = change.url.take().expect("validated");
        let e = service::webhooks::create(&state, scope, url, change).await?;
        Ok((
            StatusCode::CREATED,
            Json(EndpointWithSecret {
                endpoint: EndpointView::from(&e),
                secret: e.secret,
            }),
        ))
    })
    .await
}

async fn get(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
) -> Result<Json<EndpointView>, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let e = service::webhooks::get(&state, scope, endpoint_id(&id)?).await?;
        Ok(Json(EndpointView::from(&e)))
    })
    .await
}

async fn update(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
    body: EndpointInput,
    mut errors: ValidationErrors,
) -> Result<Json<EndpointView>, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let id = endpoint_id(&id)?;
        service::webhooks::get(&state, scope, id).await?;
        let change = parse_input(body, false, &mut errors);
        errors.into_result()?;
        let e = service::webhooks::update(&state, scope, id, change).await?;
        Ok(Json(EndpointView::from(&e)))
    })
    .await
}

async fn delete(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
) -> Result<StatusCode, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        service::webhooks::delete(&state, scope, endpoint_id(&id)?).await?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn rotate(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let e = service::webhooks::rotate_secret(&state, scope, endpoint_id(&id)?).await?;
        Ok(Json(EndpointWithSecret {
            endpoint: EndpointView::from(&e),
            secret: e.secret,
        }))
    })
    .await
}

/// `eventType` of a query string, or `organization.updated`.
fn test_type(raw: Option<&str>) -> Result<EventType, ApiError> {
    let mut t = EventType::OrganizationUpdated;
    let mut errors = ValidationErrors::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "eventType" => match EventType::parse(&v) {
                Some(p) => t = p,
                None => errors.add("eventType", "unknown_event_type", "is not an event type"),
            },
            other => errors.add(other, "unknown_parameter", "is not a parameter here"),
        }
    }
    errors.into_result()?;
    Ok(t)
}

async fn test(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
    raw: Option<String>,
) -> Result<Json<TestAnswer>, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let id = endpoint_id(&id)?;
        service::webhooks::get(&state, scope, id).await?;
        let t = test_type(raw.as_deref())?;
        let limit = service::webhooks::test_limit(state.config.request_timeout);
        let (event_id, sent) = service::webhooks::send_test(&state, scope, id, t, limit).await?;
        Ok(Json(TestAnswer {
            event_id,
            succeeded: sent.succeeded(),
            status_code: sent.status,
            response: sent.response,
            duration_ms: sent.duration_ms,
            error: sent.error,
        }))
    })
    .await
}

fn parse_messages_query(raw: Option<&str>) -> Result<(u32, Option<String>), ApiError> {
    let mut limit = 50;
    let mut before = None;
    let mut errors = ValidationErrors::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => limit = n,
                _ => errors.add("limit", "out_of_range", "must be an integer from 1 to 100"),
            },
            "before" => {
                let ok = v.len() == 36
                    && v.starts_with("msg_")
                    && v[4..]
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
                if ok {
                    before = Some(v.into_owned());
                } else {
                    errors.add(
                        "before",
                        "invalid_cursor",
                        "is not a cursor this API gave out",
                    );
                }
            }
            other => errors.add(
                other,
                "unknown_parameter",
                "is not a parameter of this list",
            ),
        }
    }
    errors.into_result()?;
    Ok((limit, before))
}

async fn messages(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
    raw: Option<String>,
) -> Result<Json<MessageList>, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let id = endpoint_id(&id)?;
        service::webhooks::get(&state, scope, id).await?;
        let (limit, before) = parse_messages_query(raw.as_deref())?;
        let page =
            service::webhooks::messages(&state, scope, id, before.as_deref(), limit + 1).await?;
        let more = page.len() > limit as usize;
        let data: Vec<MessageView> = page
            .into_iter()
            .take(limit as usize)
            .map(MessageView::from)
            .collect();
        let next_cursor = more.then(|| data.last().map(|m| m.id.clone())).flatten();
        Ok(Json(MessageList { data, next_cursor }))
    })
    .await
}

async fn attempts(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
    message: String,
) -> Result<Json<AttemptList>, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let (m, a) = service::webhooks::message(&state, scope, endpoint_id(&id)?, &message).await?;
        Ok(Json(AttemptList {
            message: m.into(),
            data: a.into_iter().map(AttemptView::from).collect(),
        }))
    })
    .await
}

async fn replay(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
    message: String,
) -> Result<StatusCode, ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        service::webhooks::replay(&state, scope, endpoint_id(&id)?, &message).await?;
        Ok(StatusCode::ACCEPTED)
    })
    .await
}

async fn recover(
    state: AppState,
    who: Principal,
    owner: Owner,
    id: String,
    raw: Option<String>,
) -> Result<(StatusCode, Json<Recovered>), ApiError> {
    with_scope(&state, &who, owner, async |scope| {
        let id = endpoint_id(&id)?;
        service::webhooks::get(&state, scope, id).await?;
        let mut since: Option<DateTime<Utc>> = None;
        let mut errors = ValidationErrors::new();
        for (k, v) in url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "since" => match DateTime::parse_from_rfc3339(&v) {
                    Ok(t) => since = Some(t.with_timezone(&Utc)),
                    Err(_) => errors.add("since", "invalid_value", "must be an RFC 3339 time"),
                },
                other => errors.add(other, "unknown_parameter", "is not a parameter here"),
            }
        }
        let Some(since) = since else {
            errors.add(
                "since",
                "required",
                "is required: resend what failed since when",
            );
            return Err(errors.into());
        };
        errors.into_result()?;
        let requeued = service::webhooks::recover(&state, scope, id, since).await?;
        Ok((StatusCode::ACCEPTED, Json(Recovered { requeued })))
    })
    .await
}

// --- The routes: an organization's, then the platform's -----------------------------------------

// --- The routes: an organization's, then the platform's ---------------------------------------

/// List an organization's webhook endpoints.
#[utoipa::path(get, path = "/api/organizations/{organizationId}/webhooks", operation_id = "listWebhookEndpoints", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ),
    responses((status = 200, description = "The endpoints, oldest first", body = EndpointList)),
    security(("bearer" = [])))]
pub async fn org_list(
    State(s): State<AppState>,
    who: Principal,
    Path(org): Path<String>,
) -> Result<Json<EndpointList>, ApiError> {
    list(s, who, Owner::Organization(org)).await
}

/// Create a webhook endpoint. Its secret is in this answer only.
#[utoipa::path(post, path = "/api/organizations/{organizationId}/webhooks", operation_id = "createWebhookEndpoint", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ),
    request_body = EndpointInput,
    responses((status = 201, description = "Created, with its secret", body = EndpointWithSecret)),
    security(("bearer" = [])))]
pub async fn org_create(
    State(s): State<AppState>,
    who: Principal,
    Path(org): Path<String>,
    JsonBody(body, errors): JsonBody<EndpointInput>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    create(s, who, Owner::Organization(org), body, errors).await
}

/// Get a webhook endpoint.
#[utoipa::path(get, path = "/api/organizations/{organizationId}/webhooks/{endpointId}", operation_id = "getWebhookEndpoint", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path)),
    responses((status = 200, description = "The endpoint", body = EndpointView)),
    security(("bearer" = [])))]
pub async fn org_get(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<EndpointView>, ApiError> {
    get(s, who, Owner::Organization(org), id).await
}

/// Change a webhook endpoint: its URL, description, event types, or whether it is disabled.
#[utoipa::path(patch, path = "/api/organizations/{organizationId}/webhooks/{endpointId}", operation_id = "updateWebhookEndpoint", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path)),
    request_body = EndpointInput,
    responses((status = 200, description = "The endpoint as changed", body = EndpointView)),
    security(("bearer" = [])))]
pub async fn org_update(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id)): Path<(String, String)>,
    JsonBody(body, errors): JsonBody<EndpointInput>,
) -> Result<Json<EndpointView>, ApiError> {
    update(s, who, Owner::Organization(org), id, body, errors).await
}

/// Delete a webhook endpoint, with its delivery history.
#[utoipa::path(delete, path = "/api/organizations/{organizationId}/webhooks/{endpointId}", operation_id = "deleteWebhookEndpoint", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path)),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = [])))]
pub async fn org_delete(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(s, who, Owner::Organization(org), id).await
}

/// Rotate an endpoint's secret. The old one keeps signing, beside the new, for 24 hours.
#[utoipa::path(post, path = "/api/organizations/{organizationId}/webhooks/{endpointId}/rotate-secret", operation_id = "rotateWebhookSecret", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path)),
    responses((status = 200, description = "The endpoint with its new secret", body = EndpointWithSecret)),
    security(("bearer" = [])))]
pub async fn org_rotate(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    rotate(s, who, Owner::Organization(org), id).await
}

/// Send an example event to the endpoint now, signed, and see what it answers.
///
/// The answer is waited for 5 seconds at most (and at most half the request timeout); past that,
/// `error` says it timed out.
#[utoipa::path(post, path = "/api/organizations/{organizationId}/webhooks/{endpointId}/test", operation_id = "testWebhookEndpoint", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path), ("eventType" = Option<String>, Query, description = "The example's type (default `organization.updated`)")),
    responses((status = 200, description = "What the endpoint answered", body = TestAnswer)),
    security(("bearer" = [])))]
pub async fn org_test(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<TestAnswer>, ApiError> {
    test(s, who, Owner::Organization(org), id, raw).await
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/api/organizations/{organizationId}/webhooks/{endpointId}/messages", operation_id = "listWebhookMessages", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path), MessageQuery),
    responses((status = 200, description = "One page of deliveries", body = MessageList)),
    security(("bearer" = [])))]
pub async fn org_messages(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<MessageList>, ApiError> {
    messages(s, who, Owner::Organization(org), id, raw).await
}

/// A delivery and every attempt at it.
#[utoipa::path(get, path = "/api/organizations/{organizationId}/webhooks/{endpointId}/messages/{messageId}/attempts", operation_id = "listWebhookAttempts", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path), ("messageId" = String, Path)),
    responses((status = 200, description = "The delivery and its attempts, oldest first", body = AttemptList)),
    security(("bearer" = [])))]
pub async fn org_attempts(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id, message)): Path<(String, String, String)>,
) -> Result<Json<AttemptList>, ApiError> {
    attempts(s, who, Owner::Organization(org), id, message).await
}

/// Send a delivery again, whatever became of it.
#[utoipa::path(post, path = "/api/organizations/{organizationId}/webhooks/{endpointId}/messages/{messageId}/replay", operation_id = "replayWebhookMessage", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path), ("messageId" = String, Path)),
    responses((status = 202, description = "Queued to go again")),
    security(("bearer" = [])))]
pub async fn org_replay(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id, message)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    replay(s, who, Owner::Organization(org), id, message).await
}

/// Send again every delivery of the endpoint that failed since a time.
#[utoipa::path(post, path = "/api/organizations/{organizationId}/webhooks/{endpointId}/recover", operation_id = "recoverWebhookEndpoint", tag = "Webhooks",
    params(("organizationId" = Uuid, Path), ("endpointId" = Uuid, Path), ("since" = String, Query, format = DateTime, description = "RFC 3339")),
    responses((status = 202, description = "How many go again", body = Recovered)),
    security(("bearer" = [])))]
pub async fn org_recover(
    State(s): State<AppState>,
    who: Principal,
    Path((org, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<(StatusCode, Json<Recovered>), ApiError> {
    recover(s, who, Owner::Organization(org), id, raw).await
}

/// List the platform's webhook endpoints.
#[utoipa::path(get, path = "/api/admin/webhooks", operation_id = "listPlatformWebhookEndpoints", tag = "Webhooks",
    responses((status = 200, description = "The endpoints, oldest first", body = EndpointList)),
    security(("bearer" = [])))]
pub async fn admin_list(
    State(s): State<AppState>,
    who: Principal,
) -> Result<Json<EndpointList>, ApiError> {
    list(s, who, Owner::Platform).await
}

/// Create a webhook endpoint. Its secret is in this answer only.
#[utoipa::path(post, path = "/api/admin/webhooks", operation_id = "createPlatformWebhookEndpoint", tag = "Webhooks",
    request_body = EndpointInput,
    responses((status = 201, description = "Created, with its secret", body = EndpointWithSecret)),
    security(("bearer" = [])))]
pub async fn admin_create(
    State(s): State<AppState>,
    who: Principal,
    JsonBody(body, errors): JsonBody<EndpointInput>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    create(s, who, Owner::Platform, body, errors).await
}

/// Get a webhook endpoint.
#[utoipa::path(get, path = "/api/admin/webhooks/{endpointId}", operation_id = "getPlatformWebhookEndpoint", tag = "Webhooks",
    params(("endpointId" = Uuid, Path)),
    responses((status = 200, description = "The endpoint", body = EndpointView)),
    security(("bearer" = [])))]
pub async fn admin_get(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    get(s, who, Owner::Platform, id).await
}

/// Change a webhook endpoint: its URL, description, event types, or whether it is disabled.
#[utoipa::path(patch, path = "/api/admin/webhooks/{endpointId}", operation_id = "updatePlatformWebhookEndpoint", tag = "Webhooks",
    params(("endpointId" = Uuid, Path)),
    request_body = EndpointInput,
    responses((status = 200, description = "The endpoint as changed", body = EndpointView)),
    security(("bearer" = [])))]
pub async fn admin_update(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body, errors): JsonBody<EndpointInput>,
) -> Result<Json<EndpointView>, ApiError> {
    update(s, who, Owner::Platform, id, body, errors).await
}

/// Delete a webhook endpoint, with its delivery history.
#[utoipa::path(delete, path = "/api/admin/webhooks/{endpointId}", operation_id = "deletePlatformWebhookEndpoint", tag = "Webhooks",
    params(("endpointId" = Uuid, Path)),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = [])))]
pub async fn admin_delete(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(s, who, Owner::Platform, id).await
}

/// Rotate an endpoint's secret. The old one keeps signing, beside the new, for 24 hours.
#[utoipa::path(post, path = "/api/admin/webhooks/{endpointId}/rotate-secret", operation_id = "rotatePlatformWebhookSecret", tag = "Webhooks",
    params(("endpointId" = Uuid, Path)),
    responses((status = 200, description = "The endpoint with its new secret", body = EndpointWithSecret)),
    security(("bearer" = [])))]
pub async fn admin_rotate(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    rotate(s, who, Owner::Platform, id).await
}

/// Send an example event to the endpoint now, signed, and see what it answers.
///
/// The answer is waited for 5 seconds at most (and at most half the request timeout); past that,
/// `error` says it timed out.
#[utoipa::path(post, path = "/api/admin/webhooks/{endpointId}/test", operation_id = "testPlatformWebhookEndpoint", tag = "Webhooks",
    params(("endpointId" = Uuid, Path), ("eventType" = Option<String>, Query, description = "The example's type (default `organization.updated`)")),
    responses((status = 200, description = "What the endpoint answered", body = TestAnswer)),
    security(("bearer" = [])))]
pub async fn admin_test(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<TestAnswer>, ApiError> {
    test(s, who, Owner::Platform, id, raw).await
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/api/admin/webhooks/{endpointId}/messages", operation_id = "listPlatformWebhookMessages", tag = "Webhooks",
    params(("endpointId" = Uuid, Path), MessageQuery),
    responses((status = 200, description = "One page of deliveries", body = MessageList)),
    security(("bearer" = [])))]
pub async fn admin_messages(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<MessageList>, ApiError> {
    messages(s, who, Owner::Platform, id, raw).await
}

/// A delivery and every attempt at it.
#[utoipa::path(get, path = "/api/admin/webhooks/{endpointId}/messages/{messageId}/attempts", operation_id = "listPlatformWebhookAttempts", tag = "Webhooks",
    params(("endpointId" = Uuid, Path), ("messageId" = String, Path)),
    responses((status = 200, description = "The delivery and its attempts, oldest first", body = AttemptList)),
    security(("bearer" = [])))]
pub async fn admin_attempts(
    State(s): State<AppState>,
    who: Principal,
    Path((id, message)): Path<(String, String)>,
) -> Result<Json<AttemptList>, ApiError> {
    attempts(s, who, Owner::Platform, id, message).await
}

/// Send a delivery again, whatever became of it.
#[utoipa::path(post, path = "/api/admin/webhooks/{endpointId}/messages/{messageId}/replay", operation_id = "replayPlatformWebhookMessage", tag = "Webhooks",
    params(("endpointId" = Uuid, Path), ("messageId" = String, Path)),
    responses((status = 202, description = "Queued to go again")),
    security(("bearer" = [])))]
pub async fn admin_replay(
    State(s): State<AppState>,
    who: Principal,
    Path((id, message)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    replay(s, who, Owner::Platform, id, message).await
}

/// Send again every delivery of the endpoint that failed since a time.
#[utoipa::path(post, path = "/api/admin/webhooks/{endpointId}/recover", operation_id = "recoverPlatformWebhookEndpoint", tag = "Webhooks",
    params(("endpointId" = Uuid, Path), ("since" = String, Query, format = DateTime, description = "RFC 3339")),
    responses((status = 202, description = "How many go again", body = Recovered)),
    security(("bearer" = [])))]
pub async fn admin_recover(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<(StatusCode, Json<Recovered>), ApiError> {
    recover(s, who, Owner::Platform, id, raw).await
}
