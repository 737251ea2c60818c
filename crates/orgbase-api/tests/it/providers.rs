//! The billing rules every provider shares, from one table: each test below runs for Stripe
//! (localstripe, events signed as Stripe signs them) and for Chargebee (its stand-in, which
//! delivers its own events with HTTP Basic), on both databases. What differs between the
//! providers is only how a customer subscribes, pays and cancels: [`Provider`].
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use orgbase_api::billing::Billing;
use orgbase_api::ApiConfig;
use orgbase_billing::testing::{LocalChargebee, LocalStripe, CHARGEBEE_API_KEY, WEBHOOK_SECRET};
use orgbase_billing::{sign_webhook, ChargebeeClient, StripeClient};
use orgbase_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{Answer, App};

#[derive(Clone, Copy)]
enum Kind {
    Stripe,
    Chargebee,
}

macro_rules! provider_tests {
    ($($name:ident),* $(,)?) => {
        mod stripe_sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::Stripe, orgbase_store::testing::sqlite().await).await;
            }
        )* }
        mod chargebee_sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::Chargebee, orgbase_store::testing::sqlite().await).await;
            }
        )* }
        mod stripe_postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = orgbase_store::testing::postgres().await else {
                    eprintln!("skipped: TEST_DATABASE_URL is not set");
                    return;
                };
                super::$name(super::Kind::Stripe, db).await;
            }
        )* }
        mod chargebee_postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = orgbase_store::testing::postgres().await else {
                    eprintln!("skipped: TEST_DATABASE_URL is not set");
                    return;
                };
                super::$name(super::Kind::Chargebee, db).await;
            }
        )* }
    };
}

provider_tests!(
    the_plan_changes_when_the_provider_says_so_and_once,
    a_failed_payment_sets_overdue_and_a_payment_clears_it,
    a_cancelled_subscription_returns_to_the_default_plan,
    the_partner_settings_change_the_plan_at_the_provider_first,
);

/// A live subscription at the provider.
struct Sub {
    id: String,
    customer: String,
    price: String,
}

/// A provider's stand-in and how its customers act there.
struct Provider {
    kind: Kind,
    stripe: Option<LocalStripe>,
    chargebee: Option<LocalChargebee>,
    /// Stripe: the next event's `created` and id.
    clock: AtomicI64,
    /// The last subscription event delivered, to deliver again.
    last: Mutex<Option<Value>>,
}

impl Provider {
    fn start(kind: Kind) -> Self {
        Self {
            kind,
            stripe: matches!(kind, Kind::Stripe).then(LocalStripe::start),
            chargebee: matches!(kind, Kind::Chargebee).then(LocalChargebee::start),
            clock: AtomicI64::new(chrono::Utc::now().timestamp() - 1000),
            last: Mutex::new(None),
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Stripe => "stripe",
            Kind::Chargebee => "chargebee",
        }
    }

    async fn app(&self, db: TestDb) -> App {
        let billing = match self.kind {
            Kind::Stripe => Billing::default().with(Arc::new(
                StripeClient::new(self.stripe.as_ref().unwrap().config()).unwrap(),
            )),
            Kind::Chargebee => Billing::default().with(Arc::new(
                ChargebeeClient::new(self.chargebee.as_ref().unwrap().config()).unwrap(),
            )),
        };
        let app = App::start_with_billing(db, ApiConfig::default(), billing).await;
        if let Some(cb) = &self.chargebee {
            cb.hook_to(&format!("{}/api/billing/webhooks/chargebee", app.base))
                .await;
        }
        app
    }

    /// A price at the provider, and a public plan `id` on it.
    async fn plan(&self, app: &App, id: &str, cents: i64) -> String {
        let price = format!("{id}-usd-monthly");
        match self.kind {
            Kind::Stripe => {
                self.stripe
                    .as_ref()
                    .unwrap()
                    .create_price(&price, cents, "usd")
                    .await;
            }
            Kind::Chargebee => {
                self.chargebee
                    .as_ref()
                    .unwrap()
                    .create_item_price(&price, cents, "USD")
                    .await;
            }
        }
        let a = app
            .post(
                "/api/admin/plans",
                json!({"id": id, "name": id, "price": cents, "currency": "usd",
                       "interval": "month", "public": true, "provider": self.name(),
                       "providerPriceId": price}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        price
    }

    /// Stripe's delivery of `object` as an event of `kind`, signed, a little later than the
    /// last.
    async fn stripe_event(&self, app: &App, kind: &str, object: Value) -> Answer {
        let t = self.clock.fetch_add(10, Ordering::SeqCst);
        let event = json!({
            "id": format!("evt_{t}"), "object": "event", "type": kind, "created": t,
            "livemode": false, "api_version": "2024-06-20", "data": {"object": object},
        });
        self.deliver(app, &event).await
    }

    /// Delivers `event` (as the provider would) and answers Orgbase's answer.
    async fn deliver(&self, app: &App, event: &Value) -> Answer {
        let payload = serde_json::to_vec(event).unwrap();
        let req = match self.kind {
            Kind::Stripe => app
                .http
                .post(format!("{}/api/billing/webhooks/stripe", app.base))
                .header(
                    "stripe-signature",
                    sign_webhook(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &payload),
                ),
            Kind::Chargebee => app
                .http
                .post(format!("{}/api/billing/webhooks/chargebee", app.base))
                .basic_auth(
                    orgbase_billing::testing::CHARGEBEE_HOOK_USER,
                    Some(orgbase_billing::testing::CHARGEBEE_HOOK_PASSWORD),
                ),
        };
        let res = req
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .unwrap();
        App::answer(res).await
    }

    fn stripe_subscription(&self, sub: &Sub, status: &str, org: &str) -> Value {
        json!({
            "id": sub.id, "object": "subscription", "customer": sub.customer, "status": status,
            "created": 1_700_000_000, "current_period_end": 1_900_000_000,
            "cancel_at_period_end": false, "metadata": {"organization_id": org},
            "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                      "price": {"id": sub.price}, "plan": {"id": sub.price}}]},
        })
    }

    /// The organization checks out on `plan` (through Orgbase) and pays: the provider has a live
    /// subscription, and says so.
    async fn subscribe(&self, app: &App, org: &str, plan: &str, price: &str) -> Sub {
        let a = checkout(app, org, plan).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let session = a.body["sessionId"].as_str().unwrap().to_owned();
        match self.kind {
            Kind::Stripe => {
                let stripe = self.stripe.as_ref().unwrap();
                let customer = stripe
                    .checkout_sessions()
                    .await
                    .into_iter()
                    .find(|s| s["id"] == session.as_str())
                    .unwrap()["customer"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                stripe.add_card(&customer).await;
                let made = stripe
                    .create_subscription(&customer, price, &[("organization_id", org)])
                    .await;
                let sub = Sub {
                    id: made["id"].as_str().unwrap().to_owned(),
                    customer,
                    price: price.to_owned(),
                };
                let object = self.stripe_subscription(&sub, "active", org);
                let t = self.clock.fetch_add(10, Ordering::SeqCst);
                let event = json!({
                    "id": format!("evt_{t}"), "object": "event",
                    "type": "customer.subscription.created", "created": t, "livemode": false,
                    "api_version": "2024-06-20", "data": {"object": object},
                });
                let a = self.deliver(app, &event).await;
                assert_eq!(a.status, StatusCode::OK, "{}", a.text);
                *self.last.lock().unwrap() = Some(event);
                sub
            }
            Kind::Chargebee => {
                let cb = self.chargebee.as_ref().unwrap();
                let done = cb.complete_checkout(&session).await;
                assert_eq!(done["deliveries"][0]["status"], 200, "{done}");
                let (id, event) = LocalChargebee::subscription_created(&done);
                let sub = Sub {
                    id,
                    customer: event["content"]["subscription"]["customer_id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    price: price.to_owned(),
                };
                *self.last.lock().unwrap() = Some(event);
                sub
            }
        }
    }

    /// The last subscription event, delivered again.
    async fn redeliver(&self, app: &App) -> Answer {
        let event = self.last.lock().unwrap().clone().unwrap();
        self.deliver(app, &event).await
    }

    /// An invoice of `sub` is paid (`ok`) or its payment fails.
    async fn payment(&self, app: &App, sub: &Sub, ok: bool) {
        match self.kind {
            Kind::Stripe => {
                let t = self.clock.load(Ordering::SeqCst);
                let invoice = json!({"id": format!("in_{t}"), "object": "invoice",
                    "customer": sub.customer, "subscription": sub.id, "status": "open",
                    "created": t});
                let kind = if ok {
                    "invoice.paid"
                } else {
                    "invoice.payment_failed"
                };
                let a = self.stripe_event(app, kind, invoice).await;
                assert_eq!(a.status, StatusCode::OK, "{}", a.text);
            }
            Kind::Chargebee => {
                let kind = if ok {
                    "payment_succeeded"
                } else {
                    "payment_failed"
                };
                let d = self
                    .chargebee
                    .as_ref()
                    .unwrap()
                    .event(kind, &sub.id, None, true)
                    .await;
                assert_eq!(d["delivery"]["status"], 200, "{d}");
            }
        }
    }

    /// The subscription is cancelled at the provider, which says so.
    async fn cancel(&self, app: &App, sub: &Sub, org: &str) {
        match self.kind {
            Kind::Stripe => {
                let stripe = self.stripe.as_ref().unwrap();
                stripe
                    .call(
                        Method::DELETE,
                        &format!("/v1/subscriptions/{}", sub.id),
                        &[],
                    )
                    .await;
                let object = self.stripe_subscription(sub, "canceled", org);
                let a = self
                    .stripe_event(app, "customer.subscription.deleted", object)
                    .await;
                assert_eq!(a.status, StatusCode::OK, "{}", a.text);
            }
            Kind::Chargebee => {
                cancel_at_chargebee(self.chargebee.as_ref().unwrap(), &sub.id).await;
            }
        }
    }

    /// The price the provider has the subscription on now.
    async fn price_at_provider(&self, sub: &Sub) -> String {
        match self.kind {
            Kind::Stripe => {
                let s = self
                    .stripe
                    .as_ref()
                    .unwrap()
                    .call(Method::GET, &format!("/v1/subscriptions/{}", sub.id), &[])
                    .await;
                let item = &s["items"]["data"][0];
                item["price"]["id"]
                    .as_str()
                    .or(item["plan"]["id"].as_str())
                    .unwrap()
                    .to_owned()
            }
            Kind::Chargebee => {
                let cb = self.chargebee.as_ref().unwrap();
                let s: Value = reqwest::Client::new()
                    .get(format!("{}/api/v2/subscriptions/{}", cb.url(), sub.id))
                    .basic_auth(CHARGEBEE_API_KEY, Some(""))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                s["subscription"]["subscription_items"][0]["item_price_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        }
    }
}

/// Organization `id`, as the native API answers it.
pub async fn org(app: &App, id: &str) -> Value {
    let a = app.get(&format!("/api/organizations/{id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body
}

/// Opens a checkout of organization `org` on `plan`, through Orgbase.
pub async fn checkout(app: &App, org: &str, plan: &str) -> Answer {
    app.post(
        &format!("/api/organizations/{org}/billing/checkout"),
        json!({"planId": plan, "successUrl": "https://app.example/ok",
               "cancelUrl": "https://app.example/no"}),
    )
    .await
}

/// The partner settings API (v2's `updateOrganization`), as the platform, on organization `org`.
pub async fn settings(app: &App, org: &str, body: Value) -> Answer {
    app.as_(
        None,
        Method::POST,
        &format!(
            "/api/v2/updateOrganization?token={}&targetOrganizationId={org}",
            app.key
        ),
        Some(body),
    )
    .await
}

/// Moves organization `org` to `plan` through the partner settings API, which answers that it
/// did.
pub async fn set_plan(app: &App, org: &str, plan: &str) {
    let a = settings(app, org, json!({"productPlanId": plan})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        a.body["updatedSettings"],
        json!(["productPlanId"]),
        "{}",
        a.text
    );
}

/// Cancels `sub` at the Chargebee stand-in, not through Orgbase (as from Chargebee's dashboard),
/// and waits until the stand-in has delivered the events that caused.
pub async fn cancel_at_chargebee(cb: &LocalChargebee, sub: &str) {
    let res = reqwest::Client::new()
        .post(format!(
            "{}/api/v2/subscriptions/{sub}/cancel_for_items",
            cb.url()
        ))
        .basic_auth(CHARGEBEE_API_KEY, Some(""))
        .form(&[("end_of_term", "false")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    cb.settle().await;
}

async fn new_org(app: &App) -> String {
    app.org(json!({"name": "Billed", "countryCode": "US"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn the_plan_changes_when_the_provider_says_so_and_once(kind: Kind, db: TestDb) {
    let p = Provider::start(kind);
    let app = p.app(db).await;
    let price = p.plan(&app, "pro", 4900).await;
    let id = new_org(&app).await;
    let sub = p.subscribe(&app, &id, "pro", &price).await;
    let o = org(&app, &id).await;
    assert_eq!(o["productPlanId"], "pro", "{o}");
    assert_eq!(o["premium"], true);
    assert_eq!(o["subscription"]["provider"], p.name());
    assert_eq!(o["subscription"]["id"], sub.id.as_str());
    let b = app.get(&format!("/api/organizations/{id}/billing")).await;
    assert_eq!(b.body["provider"], p.name(), "{}", b.text);
    assert_eq!(b.body["planId"], "pro");
    // Delivered again: applied once.
    let a = p.redeliver(&app).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["duplicate"], true, "{}", a.text);
    assert_eq!(org(&app, &id).await["version"], o["version"]);
    // A second checkout while subscribed is refused.
    let a = checkout(&app, &id, "pro").await;
    a.assert_problem(409, "already_subscribed");
}

async fn a_failed_payment_sets_overdue_and_a_payment_clears_it(kind: Kind, db: TestDb) {
    let p = Provider::start(kind);
    let app = p.app(db).await;
    let price = p.plan(&app, "pro", 4900).await;
    let id = new_org(&app).await;
    let sub = p.subscribe(&app, &id, "pro", &price).await;
    assert_eq!(org(&app, &id).await["billingOverdue"], false);
    p.payment(&app, &sub, false).await;
    assert_eq!(org(&app, &id).await["billingOverdue"], true);
    p.payment(&app, &sub, true).await;
    assert_eq!(org(&app, &id).await["billingOverdue"], false);
}

async fn a_cancelled_subscription_returns_to_the_default_plan(kind: Kind, db: TestDb) {
    let p = Provider::start(kind);
    let app = p.app(db).await;
    let price = p.plan(&app, "pro", 4900).await;
    let id = new_org(&app).await;
    let sub = p.subscribe(&app, &id, "pro", &price).await;
    p.cancel(&app, &sub, &id).await;
    let o = org(&app, &id).await;
    assert_eq!(o["productPlanId"], "starter", "{o}");
    assert_eq!(o["premium"], false);
}

async fn the_partner_settings_change_the_plan_at_the_provider_first(kind: Kind, db: TestDb) {
    let p = Provider::start(kind);
    let app = p.app(db).await;
    let pro = p.plan(&app, "pro", 4900).await;
    let team = p.plan(&app, "team", 9900).await;
    let id = new_org(&app).await;
    // Before the organization subscribed, a plan billed by the provider cannot be set.
    let a = settings(&app, &id, json!({"productPlanId": "pro"})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.body["failedSettings"], json!(["productPlanId"]));
    assert_eq!(org(&app, &id).await["productPlanId"], "starter");
    // After: the provider moves the subscription, then the plan is set here.
    let sub = p.subscribe(&app, &id, "pro", &pro).await;
    set_plan(&app, &id, "team").await;
    assert_eq!(org(&app, &id).await["productPlanId"], "team");
    assert_eq!(p.price_at_provider(&sub).await, team);
}
