//! How the native API shows things: the organization's view, the seed's answer envelopes, and
//! timestamps. Shared by the handlers, which import no other handler file.
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use orgbase_domain::{OrgType, Organization};
use orgbase_service::PlanTerms;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// A timestamp as every native answer writes it: RFC 3339, milliseconds, `Z`.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An organization, as the native API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// ISO 3166-1 alpha-2.
    pub country_code: String,
    pub avatar_url: Option<String>,
    /// `active`, `inactive`, `suspended`, or `deleted` (soft-deleted; only the platform sees it).
    #[schema(example = "active")]
    pub status: &'static str,
    pub status_reason: Option<String>,
    #[serde(rename = "type")]
    pub org_type: OrgType,
    pub parent_id: Option<Uuid>,
    /// The owning person's id (null for an organization made by a key without `ownerEmail`,
    /// until the platform transfers ownership to a member).
    pub owner: Option<Uuid>,
    pub product_plan_id: String,
    pub offered_product_plan_id: Option<String>,
    pub sms: SmsView,
    pub premium: bool,
    pub external_account_id: Option<String>,
    pub external_billing_id: Option<String>,
    pub kyc_level: i16,
    pub placement_group: String,
    pub billing_overdue: bool,
    /// Requests per second allowed to the organization's credentials (with a burst of twice
    /// that): its own value if the platform set one, else its plan's.
    pub rate_limit: i32,
    /// Where `rateLimit` comes from. `PATCH` `rateLimit` sets the organization's own; `null`
    /// returns it to its plan's.
    pub rate_limit_source: RateLimitSourceView,
    /// What the organization may use: its plan's entitlements and its own grants.
    pub entitlements: Vec<String>,
    /// The organization's own grants, beyond its plan's: what `PATCH` `entitlements` sets.
    pub own_entitlements: Vec<String>,
    pub preferences: PreferencesView,
    #[schema(value_type = Object)]
    pub metadata: BTreeMap<String, Value>,
    /// The subscription with the billing provider, once there is one.
    pub subscription: Option<SubscriptionView>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// Increments on every change; also the `ETag`.
    pub version: i64,
}

/// Where an organization's rate limit comes from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitSourceView {
    /// Set by the platform on the organization.
    Organization,
    /// The organization's plan's.
    Plan,
    /// Orgbase's default (the plan is gone).
    Default,
}

impl From<orgbase_domain::RateLimitSource> for RateLimitSourceView {
    fn from(s: orgbase_domain::RateLimitSource) -> Self {
        match s {
            orgbase_domain::RateLimitSource::Organization => Self::Organization,
            orgbase_domain::RateLimitSource::Plan => Self::Plan,
            orgbase_domain::RateLimitSource::Default => Self::Default,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmsView {
    pub enabled: bool,
    pub brand_id: Option<String>,
    pub campaign_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferencesView {
    pub use_platform_url: bool,
    /// 1–1825, or -1 for no limit; null when never set.
    pub recording_lifespan_days: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub provider: orgbase_domain::BillingProvider,
    pub id: String,
    /// The provider's status: active, trialing, past_due, canceled, …
    pub status: String,
}

impl OrganizationView {
    /// The view of `o`, on a plan with `plan`'s terms.
    pub fn new(o: Organization, plan: &PlanTerms) -> Self {
        let limit = o.rate_limit_with(plan.rate_limit);
        Self {
            entitlements: o.entitlements_with(&plan.entitlements),
            rate_limit: limit.per_second,
            rate_limit_source: limit.source.into(),
            id: o.id.0,
            status: if o.is_deleted() {
                "deleted"
            } else {
                o.status.as_str()
            },
            name: o.name,
            slug: o.slug,
            country_code: o.country_code,
            avatar_url: o.avatar_url,
            status_reason: o.status_reason,
            org_type: o.org_type,
            parent_id: o.parent_id.map(|p| p.0),
            owner: o.owner.map(|u| u.0),
            product_plan_id: o.product_plan_id,
            offered_product_plan_id: o.offered_product_plan_id,
            sms: SmsView {
                enabled: o.sms.enabled,
                brand_id: o.sms.brand_id,
                campaign_id: o.sms.campaign_id,
            },
            premium: o.premium,
            external_account_id: o.external_account_id,
            external_billing_id: o.external_billing_id,
            kyc_level: o.kyc_level,
            placement_group: o.placement_group,
            billing_overdue: o.billing_overdue,
            own_entitlements: o.entitlements,
            preferences: PreferencesView {
                use_platform_url: o.preferences.use_platform_url,
                recording_lifespan_days: o.preferences.recording_lifespan_days,
            },
            metadata: o.metadata.0,
            subscription: o.subscription.map(|s| SubscriptionView {
                provider: s.provider,
                id: s.id,
                status: s.status,
            }),
            created_at: rfc3339(&o.created_at),
            updated_at: rfc3339(&o.updated_at),
            deleted_at: o.deleted_at.as_ref().map(rfc3339),
            version: o.version,
        }
    }
}

/// The seed's answer envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub message: String,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn ok(message: &str, data: T) -> Json<Self> {
        Json(Self {
            success: true,
            message: message.to_owned(),
            data,
        })
    }
}

/// The seed's answer to a deletion: `{success, message}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub success: bool,
    pub message: String,
}

impl Done {
    pub fn ok(message: &str) -> Json<Self> {
        Json(Self {
            success: true,
            message: message.to_owned(),
        })
    }
}

/// A session just started: the token is shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewSession {
    /// `obs_…`, for `Authorization: Bearer`.
    pub token: String,
    pub expires_at: String,
}

impl From<crate::service::sessions::Started> for NewSession {
    fn from(s: crate::service::sessions::Started) -> Self {
        Self {
            token: s.token,
            expires_at: rfc3339(&s.expires_at),
        }
    }
}
