//! Product plans, and an organization's subscription with a billing provider.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::{has_control, trim_pattern_space};
use crate::FieldError;

/// A billing system a plan can be tied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BillingProvider {
    Stripe,
    Chargebee,
}

impl BillingProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Chargebee => "chargebee",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stripe" => Some(Self::Stripe),
            "chargebee" => Some(Self::Chargebee),
            _ => None,
        }
    }
}

/// How often a plan's price is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanInterval {
    Month,
    Year,
}

impl PlanInterval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "month" => Some(Self::Month),
            "year" => Some(Self::Year),
            _ => None,
        }
    }
}

/// A product plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Chosen by the operator: `[A-Za-z0-9_-]`, 1–64 (`starter`, `pro-2026`).
    pub id: String,
    pub name: String,
    /// In minor units of `currency` (cents), per `interval`.
    pub price: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    pub interval: PlanInterval,
    pub entitlements: Vec<String>,
    /// Requests per second for the organizations on it.
    pub rate_limit: i32,
    /// Listed by `GET /api/plans`; a private plan is offered to one organization at a time.
    pub public: bool,
    /// The billing system that charges for it, and its price id there.
    pub provider: Option<BillingProvider>,
    pub provider_price_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Plan {
    /// Whether an organization must have subscribed with the provider before it is on this plan.
    pub fn needs_subscription(&self) -> bool {
        self.provider.is_some()
    }
}

/// `[A-Za-z0-9_-]`, 1–64 characters (the partner settings API's own example is
/// `someProductPlanId`).
pub fn parse_plan_id(field: &str, raw: &str) -> Result<String, FieldError> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "invalid_value",
            "must be 1–64 characters of A-Z, a-z, 0-9, - and _",
        ))
    }
}

/// At most 100 characters as sent, at least one after trimming, no control characters.
pub fn parse_plan_name(field: &str, raw: &str) -> Result<String, FieldError> {
    let n = trim_pattern_space(raw);
    if n.is_empty() || raw.chars().count() > 100 || has_control(n) {
        return Err(FieldError::new(
            field,
            "invalid_value",
            "must be 1–100 characters without control characters",
        ));
    }
    Ok(n.to_owned())
}

/// ISO 4217: three letters, taken upper case.
pub fn parse_currency(field: &str, raw: &str) -> Result<String, FieldError> {
    let c = trim_pattern_space(raw).to_ascii_uppercase();
    if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(c)
    } else {
        Err(FieldError::new(
            field,
            "invalid_value",
            "must be an ISO 4217 currency code such as USD",
        ))
    }
}

/// A price in minor units: 0 to 100,000,000 (a million in major units).
pub fn parse_price(field: &str, v: i64) -> Result<i64, FieldError> {
    if (0..=100_000_000).contains(&v) {
        Ok(v)
    } else {
        Err(FieldError::new(
            field,
            "out_of_range",
            "must be 0–100000000 (minor units)",
        ))
    }
}

/// A provider's price id: 1–255 printable characters.
pub fn parse_provider_price_id(field: &str, raw: &str) -> Result<String, FieldError> {
    let s = trim_pattern_space(raw);
    if s.is_empty() || raw.chars().count() > 255 || has_control(s) {
        return Err(FieldError::new(
            field,
            "invalid_value",
            "must be 1–255 characters without control characters",
        ));
    }
    Ok(s.to_owned())
}

/// An organization's subscription with a billing provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub provider: BillingProvider,
    pub id: String,
    /// The provider's status (`active`, `trialing`, `past_due`, `canceled`, …).
    pub status: String,
}

impl Subscription {
    /// Whether the organization counts as subscribed: a plan change goes through the provider.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "active" | "trialing" | "past_due")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fields_are_checked() {
        assert!(parse_plan_id("id", "starter").is_ok());
        assert!(parse_plan_id("id", "someProductPlanId").is_ok());
        assert!(parse_plan_id("id", "pro plan").is_err());
        assert!(parse_plan_id("id", "").is_err());
        assert!(parse_plan_id("id", &"a".repeat(65)).is_err());
        assert_eq!(parse_currency("c", "usd").unwrap(), "USD");
        assert!(parse_currency("c", "US").is_err());
        assert!(parse_price("p", -1).is_err());
        assert!(parse_price("p", 0).is_ok());
        assert!(Subscription {
            provider: BillingProvider::Stripe,
            id: "sub_1".into(),
            status: "active".into()
        }
        .is_live());
    }
}
