//! The access check: may an organization handle a call (`voice`) or a message (`sms`) now? The
//! services that answer calls and messages ask this instead of reading the organization and
//! re-deciding. Every reason it may not is given, each with a stable code.
use crate::organization::{merge_entitlements, OrgStatus, Organization, Sms};
use crate::wallet::Wallet;
use crate::OrganizationId;

/// What is to be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Voice,
    Sms,
}

impl Channel {
    /// Also the entitlement that allows the channel.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voice => "voice",
            Self::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "voice" => Some(Self::Voice),
            "sms" => Some(Self::Sms),
            _ => None,
        }
    }
}

/// Why a channel is refused: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: &'static str,
    pub message: String,
}

/// Every code a refusal can carry, in the order they are given.
pub const REASON_CODES: [&str; 10] = [
    "organization_deleted",
    "organization_suspended",
    "organization_inactive",
    "billing_overdue",
    "insufficient_balance",
    "insufficient_sms_points",
    "sms_not_enabled",
    "sms_brand_missing",
    "sms_campaign_missing",
    "channel_not_entitled",
];

/// The part of an organization that decides access (and, with its id and parent, who may ask):
/// what the check reads, and no more.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub id: OrganizationId,
    pub parent_id: Option<OrganizationId>,
    pub status: OrgStatus,
    pub status_reason: Option<String>,
    pub deleted: bool,
    pub billing_overdue: bool,
    pub sms: Sms,
    /// Its own grants; its plan's come apart.
    pub entitlements: Vec<String>,
}

impl Standing {
    pub fn of(org: &Organization) -> Self {
        Self {
            id: org.id,
            parent_id: org.parent_id,
            status: org.status,
            status_reason: org.status_reason.clone(),
            deleted: org.is_deleted(),
            billing_overdue: org.billing_overdue,
            sms: org.sms.clone(),
            entitlements: org.entitlements.clone(),
        }
    }

    /// Its plan's entitlements and its own, as [`Organization::entitlements_with`].
    pub fn entitlements_with(&self, plan_entitlements: &[String]) -> Vec<String> {
        merge_entitlements(plan_entitlements, &self.entitlements)
    }
}

/// What the check needs of a wallet: whether each of its balances is above zero. Not the amounts:
/// what decides access changes only when a balance crosses zero, not at every charge, so a copy
/// of it (the PostgreSQL access reader's) is told only of those crossings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Funds {
    pub balance: bool,
    pub sms_points: bool,
}

impl Funds {
    /// Of a wallet; absent before its first entry (every balance zero).
    pub fn of(wallet: Option<&Wallet>) -> Self {
        wallet.map_or(Self::default(), |w| Self {
            balance: w.balance > 0,
            sms_points: w.sms_points > 0,
        })
    }
}

/// Every reason `org` may not use `channel` now; none: it may. `entitlements` are the
/// organization's effective ones (its plan's and its own).
pub fn reasons(
    org: &Standing,
    entitlements: &[String],
    funds: Funds,
    channel: Channel,
) -> Vec<Reason> {
    let mut out = Vec::new();
    let mut refuse = |code: &'static str, message: String| out.push(Reason { code, message });
    if org.deleted {
        refuse("organization_deleted", "the organization is deleted".into());
    }
    match org.status {
        OrgStatus::Active => {}
        OrgStatus::Suspended => refuse(
            "organization_suspended",
            match &org.status_reason {
                Some(r) => format!("the organization is suspended: {r}"),
                None => "the organization is suspended".into(),
            },
        ),
        OrgStatus::Inactive => refuse(
            "organization_inactive",
            "the organization is switched off".into(),
        ),
    }
    if org.billing_overdue {
        refuse(
            "billing_overdue",
            "the organization's billing is overdue".into(),
        );
    }
    match channel {
        Channel::Voice if !funds.balance => refuse(
            "insufficient_balance",
            "the wallet's balance is zero or less".into(),
        ),
        Channel::Sms if !funds.sms_points => refuse(
            "insufficient_sms_points",
            "the wallet has no SMS points".into(),
        ),
        _ => {}
    }
    if channel == Channel::Sms {
        if !org.sms.enabled {
            refuse("sms_not_enabled", "SMS is not enabled".into());
        }
        if org.sms.brand_id.is_none() {
            refuse("sms_brand_missing", "no SMS brand is registered".into());
        }
        if org.sms.campaign_id.is_none() {
            refuse(
                "sms_campaign_missing",
                "no SMS campaign is registered".into(),
            );
        }
    }
    if !entitlements.iter().any(|e| e == channel.as_str()) {
        refuse(
            "channel_not_entitled",
            format!(
                "neither the plan nor the organization grants the {} entitlement",
                channel.as_str()
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::organization::Sms;

    fn ready() -> (Organization, Vec<String>, Wallet) {
        let mut org = crate::organization::test_org();
        org.sms = Sms {
            enabled: true,
            brand_id: Some("B1".into()),
            campaign_id: Some("C1".into()),
        };
        let wallet = Wallet {
            organization_id: org.id,
            balance: 100,
            sms_points: 10,
            currency: "USD".into(),
            updated_at: None,
        };
        (org, vec!["voice".into(), "sms".into()], wallet)
    }

    fn codes(r: Vec<Reason>) -> Vec<&'static str> {
        r.into_iter().map(|r| r.code).collect()
    }

    /// Each reason alone: one change from an organization that may use both channels.
    #[test]
    fn each_reason_alone() {
        type Change = fn(&mut Organization, &mut Vec<String>, &mut Wallet);
        let cases: [(&str, Channel, Change); 10] = [
            ("organization_deleted", Channel::Voice, |o, _, _| {
                o.deleted_at = Some(chrono::Utc::now())
            }),
            ("organization_suspended", Channel::Voice, |o, _, _| {
                o.status = OrgStatus::Suspended
            }),
            ("organization_inactive", Channel::Sms, |o, _, _| {
                o.status = OrgStatus::Inactive
            }),
            ("billing_overdue", Channel::Sms, |o, _, _| {
                o.billing_overdue = true
            }),
            ("insufficient_balance", Channel::Voice, |_, _, w| {
                w.balance = 0
            }),
            ("insufficient_sms_points", Channel::Sms, |_, _, w| {
                w.sms_points = 0
            }),
            ("sms_not_enabled", Channel::Sms, |o, _, _| {
                o.sms.enabled = false
            }),
            ("sms_brand_missing", Channel::Sms, |o, _, _| {
                o.sms.brand_id = None
            }),
            ("sms_campaign_missing", Channel::Sms, |o, _, _| {
                o.sms.campaign_id = None
            }),
            ("channel_not_entitled", Channel::Voice, |_, e, _| {
                e.retain(|e| e != "voice")
            }),
        ];
        for (code, channel, change) in cases {
            let (mut org, mut ents, mut wallet) = ready();
            for c in [Channel::Voice, Channel::Sms] {
                assert!(
                    reasons(&Standing::of(&org), &ents, Funds::of(Some(&wallet)), c).is_empty(),
                    "{c:?}"
                );
            }
            change(&mut org, &mut ents, &mut wallet);
            assert_eq!(
                codes(reasons(
                    &Standing::of(&org),
                    &ents,
                    Funds::of(Some(&wallet)),
                    channel
                )),
                [code]
            );
        }
        // Every code is listed, in the order given.
        assert_eq!(cases.map(|c| c.0), REASON_CODES);
    }

    #[test]
    fn every_reason_together_in_a_stable_order() {
        let (mut org, _, _) = ready();
        org.deleted_at = Some(chrono::Utc::now());
        org.status = OrgStatus::Suspended;
        org.status_reason = Some("fraud".into());
        org.billing_overdue = true;
        org.sms = Sms::default();
        let sms = reasons(&Standing::of(&org), &[], Funds::default(), Channel::Sms);
        assert_eq!(
            codes(sms.clone()),
            [
                "organization_deleted",
                "organization_suspended",
                "billing_overdue",
                "insufficient_sms_points",
                "sms_not_enabled",
                "sms_brand_missing",
                "sms_campaign_missing",
                "channel_not_entitled"
            ]
        );
        assert_eq!(sms[1].message, "the organization is suspended: fraud");
        // SMS set-up is no reason to refuse a call; an empty wallet is.
        assert_eq!(
            codes(reasons(
                &Standing::of(&org),
                &["voice".into()],
                Funds::default(),
                Channel::Voice
            )),
            [
                "organization_deleted",
                "organization_suspended",
                "billing_overdue",
                "insufficient_balance"
            ]
        );
    }

    #[test]
    fn funds_are_the_balances_above_zero() {
        let (_, _, mut wallet) = ready();
        assert_eq!(
            Funds::of(None),
            Funds::default(),
            "no wallet: every balance zero"
        );
        for (balance, points, funds) in [
            (100, 10, (true, true)),
            (1, 0, (true, false)),
            (0, 1, (false, true)),
            (-5, -1, (false, false)),
        ] {
            (wallet.balance, wallet.sms_points) = (balance, points);
            let f = Funds::of(Some(&wallet));
            assert_eq!((f.balance, f.sms_points), funds, "{balance}, {points}");
        }
    }

    #[test]
    fn channels_parse_by_name_only() {
        for c in [Channel::Voice, Channel::Sms] {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("Voice"), None);
        assert_eq!(Channel::parse("fax"), None);
    }
}
