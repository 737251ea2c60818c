//! The audit log: one entry for every change, written in the change's own transaction.
//!
//! An entry says who changed what, how and through which surface. `changes` holds each changed
//! field's value before and after, with secrets, password hashes and tokens never included: an
//! entity lists the fields it shows in the log with [`Audited::audit_fields`], and those are the
//! only fields an entry can name.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::OrganizationId;

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    PlatformKey,
    PartnerKey,
    OrganizationKey,
    User,
    /// A billing provider's webhook (Stripe, Chargebee).
    BillingProvider,
    /// Orgbase itself: purges, expiries, cascades.
    System,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformKey => "platform_key",
            Self::PartnerKey => "partner_key",
            Self::OrganizationKey => "organization_key",
            Self::User => "user",
            Self::BillingProvider => "billing_provider",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "platform_key" => Self::PlatformKey,
            "partner_key" => Self::PartnerKey,
            "organization_key" => Self::OrganizationKey,
            "user" => Self::User,
            "billing_provider" => Self::BillingProvider,
            "system" => Self::System,
            _ => return None,
        })
    }
}

/// Who made a change: its type, its id (a key's, a person's, a provider's name) and a label a
/// person reads (a key's name, an e-mail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorType,
    pub id: Option<String>,
    pub label: Option<String>,
}

impl Actor {
    pub fn new(kind: ActorType, id: impl ToString, label: Option<String>) -> Self {
        Self {
            kind,
            id: Some(id.to_string()),
            label,
        }
    }

    /// Orgbase itself, doing `what` (`purge`, `invitation_expiry`, …).
    pub fn system(what: &str) -> Self {
        Self {
            kind: ActorType::System,
            id: Some(what.to_owned()),
            label: None,
        }
    }
}

/// Through which surface a change came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditSurface {
    /// The native API (`/api/…`).
    Native,
    /// The partner settings API of seed 000 (`/api/v2/…`).
    PartnerSettings,
    /// The properties API of seed 002.
    Properties,
    /// A billing provider's webhook.
    BillingWebhook,
    /// Work done without a request.
    System,
}

impl AuditSurface {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::PartnerSettings => "partner_settings",
            Self::Properties => "properties",
            Self::BillingWebhook => "billing_webhook",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "native" => Self::Native,
            "partner_settings" => Self::PartnerSettings,
            "properties" => Self::Properties,
            "billing_webhook" => Self::BillingWebhook,
            "system" => Self::System,
            _ => return None,
        })
    }
}

/// What a change was made to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl Target {
    pub fn new(kind: &str, id: impl ToString) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.to_string(),
        }
    }
}

/// One field's value before and after a change (`null` where there was none: a creation's
/// before, a deletion's after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub before: Value,
    pub after: Value,
}

/// The fields a change changed, by their name in the native API.
pub type Changes = BTreeMap<String, FieldChange>;

/// An entity as the audit log shows it: its fields by their native names, secrets left out.
pub trait Audited {
    fn audit_fields(&self) -> Map<String, Value>;
}

/// The fields that differ between `before` and `after` (either may be absent: a creation, a
/// deletion).
pub fn changes<T: Audited>(before: Option<&T>, after: Option<&T>) -> Changes {
    let b = before.map(Audited::audit_fields).unwrap_or_default();
    let a = after.map(Audited::audit_fields).unwrap_or_default();
    let mut out = Changes::new();
    for name in b.keys().chain(a.keys()) {
        if out.contains_key(name) {
            continue;
        }
        let before = b.get(name).cloned().unwrap_or(Value::Null);
        let after = a.get(name).cloned().unwrap_or(Value::Null);
        if before != after {
            out.insert(name.clone(), FieldChange { before, after });
        }
    }
    out
}

/// Where a request came from, for its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

/// One change, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: Uuid,
    /// `null` for a platform-wide change (a plan, a platform key).
    #[schema(value_type = Option<Uuid>)]
    pub organization_id: Option<OrganizationId>,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    /// A stable dotted name: `organization.updated`, `member.roles_changed`, `wallet.charged`, …
    pub action: String,
    pub target: Target,
    pub changes: Changes,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub surface: AuditSurface,
}

impl AuditEntry {
    /// A new entry, at `at`, for a change with no field changes yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        organization_id: Option<OrganizationId>,
        at: DateTime<Utc>,
        actor: Actor,
        action: &str,
        target: Target,
        surface: AuditSurface,
        origin: &Origin,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            organization_id,
            occurred_at: at,
            actor,
            action: action.to_owned(),
            target,
            changes: Changes::new(),
            request_id: origin.request_id.clone(),
            client_address: origin.client_address.clone(),
            user_agent: origin.user_agent.clone(),
            surface,
        }
    }

    pub fn with_changes(mut self, changes: Changes) -> Self {
        self.changes = changes;
        self
    }

    /// `with_changes` of the fields that differ between `before` and `after`.
    pub fn diff<T: Audited>(self, before: Option<&T>, after: Option<&T>) -> Self {
        self.with_changes(changes(before, after))
    }

    /// Adds one field's change.
    pub fn field(mut self, name: &str, before: Value, after: Value) -> Self {
        self.changes
            .insert(name.to_owned(), FieldChange { before, after });
        self
    }
}

/// Which entries to read: newest first, by cursor.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// One organization's entries.
    pub organization_id: Option<OrganizationId>,
    /// A partner's entries and its children's.
    pub partner_id: Option<OrganizationId>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Entries older than this one.
    pub before: Option<Uuid>,
    pub limit: u32,
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Audited for crate::Organization {
    fn audit_fields(&self) -> Map<String, Value> {
        object(serde_json::json!({
            "name": self.name,
            "slug": self.slug,
            "countryCode": self.country_code,
            "avatarUrl": self.avatar_url,
            "status": self.status.as_str(),
            "statusReason": self.status_reason,
            "type": self.org_type.as_str(),
            "parentId": self.parent_id,
            "owner": self.owner,
            "productPlanId": self.product_plan_id,
            "offeredProductPlanId": self.offered_product_plan_id,
            "sms": self.sms,
            "premium": self.premium,
            "externalAccountId": self.external_account_id,
            "externalBillingId": self.external_billing_id,
            "kycLevel": self.kyc_level,
            "placementGroup": self.placement_group,
            "billingOverdue": self.billing_overdue,
            "rateLimit": self.rate_limit,
            "entitlements": self.entitlements,
            "preferences": self.preferences,
            "metadata": self.metadata,
            "subscription": self.subscription.as_ref().map(|s| serde_json::json!({
                "provider": s.provider.as_str(), "id": s.id, "status": s.status,
            })),
            "deletedAt": self.deleted_at,
        }))
    }
}

impl Audited for crate::Member {
    fn audit_fields(&self) -> Map<String, Value> {
        object(serde_json::json!({
            "userId": self.user_id,
            "email": self.email.as_str(),
            "roles": self.roles,
            "workspaces": self.workspaces,
        }))
    }
}

impl Audited for crate::Role {
    fn audit_fields(&self) -> Map<String, Value> {
        object(serde_json::json!({
            "name": self.name,
            "description": self.description,
            "permissions": self.permissions.names(),
        }))
    }
}

impl Audited for crate::Workspace {
    fn audit_fields(&self) -> Map<String, Value> {
        object(serde_json::json!({ "name": self.name }))
    }
}

/// The token's hash is left out: it is a secret's stand-in.
impl Audited for crate::Invitation {
    fn audit_fields(&self) -> Map<String, Value> {
        object(serde_json::json!({
            "email": self.email.as_str(),
            "name": self.name,
            "roles": self.roles,
            "expiresAt": self.expires_at,
            "acceptedAt": self.accepted_at,
            "revokedAt": self.revoked_at,
            "sends": self.sends,
        }))
    }
}

/// The key's hash is left out; its prefix, shown in every key list, stays.
impl Audited for crate::ApiKey {
    fn audit_fields(&self) -> Map<String, Value> {
        object(serde_json::json!({
            "name": self.name,
            "kind": self.kind.as_str(),
            "roles": self.roles,
            "prefix": self.prefix,
            "revokedAt": self.revoked_at,
        }))
    }
}

impl Audited for crate::Plan {
    fn audit_fields(&self) -> Map<String, Value> {
        object(serde_json::json!({
            "name": self.name,
            "price": self.price,
            "currency": self.currency,
            "interval": self.interval.as_str(),
            "entitlements": self.entitlements,
            "rateLimit": self.rate_limit,
            "public": self.public,
            "provider": self.provider.map(|p| p.as_str()),
            "providerPriceId": self.provider_price_id,
        }))
    }
}

impl Audited for crate::wallet::NewEntry {
    fn audit_fields(&self) -> Map<String, Value> {
        object(serde_json::json!({
            "kind": self.kind.as_str(),
            "service": self.service.map(|s| s.as_str()),
            "amount": self.amount,
            "smsPoints": self.sms_points,
            "reason": self.reason,
            "currency": self.currency,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Thing(Value);
    impl Audited for Thing {
        fn audit_fields(&self) -> Map<String, Value> {
            self.0.as_object().cloned().unwrap_or_default()
        }
    }

    #[test]
    fn changes_name_only_the_fields_that_differ() {
        let a = Thing(json!({"name": "A", "slug": "a", "tags": [1]}));
        let b = Thing(json!({"name": "B", "slug": "a", "tags": [1, 2]}));
        let c = changes(Some(&a), Some(&b));
        assert_eq!(c.len(), 2);
        assert_eq!(c["name"].before, json!("A"));
        assert_eq!(c["name"].after, json!("B"));
        assert_eq!(c["tags"].after, json!([1, 2]));
    }

    #[test]
    fn a_creation_has_null_befores_and_a_deletion_null_afters() {
        let a = Thing(json!({"name": "A", "note": null}));
        let created = changes(None, Some(&a));
        assert_eq!(created.len(), 1, "a null field is no change: {created:?}");
        assert_eq!(created["name"].before, Value::Null);
        let deleted = changes(Some(&a), None);
        assert_eq!(deleted["name"].after, Value::Null);
    }

    #[test]
    fn names_round_trip() {
        for t in [
            ActorType::PlatformKey,
            ActorType::PartnerKey,
            ActorType::OrganizationKey,
            ActorType::User,
            ActorType::BillingProvider,
            ActorType::System,
        ] {
            assert_eq!(ActorType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        for s in [
            AuditSurface::Native,
            AuditSurface::PartnerSettings,
            AuditSurface::Properties,
            AuditSurface::BillingWebhook,
            AuditSurface::System,
        ] {
            assert_eq!(AuditSurface::parse(s.as_str()), Some(s));
        }
    }
}
