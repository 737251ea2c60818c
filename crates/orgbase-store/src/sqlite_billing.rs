//! Billing accounts and webhook events on SQLite. Each write is one job of the single writer, so
//! recording an event and applying its change are one step, and a failed change (a stale
//! version) rolls the event's record back with it.
use async_trait::async_trait;
use orgbase_domain::{BillingProvider, OrganizationId, Plan};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::plans::{plan_from_row, PLAN_COLUMNS};
use super::{
    bad_value, map_err, org_changes, parse_ts, parse_uuid, ts, update_org_row, write_metadata,
    SqliteStore,
};
use crate::{
    BillingAccount, BillingChange, BillingEventRecord, BillingStore, StoreError, StoreResult,
};

const ACCOUNT_COLUMNS: &str = "organization_id, provider, customer_id, subscription_as_of, \
    invoice_as_of, current_period_end, price_id";

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<BillingAccount> {
    let provider: String = r.get(1)?;
    let time = |i: usize| -> rusqlite::Result<_> {
        r.get::<_, Option<String>>(i)?
            .as_deref()
            .map(parse_ts)
            .transpose()
    };
    Ok(BillingAccount {
        organization_id: OrganizationId(parse_uuid(&r.get::<_, String>(0)?)?),
        provider: BillingProvider::parse(&provider)
            .ok_or_else(|| bad_value("provider", &provider))?,
        customer_id: r.get(2)?,
        subscription_as_of: time(3)?,
        invoice_as_of: time(4)?,
        current_period_end: time(5)?,
        price_id: r.get(6)?,
    })
}

fn account_of(conn: &Connection, org: OrganizationId) -> StoreResult<Option<BillingAccount>> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE organization_id = ?1"
    ))
    .and_then(|mut s| s.query_row([org.to_string()], account_from_row).optional())
    .map_err(map_err)
}

#[async_trait]
impl BillingStore for SqliteStore {
    async fn get_billing_account(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Option<BillingAccount>> {
        self.read_now(move |conn| account_of(conn, org)).await
    }

    async fn find_billing_account(
        &self,
        provider: BillingProvider,
        customer_id: &str,
    ) -> StoreResult<Option<BillingAccount>> {
        let customer_id = customer_id.to_owned();
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts \
                 WHERE provider = ?1 AND customer_id = ?2"
            ))
            .and_then(|mut s| {
                s.query_row(params![provider.as_str(), customer_id], account_from_row)
                    .optional()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn attach_billing_customer(
        &self,
        org: OrganizationId,
        provider: BillingProvider,
        customer_id: &str,
    ) -> StoreResult<BillingAccount> {
        let customer_id = customer_id.to_owned();
        self.write(move |conn| {
            // The writer runs one job at a time: what is stored now is what the insert would
            // conflict with.
            if let Some(stored) = account_of(conn, org)? {
                return Ok(stored);
            }
            conn.prepare_cached(
                "INSERT INTO billing_accounts (organization_id, provider, customer_id) \
                 VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![org.to_string(), provider.as_str(), customer_id]))
            .map_err(|e| match map_err(e) {
                StoreError::Conflict {
                    constraint: "foreign_key",
                } => StoreError::NotFound,
                other => other,
            })?;
            account_of(conn, org)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn find_plan_by_price(
        &self,
        provider: BillingProvider,
        price_id: &str,
    ) -> StoreResult<Option<Plan>> {
        let price_id = price_id.to_owned();
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {PLAN_COLUMNS} FROM plans WHERE provider = ?1 AND provider_price_id = ?2 \
                 ORDER BY id LIMIT 1"
            ))
            .and_then(|mut s| {
                s.query_row(params![provider.as_str(), price_id], plan_from_row)
                    .optional()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn apply_billing_event(
        &self,
        event: &BillingEventRecord,
        change: Option<&BillingChange>,
    ) -> StoreResult<bool> {
        let event = event.clone();
        let change = match change {
            Some(c) => {
                c.check()?;
                let changes = org_changes(&c.next, &c.previous)?;
                Some((c.clone(), changes))
            }
            None => None,
        };
        let org = change.as_ref().map(|(c, _)| c.next.clone());
        let cache = self.orgs.clone();
        let generation = cache.generation();
        // A redelivered event changes nothing, and records nothing in the audit log.
        let staged = crate::audit::staged();
        self.write_then(
            move |conn| {
                let recorded = conn
                    .prepare_cached(
                        "INSERT INTO billing_events (provider, event_id, event_type, \
                         organization_id, received_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (provider, event_id) DO NOTHING",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            event.provider.as_str(),
                            event.event_id,
                            event.event_type,
                            event.organization_id.map(|o| o.to_string()),
                            ts(&event.received_at),
                        ])
                    })
                    .map_err(map_err)?;
                if recorded == 0 {
                    if let Some(s) = &staged {
                        s.no_change();
                    }
                    return Ok(false);
                }
                // An error from here on fails the job, and its savepoint (or transaction) is
                // rolled back: the event is not recorded either.
                if let Some((c, changes)) = &change {
                    update_org_row(conn, &c.next, changes, c.previous.version)?;
                    if c.next.metadata != c.previous.metadata {
                        write_metadata(conn, &c.next).map_err(map_err)?;
                    }
                    let a = &c.account;
                    conn.prepare_cached(&format!(
                        "INSERT INTO billing_accounts ({ACCOUNT_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                         ON CONFLICT (organization_id) DO UPDATE SET \
                         provider = excluded.provider, customer_id = excluded.customer_id, \
                         subscription_as_of = excluded.subscription_as_of, \
                         invoice_as_of = excluded.invoice_as_of, \
                         current_period_end = excluded.current_period_end, \
                         price_id = excluded.price_id"
                    ))
                    .and_then(|mut s| {
                        s.execute(params![
                            a.organization_id.to_string(),
                            a.provider.as_str(),
                            a.customer_id,
                            a.subscription_as_of.as_ref().map(ts),
                            a.invoice_as_of.as_ref().map(ts),
                            a.current_period_end.as_ref().map(ts),
                            a.price_id,
                        ])
                    })
                    .map_err(map_err)?;
                }
                Ok(true)
            },
            // At commit, as `update_organization` does: the row written is kept.
            move |applied: &bool| {
                if let (true, Some(next)) = (*applied, &org) {
                    cache.wrote(next, generation);
                }
            },
        )
        .await
    }

    async fn billing_event_seen(
        &self,
        provider: BillingProvider,
        event_id: &str,
    ) -> StoreResult<bool> {
        let event_id = event_id.to_owned();
        self.read_now(move |conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM billing_events \
                 WHERE provider = ?1 AND event_id = ?2)",
            )
            .and_then(|mut s| {
                s.query_row(params![provider.as_str(), event_id], |r| {
                    r.get::<_, bool>(0)
                })
            })
            .map_err(map_err)
        })
        .await
    }
}
