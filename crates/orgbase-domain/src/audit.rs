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
use std::sync::Arc;
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
    /// The admin console (`/console`).
    Console,
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
            Self::Console => "console",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "native" => Self::Native,
            "partner_settings" => Self::PartnerSettings,
            "properties" => Self::Properties,
            "billing_webhook" => Self::BillingWebhook,
            "console" => Self::Console,
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
///
/// An entity names each field it shows to a [`Diff`], which compares the field's two values and
/// serializes only those that differ: a change to one field of an organization costs one field's
/// serialization, not the whole organization's twice.
pub trait Audited: Sized {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>);
}

/// The comparison of two versions of an entity, field by field (either may be absent: a
/// creation, a deletion).
pub struct Diff<'a, T> {
    before: Option<&'a T>,
    after: Option<&'a T>,
    out: Changes,
    /// Set for a snapshot: every field of `after`, changed or not.
    whole: Option<Map<String, Value>>,
}

impl<'a, T> Diff<'a, T> {
    /// The field `name`, read by `get` from both versions. A field that is `null` on both sides
    /// (an absent version reads as `null`) is no change.
    pub fn field<V: Serialize + PartialEq>(&mut self, name: &str, get: impl Fn(&'a T) -> V) {
        if let (Some(whole), Some(after)) = (&mut self.whole, self.after) {
            whole.insert(name.to_owned(), to_value(get(after)));
            return;
        }
        let before = self.before.map(&get);
        let after = self.after.map(&get);
        if let (Some(b), Some(a)) = (&before, &after) {
            if b == a {
                return;
            }
        }
        let before = before.map_or(Value::Null, to_value);
        let after = after.map_or(Value::Null, to_value);
        if before != after {
            self.out
                .insert(name.to_owned(), FieldChange { before, after });
        }
    }
}

fn to_value<V: Serialize>(v: V) -> Value {
    // The audited fields are plain data (strings, numbers, maps with string keys): they always
    // serialize.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The fields that differ between `before` and `after` (either may be absent: a creation, a
/// deletion).
pub fn changes<T: Audited>(before: Option<&T>, after: Option<&T>) -> Changes {
    let mut d = Diff {
        before,
        after,
        out: Changes::new(),
        whole: None,
    };
    T::audit_fields(&mut d);
    d.out
}

/// Every field of `x` as the audit log names them (`null` ones too), secrets left out: the
/// object a webhook event carries.
pub fn snapshot<T: Audited>(x: &T) -> Map<String, Value> {
    let mut d = Diff {
        before: None,
        after: Some(x),
        out: Changes::new(),
        whole: Some(Map::new()),
    };
    T::audit_fields(&mut d);
    d.whole.unwrap_or_default()
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
    /// Each changed field's value before and after, by field name.
    #[schema(inline)]
    pub changes: Changes,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub surface: AuditSurface,
    /// The changed object whole, after the change (before it, for a removal), for the webhook
    /// events of the entry: made only for an action that has events, and not kept in the log.
    #[serde(skip)]
    pub object: Carried,
}

/// What an entry carries to its webhook events and the log does not keep: no part of the
/// entry's identity (two entries equal whatever they carry). It holds the entity itself, and
/// makes the JSON object of it ([`snapshot`]) only when asked: most changes are written where no
/// webhook endpoint is enabled, and then no event, and no object, is made.
#[derive(Clone, Default)]
pub struct Carried(Option<Arc<dyn Snapshot>>);

/// An entity that can be shown whole, as [`snapshot`] shows it.
trait Snapshot: Send + Sync {
    fn object(&self) -> Map<String, Value>;
}

impl<T: Audited + Send + Sync> Snapshot for T {
    fn object(&self) -> Map<String, Value> {
        snapshot(self)
    }
}

impl Carried {
    /// Carries `x` (a copy of it).
    pub fn of<T: Audited + Clone + Send + Sync + 'static>(x: &T) -> Self {
        Self(Some(Arc::new(x.clone())))
    }

    /// The object whole, made now; `None` where nothing is carried.
    pub fn object(&self) -> Option<Map<String, Value>> {
        self.0.as_ref().map(|x| x.object())
    }

    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
}

impl std::fmt::Debug for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(_) => f.write_str("Carried(..)"),
            None => f.write_str("Carried(None)"),
        }
    }
}

impl PartialEq for Carried {
    fn eq(&self, _: &Self) -> bool {
        true
    }
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
            object: Carried::default(),
        }
    }

    pub fn with_changes(mut self, changes: Changes) -> Self {
        self.changes = changes;
        self
    }

    /// `with_changes` of the fields that differ between `before` and `after`.
    /// The object whole is kept too when the action has webhook events.
    pub fn diff<T: Audited + Clone + Send + Sync + 'static>(
        mut self,
        before: Option<&T>,
        after: Option<&T>,
    ) -> Self {
        if !crate::webhook::EventType::of(&self).is_empty() {
            if let Some(x) = after.or(before) {
                self.object = Carried::of(x);
            }
        }
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

/// How the log shows a subscription.
#[derive(Serialize, PartialEq)]
struct SubscriptionView<'a> {
    provider: &'static str,
    id: &'a str,
    status: &'a str,
}

impl Audited for crate::Organization {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
        d.field("name", |o| &o.name);
        d.field("slug", |o| &o.slug);
        d.field("countryCode", |o| &o.country_code);
        d.field("avatarUrl", |o| &o.avatar_url);
        d.field("status", |o| o.status.as_str());
        d.field("statusReason", |o| &o.status_reason);
        d.field("type", |o| o.org_type.as_str());
        d.field("parentId", |o| o.parent_id);
        d.field("owner", |o| o.owner);
        d.field("productPlanId", |o| &o.product_plan_id);
        d.field("offeredProductPlanId", |o| &o.offered_product_plan_id);
        d.field("sms", |o| &o.sms);
        d.field("premium", |o| o.premium);
        d.field("externalAccountId", |o| &o.external_account_id);
        d.field("externalBillingId", |o| &o.external_billing_id);
        d.field("kycLevel", |o| o.kyc_level);
        d.field("placementGroup", |o| &o.placement_group);
        d.field("billingOverdue", |o| o.billing_overdue);
        d.field("rateLimit", |o| o.rate_limit);
        d.field("entitlements", |o| &o.entitlements);
        d.field("preferences", |o| &o.preferences);
        d.field("metadata", |o| &o.metadata);
        d.field("subscription", |o| {
            o.subscription.as_ref().map(|s| SubscriptionView {
                provider: s.provider.as_str(),
                id: &s.id,
                status: &s.status,
            })
        });
        d.field("deletedAt", |o| o.deleted_at);
    }
}

impl Audited for crate::Member {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
        d.field("userId", |m| m.user_id);
        d.field("email", |m| m.email.as_str());
        d.field("roles", |m| &m.roles);
        d.field("workspaces", |m| &m.workspaces);
    }
}

impl Audited for crate::Role {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
        d.field("name", |r| &r.name);
        d.field("description", |r| &r.description);
        d.field("permissions", |r| r.permissions.names());
    }
}

impl Audited for crate::Workspace {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
        d.field("name", |w| &w.name);
    }
}

/// The token's hash is left out: it is a secret's stand-in.
impl Audited for crate::Invitation {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
        d.field("email", |i| i.email.as_str());
        d.field("name", |i| &i.name);
        d.field("roles", |i| &i.roles);
        d.field("expiresAt", |i| i.expires_at);
        d.field("acceptedAt", |i| i.accepted_at);
        d.field("revokedAt", |i| i.revoked_at);
        d.field("sends", |i| i.sends);
    }
}

/// The key's hash is left out; its prefix, shown in every key list, stays.
impl Audited for crate::ApiKey {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
        d.field("name", |k| &k.name);
        d.field("kind", |k| k.kind.as_str());
        d.field("roles", |k| &k.roles);
        d.field("prefix", |k| &k.prefix);
        d.field("revokedAt", |k| k.revoked_at);
    }
}

impl Audited for crate::Plan {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
        d.field("name", |p| &p.name);
        d.field("price", |p| p.price);
        d.field("currency", |p| &p.currency);
        d.field("interval", |p| p.interval.as_str());
        d.field("entitlements", |p| &p.entitlements);
        d.field("rateLimit", |p| p.rate_limit);
        d.field("public", |p| p.public);
        d.field("provider", |p| p.provider.map(|p| p.as_str()));
        d.field("providerPriceId", |p| &p.provider_price_id);
    }
}

impl Audited for crate::wallet::NewEntry {
    fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
        d.field("kind", |e| e.kind.as_str());
        d.field("service", |e| e.service.map(|s| s.as_str()));
        d.field("amount", |e| e.amount);
        d.field("smsPoints", |e| e.sms_points);
        d.field("reason", |e| &e.reason);
        d.field("currency", |e| &e.currency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Clone)]
    struct Thing {
        name: &'static str,
        slug: &'static str,
        tags: Vec<i32>,
        note: Option<&'static str>,
    }
    impl Audited for Thing {
        fn audit_fields<'a>(d: &mut Diff<'a, Self>) {
            d.field("name", |t| t.name);
            d.field("slug", |t| t.slug);
            d.field("tags", |t| &t.tags);
            d.field("note", |t| t.note);
        }
    }

    fn thing(name: &'static str, tags: Vec<i32>) -> Thing {
        Thing {
            name,
            slug: "a",
            tags,
            note: None,
        }
    }

    #[test]
    fn changes_name_only_the_fields_that_differ() {
        let a = thing("A", vec![1]);
        let b = thing("B", vec![1, 2]);
        let c = changes(Some(&a), Some(&b));
        assert_eq!(c.len(), 2);
        assert_eq!(c["name"].before, json!("A"));
        assert_eq!(c["name"].after, json!("B"));
        assert_eq!(c["tags"].after, json!([1, 2]));
    }

    #[test]
    fn a_creation_has_null_befores_and_a_deletion_null_afters() {
        let a = thing("A", vec![]);
        let created = changes(None, Some(&a));
        assert_eq!(created.len(), 3, "a null field is no change: {created:?}");
        assert!(!created.contains_key("note"));
        assert_eq!(created["name"].before, Value::Null);
        let deleted = changes(Some(&a), None);
        assert_eq!(deleted["name"].after, Value::Null);
    }

    fn entry(action: &str) -> AuditEntry {
        AuditEntry::new(
            None,
            Utc::now(),
            Actor::system("test"),
            action,
            Target::new("thing", "t1"),
            AuditSurface::Native,
            &Origin::default(),
        )
    }

    #[test]
    fn an_entry_with_events_carries_the_object_whole_to_them() {
        let (a, b) = (thing("A", vec![1]), thing("B", vec![1]));
        let e = entry("member.updated").diff(Some(&a), Some(&b));
        assert_eq!(
            e.object.object().map(Value::Object),
            Some(json!({"name": "B", "slug": "a", "tags": [1], "note": null}))
        );
        let events = crate::webhook::Event::from_entry(&e);
        assert_eq!(
            events[0].payload["data"],
            json!({"id": "t1", "name": "B", "slug": "a", "tags": [1], "note": null})
        );
        assert_eq!(events[0].payload["previous"], json!({"name": "A"}));
        // A removal carries the object as it was.
        let removed = entry("member.removed").diff(Some(&a), None);
        let events = crate::webhook::Event::from_entry(&removed);
        assert_eq!(events[0].payload["data"]["name"], "A");
        assert_eq!(events[0].payload["previous"]["name"], "A");
        // No events, nothing carried; and never kept in the log.
        let quiet = entry("role.updated").diff(Some(&a), Some(&b));
        assert!(!quiet.object.is_some());
        assert!(serde_json::to_value(&e).unwrap().get("object").is_none());
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
