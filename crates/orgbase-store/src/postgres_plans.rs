//! Plans on PostgreSQL.
use async_trait::async_trait;
use orgbase_domain::{BillingProvider, Plan, PlanInterval};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

use super::{bad, begin, commit, map_err, PgStore};
use crate::{PlanStore, StoreError, StoreResult};

pub(super) const PLAN_COLUMNS: &str = "id, name, price, currency, billing_interval, entitlements, \
    rate_limit, public, provider, provider_price_id, created_at, updated_at";

pub(super) fn plan_from_row(r: &PgRow) -> Result<Plan, sqlx::Error> {
    let interval: String = r.try_get("billing_interval")?;
    let provider: Option<String> = r.try_get("provider")?;
    Ok(Plan {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        price: r.try_get("price")?,
        currency: r.try_get("currency")?,
        interval: PlanInterval::parse(&interval).ok_or_else(|| bad("interval", &interval))?,
        entitlements: r.try_get::<Json<Vec<String>>, _>("entitlements")?.0,
        rate_limit: r.try_get("rate_limit")?,
        public: r.try_get("public")?,
        provider: provider
            .as_deref()
            .map(|p| BillingProvider::parse(p).ok_or_else(|| bad("provider", p)))
            .transpose()?,
        provider_price_id: r.try_get("provider_price_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

#[async_trait]
impl PlanStore for PgStore {
    async fn insert_plan(&self, p: &Plan) -> StoreResult<()> {
        let mut tx = begin(self.pool()).await.map_err(map_err)?;
        sqlx::query(&format!(
            "INSERT INTO plans ({PLAN_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&p.id)
        .bind(&p.name)
        .bind(p.price)
        .bind(&p.currency)
        .bind(p.interval.as_str())
        .bind(Json(&p.entitlements))
        .bind(p.rate_limit)
        .bind(p.public)
        .bind(p.provider.map(BillingProvider::as_str))
        .bind(&p.provider_price_id)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        commit(tx).await
    }

    async fn get_plan(&self, id: &str) -> StoreResult<Plan> {
        if let Some(p) = self.cache.plan(id) {
            return Ok(p);
        }
        let generation = self.cache.generation();
        let row = sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
            .bind(id)
            .fetch_one(self.pool())
            .await
            .map_err(map_err)?;
        let plan = plan_from_row(&row).map_err(map_err)?;
        if let Some(g) = generation {
            self.cache.offer_plan(&plan, g);
        }
        Ok(plan)
    }

    async fn list_plans(&self, public_only: bool) -> StoreResult<Vec<Plan>> {
        let filter = if public_only { " WHERE public" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans{filter} ORDER BY price, id"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(plan_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn update_plan(&self, p: &Plan) -> StoreResult<()> {
        // The change and its cache notice in one statement.
        let mut tx = begin(self.pool()).await.map_err(map_err)?;
        let done = sqlx::query(
            "WITH u AS (UPDATE plans SET name = $2, price = $3, currency = $4, \
             billing_interval = $5, entitlements = $6, rate_limit = $7, public = $8, \
             provider = $9, provider_price_id = $10, updated_at = $11 WHERE id = $1 RETURNING id) \
             SELECT pg_notify('orgbase_cache', 'plan') FROM u",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(p.price)
        .bind(&p.currency)
        .bind(p.interval.as_str())
        .bind(Json(&p.entitlements))
        .bind(p.rate_limit)
        .bind(p.public)
        .bind(p.provider.map(BillingProvider::as_str))
        .bind(&p.provider_price_id)
        .bind(p.updated_at)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        if !done.is_empty() {
            commit(tx).await?;
        }
        self.cache.notice("plan");
        if done.is_empty() {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_plan(&self, id: &str) -> StoreResult<()> {
        // The foreign keys refuse to delete a plan an organization is on or has offered.
        let mut tx = begin(self.pool()).await.map_err(map_err)?;
        let done = sqlx::query(
            "WITH d AS (DELETE FROM plans WHERE id = $1 RETURNING id) \
             SELECT pg_notify('orgbase_cache', 'plan') FROM d",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict {
                constraint: "organization_plan",
            } => StoreError::Conflict {
                constraint: "plan_in_use",
            },
            other => other,
        })?;
        if !done.is_empty() {
            commit(tx).await?;
        }
        self.cache.notice("plan");
        if done.is_empty() {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
