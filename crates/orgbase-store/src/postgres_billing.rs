//! Billing accounts and webhook events on PostgreSQL. An event is recorded and applied in one
//! transaction: its primary key orders concurrent deliveries of the same event (the second waits
//! for the first, then finds it recorded, or records it itself if the first rolled back).
use async_trait::async_trait;
use orgbase_domain::{BillingProvider, OrganizationId, Plan};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::plans::{plan_from_row, PLAN_COLUMNS};
use super::{bad, begin, commit, detached, map_err, update_org_in_tx, Notified, PgStore};
use crate::{
    BillingAccount, BillingChange, BillingEventRecord, BillingStore, StoreError, StoreResult,
};

const ACCOUNT_COLUMNS: &str = "organization_id, provider, customer_id, subscription_as_of, \
    invoice_as_of, current_period_end, price_id";

fn account_from_row(r: &PgRow) -> Result<BillingAccount, sqlx::Error> {
    let provider: String = r.try_get("provider")?;
    Ok(BillingAccount {
        organization_id: OrganizationId(r.try_get("organization_id")?),
        provider: BillingProvider::parse(&provider).ok_or_else(|| bad("provider", &provider))?,
        customer_id: r.try_get("customer_id")?,
        subscription_as_of: r.try_get("subscription_as_of")?,
        invoice_as_of: r.try_get("invoice_as_of")?,
        current_period_end: r.try_get("current_period_end")?,
        price_id: r.try_get("price_id")?,
    })
}

/// Records the event and applies the change, in one transaction; `Ok(false)` if it was recorded
/// before (and then nothing is written).
async fn apply(
    event: &BillingEventRecord,
    change: Option<&BillingChange>,
    pool: &sqlx::PgPool,
) -> StoreResult<bool> {
    let mut tx = begin(pool).await.map_err(map_err)?;
    let recorded = sqlx::query(
        "INSERT INTO billing_events (provider, event_id, event_type, organization_id, \
         received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, event_id) DO NOTHING",
    )
    .bind(event.provider.as_str())
    .bind(&event.event_id)
    .bind(&event.event_type)
    .bind(event.organization_id.map(|o| o.0))
    .bind(event.received_at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    if recorded.rows_affected() == 0 {
        // A redelivered event changes nothing, and records nothing in the audit log.
        if let Some(s) = crate::audit::staged() {
            s.no_change();
        }
        return Ok(false);
    }
    if let Some(c) = change {
        update_org_in_tx(&mut tx, &c.next, &c.previous).await?;
        let a = &c.account;
        sqlx::query(&format!(
            "INSERT INTO billing_accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (organization_id) DO UPDATE SET provider = excluded.provider, \
             customer_id = excluded.customer_id, \
             subscription_as_of = excluded.subscription_as_of, \
             invoice_as_of = excluded.invoice_as_of, \
             current_period_end = excluded.current_period_end, price_id = excluded.price_id"
        ))
        .bind(a.organization_id.0)
        .bind(a.provider.as_str())
        .bind(&a.customer_id)
        .bind(a.subscription_as_of)
        .bind(a.invoice_as_of)
        .bind(a.current_period_end)
        .bind(&a.price_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    commit(tx).await?;
    Ok(true)
}

#[async_trait]
impl BillingStore for PgStore {
    async fn get_billing_account(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Option<BillingAccount>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE organization_id = $1"
        ))
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref()
            .map(account_from_row)
            .transpose()
            .map_err(map_err)
    }

    async fn find_billing_account(
        &self,
        provider: BillingProvider,
        customer_id: &str,
    ) -> StoreResult<Option<BillingAccount>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts \
             WHERE provider = $1 AND customer_id = $2"
        ))
        .bind(provider.as_str())
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref()
            .map(account_from_row)
            .transpose()
            .map_err(map_err)
    }

    async fn attach_billing_customer(
        &self,
        org: OrganizationId,
        provider: BillingProvider,
        customer_id: &str,
    ) -> StoreResult<BillingAccount> {
        // A concurrent attach for the same organization makes this one wait, then do nothing;
        // the read that follows (a new snapshot) sees the account it stored.
        let inserted = sqlx::query(&format!(
            "INSERT INTO billing_accounts (organization_id, provider, customer_id) \
             VALUES ($1, $2, $3) ON CONFLICT (organization_id) DO NOTHING \
             RETURNING {ACCOUNT_COLUMNS}"
        ))
        .bind(org.0)
        .bind(provider.as_str())
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict {
                constraint: "foreign_key",
            } => StoreError::NotFound,
            other => other,
        })?;
        if let Some(row) = inserted {
            return account_from_row(&row).map_err(map_err);
        }
        self.get_billing_account(org)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn find_plan_by_price(
        &self,
        provider: BillingProvider,
        price_id: &str,
    ) -> StoreResult<Option<Plan>> {
        let row = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE provider = $1 AND provider_price_id = $2 \
             ORDER BY id LIMIT 1"
        ))
        .bind(provider.as_str())
        .bind(price_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(plan_from_row).transpose().map_err(map_err)
    }

    async fn apply_billing_event(
        &self,
        event: &BillingEventRecord,
        change: Option<&BillingChange>,
    ) -> StoreResult<bool> {
        if let Some(c) = change {
            c.check()?;
        }
        let (pool, event, owned) = (self.pool.clone(), event.clone(), change.cloned());
        let after = self.after_commit();
        // As `update_organization`: the row written is kept; found changed by someone else,
        // the cached copy is stale. Inside the write's task, so a caller gone cannot skip it.
        detached(async move {
            let done = apply(&event, owned.as_ref(), &pool).await;
            if let Some(c) = &owned {
                match &done {
                    Ok(true) => {
                        after.wrote(&c.next, Notified::by_transaction(&c.next, &c.previous))
                    }
                    Ok(false) => {}
                    Err(_) => after.failed(c.next.id),
                }
            }
            done
        })
        .await
    }

    async fn billing_event_seen(
        &self,
        provider: BillingProvider,
        event_id: &str,
    ) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM billing_events WHERE provider = $1 AND event_id = $2)",
        )
        .bind(provider.as_str())
        .bind(event_id)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }
}
