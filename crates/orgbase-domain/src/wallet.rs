//! The wallet: a money balance (minor units of the wallet's currency) and an SMS-point balance,
//! kept as an append-only ledger. Each entry records the balances after it, so the balances are
//! always the last entry's, and equal the sum of the entries.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::OrganizationId;
use crate::FieldError;

/// The largest amount one entry may move: a million in major units.
pub const MAX_AMOUNT: i64 = 100_000_000;
/// The most SMS points one charge may buy.
pub const MAX_SMS_POINTS: i64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Money out (for a service).
    Charge,
    /// Money in (a top-up).
    Credit,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Credit => "credit",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "charge" => Some(Self::Charge),
            "credit" => Some(Self::Credit),
            _ => None,
        }
    }
}

macro_rules! services {
    ($($v:ident => $s:literal),* $(,)?) => {
        /// What a charge pays for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Service { $($v),* }
        impl Service {
            pub const ALL: &'static [Service] = &[$(Service::$v),*];
            pub fn as_str(self) -> &'static str { match self { $(Self::$v => $s),* } }
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some(Self::$v),)* _ => None } }
        }
    };
}

services! {
    Sms => "sms",
    Voice => "voice",
    Whatsapp => "whatsapp",
    Email => "email",
    Ai => "ai",
    PhoneNumber => "phone_number",
    Subscription => "subscription",
    Other => "other",
}

impl Service {
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A positive amount of minor units, at most `MAX_AMOUNT`.
pub fn parse_amount(field: &str, v: i64) -> Result<i64, FieldError> {
    if (1..=MAX_AMOUNT).contains(&v) {
        Ok(v)
    } else {
        Err(FieldError::new(
            field,
            "out_of_range",
            format!("must be a whole number from 1 to {MAX_AMOUNT} (minor units)"),
        ))
    }
}

/// A reason: up to 500 characters.
pub fn parse_reason(field: &str, raw: &str) -> Result<String, FieldError> {
    let r = crate::validation::trim_pattern_space(raw);
    if raw.chars().count() > 500 || crate::validation::has_control(r) {
        return Err(FieldError::new(
            field,
            "invalid_value",
            "must be at most 500 characters, without control characters",
        ));
    }
    Ok(r.to_owned())
}

/// An organization's balances.
#[derive(Debug, Clone, PartialEq)]
pub struct Wallet {
    pub organization_id: OrganizationId,
    pub balance: i64,
    pub sms_points: i64,
    pub currency: String,
    pub updated_at: Option<DateTime<Utc>>,
}

/// An entry to append: what it does, before the balances after it are known.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub id: Uuid,
    pub organization_id: OrganizationId,
    pub kind: EntryKind,
    pub service: Option<Service>,
    /// Minor units moved (positive; the kind says which way).
    pub amount: i64,
    /// SMS points added (a charge for SMS buys them), 0 otherwise.
    pub sms_points: i64,
    pub reason: Option<String>,
    /// Who acted: `key:<id>` or `user:<id>`.
    pub actor: String,
    /// The client's Idempotency-Key: an entry is made once per key and organization.
    pub idempotency_key: Option<String>,
    /// The currency of a wallet made by this entry.
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

impl NewEntry {
    /// The change to the money balance.
    pub fn delta(&self) -> i64 {
        match self.kind {
            EntryKind::Charge => -self.amount,
            EntryKind::Credit => self.amount,
        }
    }

    /// Whether a stored entry is this same request (for an Idempotency-Key replay).
    pub fn same_as(&self, e: &Entry) -> bool {
        self.kind == e.kind
            && self.service == e.service
            && self.amount == e.amount
            && self.sms_points == e.sms_points
            && self.reason == e.reason
    }
}

/// A ledger entry, as stored: never changed, never deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: Uuid,
    pub organization_id: OrganizationId,
    pub kind: EntryKind,
    pub service: Option<Service>,
    pub amount: i64,
    pub sms_points: i64,
    pub balance_after: i64,
    pub sms_points_after: i64,
    pub reason: Option<String>,
    pub actor: String,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_services() {
        assert!(parse_amount("amount", 0).is_err());
        assert!(parse_amount("amount", -5).is_err());
        assert!(parse_amount("amount", MAX_AMOUNT + 1).is_err());
        assert_eq!(parse_amount("amount", 1000).unwrap(), 1000);
        assert_eq!(Service::parse("sms"), Some(Service::Sms));
        assert_eq!(Service::parse("SMS"), None);
        for s in Service::ALL {
            assert_eq!(Service::parse(s.as_str()), Some(*s));
        }
    }
}
