//! Product plans: managed by the platform under `/api/admin/plans`; the public ones listed at
//! `/api/plans` for anyone (a pricing page needs no credential).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use orgbase_domain::plan::{
    parse_currency, parse_plan_id, parse_plan_name, parse_price, parse_provider_price_id,
};
use orgbase_domain::{
    now, parse_entitlements, parse_rate_limit, BillingProvider, Plan, PlanInterval,
    ValidationErrors,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub id: String,
    pub name: String,
    /// Minor units of `currency` per `interval`.
    pub price: i64,
    pub currency: String,
    /// `month` or `year`.
    pub interval: String,
    pub entitlements: Vec<String>,
    pub rate_limit: i32,
    pub public: bool,
    /// `stripe`, `chargebee`, or null: a plan tied to a provider is subscribed through it.
    pub provider: Option<BillingProvider>,
    pub provider_price_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Plan> for PlanView {
    fn from(p: Plan) -> Self {
        Self {
            id: p.id,
            name: p.name,
            price: p.price,
            currency: p.currency,
            interval: p.interval.as_str().to_owned(),
            entitlements: p.entitlements,
            rate_limit: p.rate_limit,
            public: p.public,
            provider: p.provider,
            provider_price_id: p.provider_price_id,
            created_at: rfc3339(&p.created_at),
            updated_at: rfc3339(&p.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    pub data: Vec<PlanView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PlanInput {
    /// On create: `[A-Za-z0-9_-]`, 1–64, unique. Cannot change.
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "pro")]
    pub id: Field<String>,
    #[schema(value_type = String, max_length = 100, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "Pro")]
    pub name: Field<String>,
    /// Minor units (cents), 0–100000000.
    #[schema(value_type = i64, minimum = 0, maximum = 100_000_000, example = 4900)]
    pub price: Field<i64>,
    /// ISO 4217 (default USD).
    #[schema(value_type = String, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[A-Za-z]{3}[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "USD")]
    pub currency: Field<String>,
    /// `month` (default) or `year`.
    #[schema(value_type = String, pattern = r"^(month|year)$", example = "month")]
    pub interval: Field<String>,
    #[schema(value_type = Vec<String>, example = json!(["sms", "voice"]))]
    pub entitlements: Field<Vec<String>>,
    /// Requests per second (default 5).
    #[schema(value_type = i64, minimum = 1, maximum = 100_000, example = 20)]
    pub rate_limit: Field<i64>,
    /// Listed by `GET /api/plans` (default true).
    #[schema(value_type = bool)]
    pub public: Field<bool>,
    /// `stripe`, `chargebee` or null; with `providerPriceId`.
    #[schema(value_type = Option<String>, pattern = r"^(stripe|chargebee)$", example = "stripe")]
    pub provider: Field<String>,
    #[schema(value_type = Option<String>, max_length = 255, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "price_123")]
    pub provider_price_id: Field<String>,
}

/// Applies the given fields to `p`, checking each.
fn apply(input: PlanInput, p: &mut Plan, e: &mut ValidationErrors) {
    if let Some(v) = input.name.optional("name", e) {
        if let Some(v) = e.check(parse_plan_name("name", &v)) {
            p.name = v;
        }
    }
    if let Some(v) = input.price.optional("price", e) {
        if let Some(v) = e.check(parse_price("price", v)) {
            p.price = v;
        }
    }
    if let Some(v) = input.currency.optional("currency", e) {
        if let Some(v) = e.check(parse_currency("currency", &v)) {
            p.currency = v;
        }
    }
    if let Some(v) = input.interval.optional("interval", e) {
        match PlanInterval::parse(&v) {
            Some(i) => p.interval = i,
            None => e.add("interval", "invalid_value", "must be month or year"),
        }
    }
    if let Some(v) = input.entitlements.optional("entitlements", e) {
        if let Some(v) = e.check(parse_entitlements("entitlements", v)) {
            p.entitlements = v;
        }
    }
    if let Some(v) = input.rate_limit.optional("rateLimit", e) {
        if let Some(v) = e.check(parse_rate_limit("rateLimit", v)) {
            p.rate_limit = v;
        }
    }
    if let Some(v) = input.public.optional("public", e) {
        p.public = v;
    }
    if let Some(v) = input.provider.nullable("provider", e) {
        match v.as_deref().map(BillingProvider::parse) {
            None => p.provider = None,
            Some(Some(b)) => p.provider = Some(b),
            Some(None) => e.add(
                "provider",
                "invalid_value",
                "must be stripe, chargebee or null",
            ),
        }
    }
    if let Some(v) = input.provider_price_id.nullable("providerPriceId", e) {
        match v {
            None => p.provider_price_id = None,
            Some(v) => {
                if let Some(v) = e.check(parse_provider_price_id("providerPriceId", &v)) {
                    p.provider_price_id = Some(v);
                }
            }
        }
    }
    // Judged on the plan as it would be (a change may give one and keep the stored other):
    // a code of its own, apart from a malformed value.
    if p.provider.is_some() != p.provider_price_id.is_some() {
        e.add(
            "providerPriceId",
            "provider_pair",
            "a provider and its price id go together: give both or neither",
        );
    }
}

/// Create a plan (platform only).
#[utoipa::path(
    post, path = "/api/admin/plans", operation_id = "createPlan", tag = "Admin",
    request_body = PlanInput,
    responses(
        (status = 201, description = "Created", body = PlanView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body, mut errors): JsonBody<PlanInput>,
) -> Result<(StatusCode, Json<PlanView>), ApiError> {
    let admin = who.platform()?;
    let id = body
        .id
        .clone()
        .required("id", &mut errors)
        .and_then(|v| errors.check(parse_plan_id("id", &v)));
    let name_given = !matches!(body.name, Field::Absent);
    let price_given = !matches!(body.price, Field::Absent);
    if !name_given {
        errors.add("name", "required", "is required");
    }
    if !price_given {
        errors.add("price", "required", "is required");
    }
    let t = now();
    let mut plan = Plan {
        id: id.clone().unwrap_or_default(),
        name: String::new(),
        price: 0,
        currency: "USD".into(),
        interval: PlanInterval::Month,
        entitlements: Vec::new(),
        rate_limit: orgbase_domain::DEFAULT_RATE_LIMIT,
        public: true,
        provider: None,
        provider_price_id: None,
        created_at: t,
        updated_at: t,
    };
    apply(
        PlanInput {
            id: Field::Absent,
            ..body
        },
        &mut plan,
        &mut errors,
    );
    errors.into_result()?;
    service::plans::create(&state, &admin, &plan).await?;
    Ok((StatusCode::CREATED, Json(plan.into())))
}

/// List every plan (platform only).
#[utoipa::path(
    get, path = "/api/admin/plans", operation_id = "listPlans", tag = "Admin",
    responses(
        (status = 200, description = "Every plan, public and private", body = PlanList),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_all(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<PlanList>, ApiError> {
    let admin = who.platform()?;
    let plans = service::plans::list_all(&state, &admin).await?;
    Ok(Json(PlanList {
        data: plans.into_iter().map(PlanView::from).collect(),
    }))
}

/// The public plans, for anyone (no credential needed).
#[utoipa::path(
    get, path = "/api/plans", operation_id = "listPublicPlans", tag = "Plans",
    responses((status = 200, description = "The public plans, cheapest first", body = PlanList))
)]
pub async fn list_public(State(state): State<AppState>) -> Result<Json<PlanList>, ApiError> {
    let plans = service::plans::list_public(&state).await?;
    Ok(Json(PlanList {
        data: plans.into_iter().map(PlanView::from).collect(),
    }))
}

/// Get a plan (platform only).
#[utoipa::path(
    get, path = "/api/admin/plans/{planId}", operation_id = "getPlan", tag = "Admin",
    params(("planId" = String, Path)),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<PlanView>, ApiError> {
    let admin = who.platform()?;
    Ok(Json(service::plans::get(&state, &admin, &id).await?.into()))
}

/// Change a plan (platform only). Its id cannot change.
#[utoipa::path(
    patch, path = "/api/admin/plans/{planId}", operation_id = "updatePlan", tag = "Admin",
    params(("planId" = String, Path)),
    request_body = PlanInput,
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body, mut errors): JsonBody<PlanInput>,
) -> Result<Json<PlanView>, ApiError> {
    let admin = who.platform()?;
    let current = service::plans::get(&state, &admin, &id).await?;
    if !matches!(body.id, Field::Absent) {
        errors.add("id", "read_only", "a plan's id cannot change");
    }
    let mut next = current.clone();
    apply(body, &mut next, &mut errors);
    errors.into_result()?;
    let stored = service::plans::update(&state, &admin, &current, next).await?;
    Ok(Json(stored.into()))
}

/// Delete a plan nobody is on (platform only). `starter`, the default, stays.
#[utoipa::path(
    delete, path = "/api/admin/plans/{planId}", operation_id = "deletePlan", tag = "Admin",
    params(("planId" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "In use, or the default plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let admin = who.platform()?;
    service::plans::delete(&state, &admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
