//! Chargebee end to end, on both databases: checkout through a hosted page at the Chargebee
//! stand-in (`tools/chargebee-standin.py`, which keeps customers, subscriptions and events and
//! delivers webhooks with HTTP Basic), webhooks applied once and in `resource_version` order,
//! forged bodies and wrong credentials refused, and v2's `productPlanId` changing the plan at
//! Chargebee first.
use orgbase_api::billing::Billing;
use orgbase_api::ApiConfig;
use orgbase_billing::testing::{LocalChargebee, CHARGEBEE_API_KEY};
use orgbase_billing::ChargebeeClient;
use orgbase_store::testing::TestDb;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::providers::{cancel_at_chargebee, checkout, org, set_plan, settings};
use crate::{Answer, App};

crate::db_tests!(chargebee_sqlite, chargebee_postgres;
    checkout_webhooks_and_plan_changes_through_chargebee,
    webhooks_with_wrong_credentials_or_forged_bodies_change_nothing,
);

crate::api_tests!(without_chargebee_its_plans_say_why);

async fn start(db: TestDb, cb: &LocalChargebee) -> App {
    let client = ChargebeeClient::new(cb.config()).unwrap();
    let app = App::start_with_billing(
        db,
        ApiConfig::default(),
        Billing::default().with(Arc::new(client)),
    )
    .await;
    cb.hook_to(&format!("{}/api/billing/webhooks/chargebee", app.base))
        .await;
    app
}

async fn plan(app: &App, id: &str, price: i64, price_id: &str) {
    let a = app
        .post(
            "/api/admin/plans",
            json!({"id": id, "name": id, "price": price, "currency": "usd", "interval": "month",
                   "public": true, "provider": "chargebee", "providerPriceId": price_id}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

/// Posts `body` to the Chargebee webhook route with `authorization`.
async fn post_hook(app: &App, body: &Value, authorization: Option<&str>) -> Answer {
    let mut req = app
        .http
        .post(format!("{}/api/billing/webhooks/chargebee", app.base))
        .json(body);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    App::answer(req.send().await.unwrap()).await
}

fn hook_auth() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            orgbase_billing::testing::CHARGEBEE_HOOK_USER,
            orgbase_billing::testing::CHARGEBEE_HOOK_PASSWORD
        ))
    )
}

/// An organization checked out on `pro` at Chargebee: (org id, subscription id, the
/// `subscription_created` event).
async fn checked_out(app: &App, cb: &LocalChargebee) -> (String, String, Value) {
    cb.create_item_price("pro-USD-monthly", 4900, "USD").await;
    cb.create_item_price("team-USD-monthly", 9900, "USD").await;
    plan(app, "pro", 4900, "pro-USD-monthly").await;
    plan(app, "team", 9900, "team-USD-monthly").await;
    let o = app
        .org(json!({"name": "Billed", "countryCode": "US"}))
        .await;
    let id = o["id"].as_str().unwrap().to_owned();
    // A Chargebee plan cannot be set before the organization subscribed.
    let a = settings(app, &id, json!({"productPlanId": "pro"})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(org(app, &id).await["productPlanId"], "starter");

    let a = checkout(app, &id, "pro").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let page = a.body["sessionId"].as_str().unwrap().to_owned();
    assert!(a.body["url"].as_str().unwrap().starts_with("http"));
    // Nothing changes before Chargebee says so.
    assert_eq!(org(app, &id).await["productPlanId"], "starter");
    let requests = cb.requests().await;
    let checkout = requests
        .iter()
        .find(|r| r["path"] == "/api/v2/hosted_pages/checkout_new_for_items")
        .unwrap();
    assert_eq!(checkout["user"], CHARGEBEE_API_KEY);
    assert_eq!(checkout["form"]["customer[id]"], id.as_str());
    assert_eq!(
        checkout["form"]["subscription_items[item_price_id][0]"],
        "pro-USD-monthly"
    );
    assert!(checkout["form"]["pass_thru_content"]
        .as_str()
        .unwrap()
        .contains(&id));

    let done = cb.complete_checkout(&page).await;
    assert_eq!(done["deliveries"][0]["status"], 200, "{done}");
    let (sub, event) = LocalChargebee::subscription_created(&done);
    (id, sub, event)
}

async fn checkout_webhooks_and_plan_changes_through_chargebee(db: TestDb) {
    let cb = LocalChargebee::start();
    let app = start(db, &cb).await;
    let (id, sub, created) = checked_out(&app, &cb).await;
    let o = org(&app, &id).await;
    assert_eq!(o["productPlanId"], "pro", "{o}");
    assert_eq!(o["premium"], true);
    assert_eq!(o["subscription"]["provider"], "chargebee");
    assert_eq!(o["subscription"]["id"], sub.as_str());
    let version = o["version"].clone();
    let b = app.get(&format!("/api/organizations/{id}/billing")).await;
    assert_eq!(b.body["provider"], "chargebee", "{}", b.text);
    assert_eq!(b.body["status"], "active");

    // Delivered again: applied once.
    let again = cb.deliver(created["id"].as_str().unwrap()).await;
    assert_eq!(again["status"], 200, "{again}");
    let a = post_hook(&app, &created, Some(&hook_auth())).await;
    assert_eq!(a.body["duplicate"], true, "{}", a.text);
    assert_eq!(org(&app, &id).await["version"], version);

    // An event made now but delivered late (older resource_version than what follows).
    let late = cb.event("subscription_renewed", &sub, None, false).await;

    // v2's productPlanId after subscription: the change is made at Chargebee first.
    set_plan(&app, &id, "team").await;
    cb.settle().await;
    let o = org(&app, &id).await;
    assert_eq!(o["productPlanId"], "team");
    let change = cb
        .requests()
        .await
        .into_iter()
        .rev()
        .find(|r| r["path"] == format!("/api/v2/subscriptions/{sub}/update_for_items"))
        .unwrap();
    assert_eq!(
        change["form"]["subscription_items[item_price_id][0]"],
        "team-USD-monthly"
    );
    // The late event carries the subscription as it was (on pro): it does not roll back.
    let d = cb.deliver(late["event"]["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], 200, "{d}");
    assert_eq!(org(&app, &id).await["productPlanId"], "team");

    // Chargebee refuses a price it does not have: the setting fails, nothing changes.
    plan(&app, "ghost", 100, "ghost-USD-monthly").await;
    let a = settings(&app, &id, json!({"productPlanId": "ghost"})).await;
    assert_eq!(
        a.body["failedSettings"],
        json!(["productPlanId"]),
        "{}",
        a.text
    );
    assert_eq!(org(&app, &id).await["productPlanId"], "team");

    // Dues: a failed payment sets billingOverdue, an invoice with dues keeps it, a payment
    // clears it.
    let d = cb.event("payment_failed", &sub, None, true).await;
    assert_eq!(d["delivery"]["status"], 200, "{d}");
    assert_eq!(org(&app, &id).await["billingOverdue"], true);
    let d = cb.event("payment_succeeded", &sub, None, true).await;
    assert_eq!(d["delivery"]["status"], 200, "{d}");
    assert_eq!(org(&app, &id).await["billingOverdue"], false);
    let d = cb
        .event(
            "invoice_generated",
            &sub,
            Some(json!({"amount_due": 9900, "status": "payment_due"})),
            true,
        )
        .await;
    assert_eq!(d["delivery"]["status"], 200, "{d}");
    assert_eq!(org(&app, &id).await["billingOverdue"], true);

    // Cancelled at Chargebee: back to the default plan.
    cancel_at_chargebee(&cb, &sub).await;
    let o = org(&app, &id).await;
    assert_eq!(o["productPlanId"], "starter", "{o}");
    assert_eq!(o["premium"], false);
    assert_eq!(o["subscription"]["status"], "cancelled");
    // Every delivery was answered 200.
    let failed: Vec<Value> = cb
        .deliveries()
        .await
        .into_iter()
        .filter(|d| d["status"] != 200)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

async fn webhooks_with_wrong_credentials_or_forged_bodies_change_nothing(db: TestDb) {
    let cb = LocalChargebee::start();
    let app = start(db, &cb).await;
    let (id, sub, created) = checked_out(&app, &cb).await;
    let before = org(&app, &id).await;
    // No credentials, wrong ones: 401.
    let a = post_hook(&app, &created, None).await;
    a.assert_problem(401, "invalid_credentials");
    let a = post_hook(&app, &created, Some("Basic b3JnYmFzZTp3cm9uZw==")).await;
    a.assert_problem(401, "invalid_credentials");
    // A forged cancellation: Chargebee knows no such event.
    let mut forged = created.clone();
    forged["id"] = "ev_forged_1".into();
    forged["event_type"] = "subscription_cancelled".into();
    forged["content"]["subscription"]["status"] = "cancelled".into();
    let a = post_hook(&app, &forged, Some(&hook_auth())).await;
    a.assert_problem(400, "invalid_webhook");
    // A real event id with a forged content: Chargebee's content is what is read.
    let mut altered = created.clone();
    altered["content"]["subscription"]["subscription_items"][0]["item_price_id"] =
        "team-USD-monthly".into();
    let a = post_hook(&app, &altered, Some(&hook_auth())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // Not an event at all.
    let a = post_hook(&app, &json!({"hello": "world"}), Some(&hook_auth())).await;
    a.assert_problem(400, "invalid_webhook");
    let after = org(&app, &id).await;
    assert_eq!(after["productPlanId"], before["productPlanId"]);
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["subscription"]["id"], sub.as_str());
}

/// A plan tied to Chargebee where Chargebee is not configured: its checkout says why.
async fn without_chargebee_its_plans_say_why(app: App) {
    let a = app
        .post(
            "/api/admin/plans",
            json!({"id": "cb", "name": "CB", "price": 100, "currency": "usd",
                   "interval": "month", "public": true, "provider": "chargebee",
                   "providerPriceId": "cb-USD-monthly"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let o = app.org(json!({"name": "No CB", "countryCode": "US"})).await;
    let id = o["id"].as_str().unwrap();
    let a = checkout(&app, id, "cb").await;
    assert!(
        a.status.is_client_error() || a.status.is_server_error(),
        "{}",
        a.text
    );
    let detail = a.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("chargebee is not set up here"),
        "{}",
        a.text
    );
    // Its webhook route does not exist here.
    let a = post_hook(&app, &json!({}), Some(&hook_auth())).await;
    a.assert_problem(404, "not_found");
}
