//! Webhook endpoints: an organization's (under `webhooks:manage`; a partner's also receive its
//! children's events) and the platform's (every organization's events). Their deliveries are
//! read and replayed here; the worker in `orgbase_webhooks` makes them.
use chrono::{DateTime, Utc};
use orgbase_domain::webhook::{
    new_secret, rotation_grace, EndpointOwner, EventType, WebhookAttempt, WebhookEndpoint,
    WebhookMessage,
};
use orgbase_domain::{
    now, Actor, AuditEntry, OrganizationId, Permission, Target, ValidationErrors,
};
use serde_json::json;
use uuid::Uuid;

use super::audit;
use crate::access::{OrgAccess, PlatformAdmin};
use crate::{ServiceError, Services};

/// Who manages endpoints here: an organization's caller with `webhooks:manage`, or the platform.
pub enum Scope<'a> {
    Organization(&'a OrgAccess<'a>),
    Platform(&'a PlatformAdmin),
}

impl Scope<'_> {
    fn authorize(&self) -> Result<(), ServiceError> {
        match self {
            Scope::Organization(a) => a.require(Permission::WebhooksManage),
            Scope::Platform(_) => Ok(()),
        }
    }
    fn owner(&self) -> EndpointOwner {
        match self {
            Scope::Organization(a) => EndpointOwner::Organization(a.org.id),
            Scope::Platform(_) => EndpointOwner::Platform,
        }
    }
    fn org_id(&self) -> Option<OrganizationId> {
        self.owner().organization_id()
    }
    fn entry(&self, action: &str, id: Uuid) -> AuditEntry {
        let actor: Actor = match self {
            Scope::Organization(a) => a.principal.audit_actor(),
            Scope::Platform(p) => p.audit_actor(),
        };
        audit::entry(
            actor,
            self.org_id(),
            action,
            Target::new("webhook_endpoint", id),
        )
    }
}

/// What a creation or a change sets (each checked already; the URL's reach is checked here).
#[derive(Debug, Default, Clone)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub disabled: Option<bool>,
}

/// The endpoints of the scope, oldest first.
pub async fn list(
    state: &Services,
    scope: &Scope<'_>,
) -> Result<Vec<WebhookEndpoint>, ServiceError> {
    scope.authorize()?;
    Ok(state.store.list_webhook_endpoints(scope.owner()).await?)
}

/// One endpoint of the scope; 404 for another's.
pub async fn get(
    state: &Services,
    scope: &Scope<'_>,
    id: Uuid,
) -> Result<WebhookEndpoint, ServiceError> {
    scope.authorize()?;
    match state.store.get_webhook_endpoint(id).await? {
        Some(e) if e.owner == scope.owner() => Ok(e),
        _ => Err(ServiceError::NotFound),
    }
}

/// Refuses a URL that reaches an internal address (unless the node allows it).
async fn check_reach(state: &Services, url: &str) -> Result<(), ServiceError> {
    let allow = state.webhooks.deliverer.allows_private();
    orgbase_webhooks::guard::check_url(url, allow)
        .await
        .map_err(|why| {
            let mut e = ValidationErrors::new();
            e.add("url", "unreachable_url", why);
            ServiceError::Validation(e)
        })
}

/// A new endpoint; its secret is in the answer, and only there.
pub async fn create(
    state: &Services,
    scope: &Scope<'_>,
    url: String,
    change: EndpointChange,
) -> Result<WebhookEndpoint, ServiceError> {
    scope.authorize()?;
    check_reach(state, &url).await?;
    let t = now();
    let e = WebhookEndpoint {
        id: Uuid::now_v7(),
        owner: scope.owner(),
        url,
        description: change.description.unwrap_or_default(),
        event_types: change.event_types.unwrap_or_default(),
        disabled: change.disabled.unwrap_or(false),
        disabled_reason: None,
        secret: new_secret(),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: t,
        updated_at: t,
    };
    let entry = scope
        .entry("webhook_endpoint.created", e.id)
        .diff(None, Some(&e));
    audit::record(vec![entry], state.store.create_webhook_endpoint(&e)).await?;
    tracing::info!(endpoint = %e.id, organization_id = ?scope.org_id(), "webhook endpoint created");
    Ok(e)
}

/// Changes an endpoint. Enabling one clears why it was disabled.
pub async fn update(
    state: &Services,
    scope: &Scope<'_>,
    id: Uuid,
    change: EndpointChange,
) -> Result<WebhookEndpoint, ServiceError> {
    let current = get(state, scope, id).await?;
    if let Some(url) = &change.url {
        if *url != current.url {
            check_reach(state, url).await?;
        }
    }
    let mut next = current.clone();
    if let Some(v) = change.url {
        next.url = v;
    }
    if let Some(v) = change.description {
        next.description = v;
    }
    if let Some(v) = change.event_types {
        next.event_types = v;
    }
    if let Some(v) = change.disabled {
        next.disabled = v;
        if !v {
            next.disabled_reason = None;
        }
    }
    if next == current {
        return Ok(current);
    }
    next.updated_at = now();
    let entry = scope
        .entry("webhook_endpoint.updated", id)
        .diff(Some(&current), Some(&next));
    write(state, entry, &next).await?;
    Ok(next)
}

async fn write(
    state: &Services,
    entry: AuditEntry,
    e: &WebhookEndpoint,
) -> Result<(), ServiceError> {
    if audit::record(vec![entry], state.store.update_webhook_endpoint(e)).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound)
    }
}

/// A new secret; the old one keeps signing (beside it) for 24 hours.
pub async fn rotate_secret(
    state: &Services,
    scope: &Scope<'_>,
    id: Uuid,
) -> Result<WebhookEndpoint, ServiceError> {
    let current = get(state, scope, id).await?;
    let t = now();
    let next = WebhookEndpoint {
        secret: new_secret(),
        previous_secret: Some(current.secret.clone()),
        previous_secret_expires_at: Some(t + rotation_grace()),
        updated_at: t,
        ..current.clone()
    };
    let entry = scope.entry("webhook_endpoint.secret_rotated", id).field(
        "secret",
        json!(orgbase_domain::webhook::REDACTED),
        json!(orgbase_domain::webhook::REDACTED),
    );
    write(state, entry, &next).await?;
    Ok(next)
}

/// Removes an endpoint with its delivery history.
pub async fn delete(state: &Services, scope: &Scope<'_>, id: Uuid) -> Result<(), ServiceError> {
    let current = get(state, scope, id).await?;
    let entry = scope
        .entry("webhook_endpoint.deleted", id)
        .diff(Some(&current), None);
    if audit::record(vec![entry], state.store.delete_webhook_endpoint(id)).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound)
    }
}

/// What a test delivery got.
pub use orgbase_webhooks::Sent;

/// How long a test send waits for the receiver, given the request's deadline: 5 s at most, and at
/// most half the deadline, so that the request answers what the receiver did in time.
pub fn test_limit(request_timeout: std::time::Duration) -> std::time::Duration {
    orgbase_webhooks::deliver::TEST_TIMEOUT.min(request_timeout / 2)
}

/// Sends an example event of `event_type` to the endpoint now (not stored, not retried), signed
/// as every delivery is, and answers what the endpoint said within `limit`.
pub async fn send_test(
    state: &Services,
    scope: &Scope<'_>,
    id: Uuid,
    event_type: EventType,
    limit: std::time::Duration,
) -> Result<(String, Sent), ServiceError> {
    let e = get(state, scope, id).await?;
    let t = now();
    let event_id = format!("evt_{}", Uuid::now_v7().simple());
    let body = json!({
        "id": event_id,
        "type": event_type.as_str(),
        "occurredAt": t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "organizationId": scope.org_id(),
        "data": {"id": "example", "test": true},
        "previous": null,
    })
    .to_string();
    let sent = state
        .webhooks
        .deliverer
        .send(&e.url, &event_id, &body, &e.signing_secrets(t), t, limit)
        .await;
    // Data went out: who sent it, and what came back, are on record.
    let entry = scope
        .entry("webhook_endpoint.tested", id)
        .field("eventType", json!(null), json!(event_type.as_str()))
        .field("statusCode", json!(null), json!(sent.status));
    state.store.append_audit_entries(&[entry]).await?;
    Ok((event_id, sent))
}

/// The endpoint's deliveries, newest first.
pub async fn messages(
    state: &Services,
    scope: &Scope<'_>,
    id: Uuid,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<WebhookMessage>, ServiceError> {
    get(state, scope, id).await?;
    Ok(state.store.list_webhook_messages(id, before, limit).await?)
}

/// A delivery of the endpoint, with its attempts.
pub async fn message(
    state: &Services,
    scope: &Scope<'_>,
    id: Uuid,
    message: &str,
) -> Result<(WebhookMessage, Vec<WebhookAttempt>), ServiceError> {
    get(state, scope, id).await?;
    let m = state
        .store
        .get_webhook_message(message)
        .await?
        .filter(|m| m.endpoint_id == id)
        .ok_or(ServiceError::NotFound)?;
    let attempts = state.store.list_webhook_attempts(message).await?;
    Ok((m, attempts))
}

/// Sends a delivery again, whatever became of it.
pub async fn replay(
    state: &Services,
    scope: &Scope<'_>,
    id: Uuid,
    message: &str,
) -> Result<(), ServiceError> {
    let (m, _) = self::message(state, scope, id, message).await?;
    let entry = scope
        .entry("webhook_message.replayed", id)
        .field("messageId", json!(null), json!(m.id))
        .field("eventId", json!(null), json!(m.event_id));
    audit::record(
        vec![entry],
        state
            .store
            .requeue_webhook_messages(id, Some(&m.id), None, now()),
    )
    .await?;
    state.webhooks.worker.wake();
    Ok(())
}

/// Sends again every delivery of the endpoint that failed since `since`; answers how many.
pub async fn recover(
    state: &Services,
    scope: &Scope<'_>,
    id: Uuid,
    since: DateTime<Utc>,
) -> Result<u64, ServiceError> {
    get(state, scope, id).await?;
    let entry = scope.entry("webhook_endpoint.recovered", id).field(
        "failedSince",
        json!(null),
        json!(since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    let n = state
        .store
        .requeue_webhook_messages(id, None, Some(since), now())
        .await?;
    // Asked for, whether or not anything had failed: on record either way.
    let entry = entry.field("requeued", json!(null), json!(n));
    state.store.append_audit_entries(&[entry]).await?;
    state.webhooks.worker.wake();
    Ok(n)
}

/// The messages waiting for delivery, of every endpoint (the backlog), for `/metrics`.
pub async fn pending(state: &Services) -> Result<u64, ServiceError> {
    Ok(state.store.pending_webhook_messages().await?)
}
