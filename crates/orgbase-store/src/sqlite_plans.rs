//! Plans on SQLite.
use async_trait::async_trait;
use orgbase_domain::{BillingProvider, Plan, PlanInterval};
use rusqlite::{params, Connection, Row};

use super::{bad_value, map_err, parse_json, parse_ts, ts, SqliteStore};
use crate::{PlanStore, StoreError, StoreResult};

pub(super) const PLAN_COLUMNS: &str = "id, name, price, currency, billing_interval, entitlements, \
    rate_limit, public, provider, provider_price_id, created_at, updated_at";

pub(super) fn plan_from_row(r: &Row<'_>) -> rusqlite::Result<Plan> {
    let interval: String = r.get(4)?;
    let provider: Option<String> = r.get(8)?;
    Ok(Plan {
        id: r.get(0)?,
        name: r.get(1)?,
        price: r.get(2)?,
        currency: r.get(3)?,
        interval: PlanInterval::parse(&interval).ok_or_else(|| bad_value("interval", &interval))?,
        entitlements: parse_json(&r.get::<_, String>(5)?)?,
        rate_limit: r.get(6)?,
        public: r.get(7)?,
        provider: provider
            .as_deref()
            .map(|p| BillingProvider::parse(p).ok_or_else(|| bad_value("provider", p)))
            .transpose()?,
        provider_price_id: r.get(9)?,
        created_at: parse_ts(&r.get::<_, String>(10)?)?,
        updated_at: parse_ts(&r.get::<_, String>(11)?)?,
    })
}

fn entitlements_json(p: &Plan) -> String {
    serde_json::to_string(&p.entitlements).unwrap_or_else(|_| "[]".into())
}

/// Plans kept in the store's plan cache (by id, read by every look-up of an organization's
/// properties and limits) before all are dropped at once. Exact: this process is the only
/// writer, and a committed change or removal of a plan empties it, at commit.
pub(super) const PLAN_CACHE_MAX: usize = 1_000;

fn plan_by_id(conn: &Connection, id: &str) -> StoreResult<Plan> {
    conn.prepare_cached(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], plan_from_row))
        .map_err(map_err)
}

#[async_trait]
impl PlanStore for SqliteStore {
    async fn insert_plan(&self, plan: &Plan) -> StoreResult<()> {
        let p = plan.clone();
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO plans ({PLAN_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    p.id,
                    p.name,
                    p.price,
                    p.currency,
                    p.interval.as_str(),
                    entitlements_json(&p),
                    p.rate_limit,
                    p.public,
                    p.provider.map(BillingProvider::as_str),
                    p.provider_price_id,
                    ts(&p.created_at),
                    ts(&p.updated_at),
                ])
            })
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn get_plan(&self, id: &str) -> StoreResult<Plan> {
        let generation = match self.plans.get(id) {
            Ok(plan) => return Ok(plan),
            Err(generation) => generation,
        };
        let owned = id.to_owned();
        let plan = self.read_now(move |conn| plan_by_id(conn, &owned)).await?;
        self.plans.offer(&plan.id, &plan, generation);
        Ok(plan)
    }

    async fn list_plans(&self, public_only: bool) -> StoreResult<Vec<Plan>> {
        self.read_now(move |conn| {
            let filter = if public_only { " WHERE public = 1" } else { "" };
            conn.prepare_cached(&format!(
                "SELECT {PLAN_COLUMNS} FROM plans{filter} ORDER BY price, id"
            ))
            .and_then(|mut s| {
                s.query_map([], plan_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn update_plan(&self, plan: &Plan) -> StoreResult<()> {
        let p = plan.clone();
        let cache = self.plans.clone();
        self.write_then(
            move |conn| {
                let n = conn
                    .prepare_cached(
                        "UPDATE plans SET name = ?2, price = ?3, currency = ?4, \
                     billing_interval = ?5, entitlements = ?6, rate_limit = ?7, public = ?8, \
                     provider = ?9, provider_price_id = ?10, updated_at = ?11 WHERE id = ?1",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            p.id,
                            p.name,
                            p.price,
                            p.currency,
                            p.interval.as_str(),
                            entitlements_json(&p),
                            p.rate_limit,
                            p.public,
                            p.provider.map(BillingProvider::as_str),
                            p.provider_price_id,
                            ts(&p.updated_at),
                        ])
                    })
                    .map_err(map_err)?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            },
            move |_| cache.clear(),
        )
        .await
    }

    async fn delete_plan(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        let cache = self.plans.clone();
        self.write_then(
            move |conn| {
                let used: i64 = conn
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM organizations WHERE product_plan_id = ?1) \
                     OR EXISTS (SELECT 1 FROM organizations WHERE offered_product_plan_id = ?1)",
                    )
                    .and_then(|mut s| s.query_row([&id], |r| r.get(0)))
                    .map_err(map_err)?;
                if used != 0 {
                    return Err(StoreError::Conflict {
                        constraint: "plan_in_use",
                    });
                }
                let n = conn
                    .prepare_cached("DELETE FROM plans WHERE id = ?1")
                    .and_then(|mut s| s.execute([&id]))
                    .map_err(map_err)?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            },
            move |_| cache.clear(),
        )
        .await
    }
}
