//! Webhooks: the events a change emits, the endpoints that receive them, and the schedule of a
//! delivery's attempts. Events come from audit entries (one home for "what changed"): the store
//! writes an entry's events to the outbox in the entry's own transaction.
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::{FieldError, OrganizationId};

/// What happened, as a subscriber names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    OrganizationCreated,
    OrganizationUpdated,
    OrganizationDeleted,
    OrganizationRestored,
    OrganizationStatusChanged,
    MemberAdded,
    MemberUpdated,
    MemberRemoved,
    InvitationCreated,
    InvitationAccepted,
    InvitationRevoked,
    WalletCharged,
    WalletCredited,
    PlanChanged,
    SubscriptionUpdated,
    BillingOverdueChanged,
    ApiKeyCreated,
    ApiKeyRevoked,
}

impl EventType {
    pub const ALL: [EventType; 18] = [
        Self::OrganizationCreated,
        Self::OrganizationUpdated,
        Self::OrganizationDeleted,
        Self::OrganizationRestored,
        Self::OrganizationStatusChanged,
        Self::MemberAdded,
        Self::MemberUpdated,
        Self::MemberRemoved,
        Self::InvitationCreated,
        Self::InvitationAccepted,
        Self::InvitationRevoked,
        Self::WalletCharged,
        Self::WalletCredited,
        Self::PlanChanged,
        Self::SubscriptionUpdated,
        Self::BillingOverdueChanged,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrganizationCreated => "organization.created",
            Self::OrganizationUpdated => "organization.updated",
            Self::OrganizationDeleted => "organization.deleted",
            Self::OrganizationRestored => "organization.restored",
            Self::OrganizationStatusChanged => "organization.status_changed",
            Self::MemberAdded => "member.added",
            Self::MemberUpdated => "member.updated",
            Self::MemberRemoved => "member.removed",
            Self::InvitationCreated => "invitation.created",
            Self::InvitationAccepted => "invitation.accepted",
            Self::InvitationRevoked => "invitation.revoked",
            Self::WalletCharged => "wallet.charged",
            Self::WalletCredited => "wallet.credited",
            Self::PlanChanged => "plan.changed",
            Self::SubscriptionUpdated => "subscription.updated",
            Self::BillingOverdueChanged => "billing.overdue_changed",
            Self::ApiKeyCreated => "api_key.created",
            Self::ApiKeyRevoked => "api_key.revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The events an audit entry stands for: most actions are an event of the same name; an
    /// organization's update that moves its status is also `organization.status_changed`, an
    /// accepted invitation also adds a member, and an ownership transfer updates the
    /// organization. Other actions (sessions, roles, workspaces, plans of the catalogue,
    /// checkouts started) emit nothing.
    pub fn of(entry: &AuditEntry) -> Vec<EventType> {
        match entry.action.as_str() {
            "organization.updated" if entry.changes.contains_key("status") => {
                vec![Self::OrganizationUpdated, Self::OrganizationStatusChanged]
            }
            "invitation.accepted" => vec![Self::InvitationAccepted, Self::MemberAdded],
            // The organization's `owner` changed.
            "organization.ownership_transferred" => vec![Self::OrganizationUpdated],
            other => Self::parse(other).into_iter().collect(),
        }
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown event type {s}")))
    }
}

/// An event in the outbox: written with the change, fanned out to the endpoints after.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_…`: also the `webhook-id` of every delivery of it, so receivers can drop repeats.
    pub id: String,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub organization_id: Option<OrganizationId>,
    /// What a delivery's body is: `{id, type, occurredAt, organizationId, data, previous}`.
    pub payload: Value,
}

impl Event {
    /// The events of `entry`, with their payloads: `data` is the object after the change (before
    /// it, for a removal), every field as the audit log names it, where the entry carries it
    /// (an entry made with `diff`); else its id and every field the change set. `previous` is
    /// the changed fields before it (null for a creation).
    pub fn from_entry(entry: &AuditEntry) -> Vec<Event> {
        let types = EventType::of(entry);
        if types.is_empty() {
            return Vec::new();
        }
        // The object whole where the entry carries it; else its id and what changed.
        let object = entry.object.object();
        let whole = object.is_some();
        types
            .into_iter()
            .map(|t| {
                let id = format!("evt_{}", Uuid::now_v7().simple());
                let mut data = object.clone().unwrap_or_default();
                data.entry("id").or_insert_with(|| json!(entry.target.id));
                let mut previous = Map::new();
                for (field, change) in &entry.changes {
                    if !whole || !data.contains_key(field) {
                        data.insert(field.clone(), change.after.clone());
                    }
                    previous.insert(field.clone(), change.before.clone());
                }
                // Nothing before: a creation.
                let previous = if previous.values().all(Value::is_null) {
                    Value::Null
                } else {
                    Value::Object(previous)
                };
                let payload = json!({
                    "id": id,
                    "type": t.as_str(),
                    "occurredAt": entry.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "organizationId": entry.organization_id,
                    "data": Value::Object(data),
                    "previous": previous,
                });
                Event {
                    id,
                    event_type: t,
                    occurred_at: entry.occurred_at,
                    organization_id: entry.organization_id,
                    payload,
                }
            })
            .collect()
    }
}

/// Whose events an endpoint receives: the platform's (every organization's), or one
/// organization's (a partner's endpoints also receive its children's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointOwner {
    Platform,
    Organization(OrganizationId),
}

impl EndpointOwner {
    pub fn organization_id(self) -> Option<OrganizationId> {
        match self {
            Self::Platform => None,
            Self::Organization(id) => Some(id),
        }
    }
}

/// A receiver of events.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub owner: EndpointOwner,
    pub url: String,
    pub description: String,
    /// Empty: every type.
    pub event_types: Vec<EventType>,
    pub disabled: bool,
    /// Why the endpoint was disabled, when Orgbase did it (a 410, five days of failures).
    pub disabled_reason: Option<String>,
    /// `whsec_…`: signs every delivery.
    pub secret: String,
    /// The secret before the last rotation, also signing until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    /// Whether an event of `t` goes to this endpoint (ownership aside).
    pub fn wants(&self, t: EventType) -> bool {
        !self.disabled && (self.event_types.is_empty() || self.event_types.contains(&t))
    }

    /// The secrets that sign a delivery at `now`: the current one, and the one before a
    /// rotation for its 24 hours of grace.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let (Some(s), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at) {
            if now < until {
                out.push(s);
            }
        }
        out
    }
}

/// How long a rotated-out secret keeps signing.
pub fn rotation_grace() -> Duration {
    Duration::hours(24)
}

/// A new endpoint secret: `whsec_` and base64 of 32 random bytes (Standard Webhooks).
pub fn new_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The delays before each retry after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h. After the last the message has failed.
pub const RETRY_DELAYS_SECS: [i64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// When to try again after `attempts` failed attempts, or `None` when the message has failed.
/// A `Retry-After` the receiver asked for is honoured when longer (at most a day).
pub fn next_attempt(
    attempts: u32,
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
) -> Option<DateTime<Utc>> {
    let delay = *RETRY_DELAYS_SECS.get(attempts.checked_sub(1)? as usize)?;
    let mut wait = Duration::seconds(delay);
    if let Some(r) = retry_after {
        wait = wait.max(r.min(Duration::days(1)));
    }
    Some(now + wait)
}

/// An endpoint that failed every delivery for this long is disabled.
pub fn failing_limit() -> Duration {
    Duration::days(5)
}

/// At most this many characters of description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// An endpoint's description as written, checked: at most [`MAX_DESCRIPTION_CHARS`], no NUL.
pub fn parse_description(field: &str, raw: String) -> Result<String, FieldError> {
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        Err(FieldError::new(
            field,
            "too_long",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ))
    } else if raw.contains('\0') {
        Err(FieldError::new(
            field,
            "invalid_characters",
            "must not contain NUL",
        ))
    } else {
        Ok(raw)
    }
}

/// The event types of a list as written, each checked.
pub fn parse_event_types(field: &str, raw: &[String]) -> Result<Vec<EventType>, FieldError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let Some(t) = EventType::parse(s) else {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                "unknown_event_type",
                format!(
                    "{s:?} is not an event type; the types: {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ),
            ));
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.sort();
    Ok(out)
}

/// A delivery of one event to one endpoint, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Pending,
    Delivered,
    Failed,
}

impl MessageStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{FieldChange, Target};
    use crate::{Actor, AuditSurface, Origin};

    fn entry(action: &str, changes: &[(&str, Value, Value)]) -> AuditEntry {
        let mut e = AuditEntry::new(
            Some(OrganizationId(Uuid::now_v7())),
            Utc::now(),
            Actor::system("test"),
            action,
            Target::new("organization", "o1"),
            AuditSurface::Native,
            &Origin::default(),
        );
        for (f, b, a) in changes {
            e.changes.insert(
                (*f).into(),
                FieldChange {
                    before: b.clone(),
                    after: a.clone(),
                },
            );
        }
        e
    }

    #[test]
    fn a_status_change_is_two_events_with_what_was_before() {
        let e = entry(
            "organization.updated",
            &[("status", json!("active"), json!("suspended"))],
        );
        let events = Event::from_entry(&e);
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            [
                EventType::OrganizationUpdated,
                EventType::OrganizationStatusChanged
            ]
        );
        assert_eq!(events[0].payload["data"]["status"], "suspended");
        assert_eq!(events[0].payload["previous"]["status"], "active");
        assert_ne!(events[0].id, events[1].id);
        assert!(Event::from_entry(&entry("session.created", &[])).is_empty());
        let moved = Event::from_entry(&entry(
            "organization.ownership_transferred",
            &[("owner", json!("u1"), json!("u2"))],
        ));
        assert_eq!(moved[0].event_type, EventType::OrganizationUpdated);
        assert_eq!(moved[0].payload["data"]["owner"], "u2");
        assert_eq!(moved[0].payload["previous"]["owner"], "u1");
        let created = Event::from_entry(&entry(
            "organization.created",
            &[("name", Value::Null, json!("Acme"))],
        ));
        assert_eq!(created[0].payload["previous"], Value::Null);
    }

    #[test]
    fn the_retry_schedule_ends_after_eight_attempts() {
        let now = Utc::now();
        assert_eq!(next_attempt(1, now, None), Some(now + Duration::seconds(5)));
        assert_eq!(
            next_attempt(1, now, Some(Duration::seconds(60))),
            Some(now + Duration::seconds(60))
        );
        assert_eq!(
            next_attempt(7, now, None),
            Some(now + Duration::seconds(36000))
        );
        assert_eq!(next_attempt(8, now, None), None);
        assert!(new_secret().starts_with("whsec_"));
        assert!(new_secret().len() >= 6 + 43);
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookMessage {
    /// `msg_…`.
    pub id: String,
    pub endpoint_id: Uuid,
    pub event_id: String,
    pub event_type: EventType,
    pub status: MessageStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending messages only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A message due for an attempt, with what the attempt needs.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub message: WebhookMessage,
    /// The event's payload, as stored: the body of the request.
    pub payload: String,
    pub endpoint: WebhookEndpoint,
}

/// One attempt at delivering a message.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAttempt {
    /// `atm_…`.
    pub id: String,
    pub message_id: String,
    pub endpoint_id: Uuid,
    pub attempted_at: DateTime<Utc>,
    /// The receiver's status, when it answered.
    pub status_code: Option<u16>,
    /// The first KiB of its answer.
    pub response: Option<String>,
    pub duration_ms: u32,
    /// Why no answer was had (a timeout, a refused connection, an address refused).
    pub error: Option<String>,
}

/// What an attempt leaves of its message.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub status: MessageStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Disables the endpoint, with this reason (a 410; five days of failures).
    pub disable_endpoint: Option<String>,
}

impl crate::audit::Audited for WebhookEndpoint {
    fn audit_fields<'a>(d: &mut crate::audit::Diff<'a, Self>) {
        d.field("url", |e| e.url.as_str());
        d.field("description", |e| e.description.as_str());
        d.field("eventTypes", |e| e.event_types.clone());
        d.field("disabled", |e| e.disabled);
        d.field("disabledReason", |e| e.disabled_reason.as_deref());
        // The secret is never written down: its change shows, not its value.
        d.field("secret", |e| {
            if e.secret.is_empty() {
                ""
            } else {
                crate::webhook::REDACTED
            }
        });
    }
}

/// How the audit log shows a secret.
pub const REDACTED: &str = "[redacted]";
